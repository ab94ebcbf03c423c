// Package email builds RFC 5322 messages: sanitised, RFC 2047-encoded and folded headers and
// a multipart/alternative body (text part, then HTML), both quoted-printable.
package email

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/xerrors"
)

// maxLine is the folding target for header lines (RFC 5322 §2.1.1 "SHOULD be no more
// than 78 characters").
const maxLine = 78

// Message is a rendered email.
type Message struct {
	From      mail.Address
	To        mail.Address
	Subject   string
	Date      time.Time
	MessageID string // without angle brackets: "id@host"
	// Headers are extra headers written after the standard ones, in order. Names must be
	// RFC 5322 field names; values are sanitised like every other header.
	Headers [][2]string
	Text    string
	HTML    string
	// Boundary is the multipart boundary; empty means random.
	Boundary string
}

// Bytes returns the message with CRLF line endings.
func (m Message) Bytes() ([]byte, error) {
	var b bytes.Buffer
	from, err := FormatAddress(m.From, len("From: "))
	if err != nil {
		return nil, xerrors.Errorf("format From: %w", err)
	}
	to, err := FormatAddress(m.To, len("To: "))
	if err != nil {
		return nil, xerrors.Errorf("format To: %w", err)
	}
	if m.MessageID != "" && (strings.ContainsAny(m.MessageID, "<>\r\n \t") || !strings.Contains(m.MessageID, "@")) {
		return nil, xerrors.Errorf("message ID %q must be id@host without brackets or spaces", m.MessageID)
	}
	writeHeader(&b, "From", from)
	writeHeader(&b, "To", to)
	writeHeader(&b, "Subject", EncodeHeaderText(m.Subject, len("Subject: ")))
	writeHeader(&b, "Date", m.Date.Format(time.RFC1123Z))
	if m.MessageID != "" {
		writeHeader(&b, "Message-ID", "<"+m.MessageID+">")
	}
	for _, h := range m.Headers {
		name := textproto.CanonicalMIMEHeaderKey(h[0])
		if !validFieldName(name) {
			return nil, xerrors.Errorf("header name %q is not a valid field name", h[0])
		}
		writeHeader(&b, name, EncodeHeaderText(h[1], len(name)+2))
	}
	writeHeader(&b, "MIME-Version", "1.0")

	mw := multipart.NewWriter(&b)
	if m.Boundary != "" {
		if err := mw.SetBoundary(m.Boundary); err != nil {
			return nil, xerrors.Errorf("set boundary: %w", err)
		}
	}
	writeHeader(&b, "Content-Type", "multipart/alternative; boundary=\""+mw.Boundary()+"\"")
	b.WriteString("\r\n")
	for _, part := range []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, xerrors.Errorf("create MIME part: %w", err)
		}
		if err := writeQP(w, part.body); err != nil {
			return nil, xerrors.Errorf("write MIME part: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, xerrors.Errorf("close multipart: %w", err)
	}
	return b.Bytes(), nil
}

func writeQP(w io.Writer, body string) error {
	qp := quotedprintable.NewWriter(w)
	// Normalise line endings to CRLF; quotedprintable keeps CRLF as hard line breaks.
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	if _, err := io.WriteString(qp, strings.ReplaceAll(body, "\n", "\r\n")); err != nil {
		return err
	}
	return qp.Close()
}

func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteString("\r\n")
}

func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r < 33 || r > 126 || r == ':' {
			return false
		}
	}
	return true
}

// Sanitize makes s safe as header text: CR, LF and other control characters become
// spaces, runs of spaces collapse, invalid UTF-8 is replaced.
func Sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// EncodeHeaderText sanitises s and encodes it for an unstructured header field whose name
// and ": " take prefix columns: plain ASCII is folded at spaces, anything else becomes
// RFC 2047 Q-encoded UTF-8 words, each line within 76 columns (RFC 2047 §2), never
// splitting a character across words.
func EncodeHeaderText(s string, prefix int) string {
	s = Sanitize(s)
	if isPlainASCII(s, prefix) {
		return foldASCII(s, prefix)
	}
	out, _ := encodeWords(s, prefix)
	return out
}

// encodeWords encodes s as RFC 2047 Q-encoded UTF-8 words starting at column col, folded
// so that every line stays within 76 columns (each word is then at most 75 characters),
// never splitting a character across words. The characters left unencoded (letters,
// digits, "!*+-/") are allowed in a phrase (RFC 2047 §5), so the result may stand for a
// display name as well as for unstructured text. It returns the column after the last word.
func encodeWords(s string, col int) (string, int) {
	const open, closing = "=?utf-8?q?", "?="
	var out, word strings.Builder
	room := 76 - col - len(open) - len(closing)
	flush := func() {
		if out.Len() > 0 {
			out.WriteString("\r\n ")
			col = 1
		}
		out.WriteString(open + word.String() + closing)
		col += len(open) + word.Len() + len(closing)
		word.Reset()
		room = 76 - 1 - len(open) - len(closing)
	}
	var buf [utf8.UTFMax]byte
	for _, r := range s {
		var enc string
		switch {
		case r == ' ':
			enc = "_"
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!*+-/", r)):
			enc = string(r)
		default:
			n := utf8.EncodeRune(buf[:], r)
			var e strings.Builder
			for _, c := range buf[:n] {
				fmt.Fprintf(&e, "=%02X", c)
			}
			enc = e.String()
		}
		if word.Len()+len(enc) > room && word.Len() > 0 {
			flush()
		}
		word.WriteString(enc)
	}
	if word.Len() > 0 || out.Len() == 0 {
		flush()
	}
	return out.String(), col
}

// isPlainASCII reports whether s can go out as folded ASCII: printable, not looking like an
// encoded word, and every word short enough for a line (the first after the prefix).
func isPlainASCII(s string, prefix int) bool {
	if strings.Contains(s, "=?") {
		return false // would be decoded as an encoded word
	}
	for i, w := range strings.Split(s, " ") {
		if (i == 0 && prefix+len(w) > maxLine) || len(w) > maxLine-1 {
			return false // cannot be folded; encoded words can be split
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// foldASCII inserts CRLF before spaces so that lines stay within maxLine.
func foldASCII(s string, prefix int) string {
	var b strings.Builder
	col := prefix
	for i, w := range strings.Split(s, " ") {
		if i > 0 {
			if col+1+len(w) > maxLine {
				b.WriteString("\r\n")
				col = 0
			}
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

// maxAddress is the longest address SMTP carries (RFC 5321 §4.5.3.1.3: a path of 256
// octets including the angle brackets), so an address line stays far below 998 octets.
const maxAddress = 254

// FormatAddress renders a mailbox for a header field whose name and ": " take prefix
// columns: the display name sanitised, then as a quoted string folded at its spaces when it
// is printable ASCII whose words fit on a line, otherwise as RFC 2047 encoded words of at
// most 75 characters folded onto lines of at most 76; the address follows, on a line of
// its own when the last line has no room. Every line stays within 78 octets unless the
// address alone is longer (it is at most 254 octets). The address is checked, not
// changed.
func FormatAddress(a mail.Address, prefix int) (string, error) {
	if _, err := mail.ParseAddress(a.Address); err != nil || strings.ContainsAny(a.Address, "<> \r\n") {
		return "", xerrors.Errorf("%q is not a valid email address", a.Address)
	}
	if len(a.Address) > maxAddress {
		return "", xerrors.Errorf("email address %.40q... is %d octets, over the limit of %d (RFC 5321)", a.Address, len(a.Address), maxAddress)
	}
	addr := "<" + a.Address + ">"
	name := Sanitize(a.Name)
	if name == "" {
		return addr, nil
	}
	var phrase string
	var col int
	if quoted := quoteString(name); isPlainASCII(quoted, prefix) {
		phrase = foldASCII(quoted, prefix)
		col = len(phrase)
		if i := strings.LastIndex(phrase, "\r\n"); i >= 0 {
			col = len(phrase) - i - 2
		} else {
			col += prefix
		}
	} else {
		phrase, col = encodeWords(name, prefix)
	}
	if col+1+len(addr) > maxLine {
		return phrase + "\r\n " + addr, nil
	}
	return phrase + " " + addr, nil
}

// quoteString returns s as an RFC 5322 quoted-string.
func quoteString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// ParseAddress parses "Display Name <addr@host>" or a bare address.
func ParseAddress(s string) (mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return mail.Address{}, xerrors.Errorf("address %q contains a line break", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return mail.Address{}, xerrors.Errorf("parse address %q: %w", s, err)
	}
	return *a, nil
}

// ASCIIDomain returns addr with a non-ASCII domain converted to A-labels (IDNA, the UTS #46
// lookup profile: "exämple.org" becomes "xn--exmple-cua.org"); an ASCII domain and the
// local part are left as they are.
func ASCIIDomain(addr string) (string, error) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || isASCII(addr[i+1:]) {
		return addr, nil
	}
	domain, err := idna.Lookup.ToASCII(addr[i+1:])
	if err != nil {
		return "", xerrors.Errorf("domain of %q is not a valid internationalised domain name: %w", addr, err)
	}
	return addr[:i+1] + domain, nil
}

// NeedsSMTPUTF8 reports whether addr can only be sent with the SMTPUTF8 extension: it
// holds non-ASCII characters (after ASCIIDomain, only a local part can).
func NeedsSMTPUTF8(addr string) bool { return !isASCII(addr) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Domain returns the part after the last @ of an address.
func Domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
