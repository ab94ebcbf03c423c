package email

import (
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestEncodeHeaderTextRoundTrips(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "Hello", "Build 42 failed",
		"Grüße — ✓ 日本語のテキスト and a long tail of words that keeps going well past one line of header",
		"Injected\r\nBcc: a@b.example\r\n\r\nbody",
		"looks like =?utf-8?q?an_encoded_word?= but is not",
		strings.Repeat("x", 200),
		strings.Repeat("y", 70) + " " + strings.Repeat("z", 77),
		"tab\tand\x00nul\x7fdel",
		"invalid \xff utf-8",
	} {
		checkHeaderValue(t, "Subject", s, EncodeHeaderText(s, len("Subject: ")))
		checkHeaderValue(t, "X-A-Very-Long-Header-Name-For-Testing", s, EncodeHeaderText(s, len("X-A-Very-Long-Header-Name-For-Testing: ")))
	}
}

// checkHeaderValue asserts what every encoded header must satisfy: only folds as line
// breaks, no line over 78 columns (76 with encoded words), and
// decoding plus unfolding gives back the sanitised input.
func checkHeaderValue(t *testing.T, name, in, enc string) {
	t.Helper()
	lines := strings.Split(name+": "+enc, "\r\n")
	for i, line := range lines {
		if strings.ContainsAny(line, "\r\n") {
			t.Fatalf("%q: bare CR or LF in %q", in, line)
		}
		if i > 0 && !strings.HasPrefix(line, " ") {
			t.Fatalf("%q: continuation line %q does not start with a space", in, line)
		}
		if len(line) > 78 {
			t.Fatalf("%q: line of %d columns: %q", in, len(line), line)
		}
		if strings.Contains(line, "=?utf-8?q?") && len(line) > 76 {
			t.Fatalf("%q: encoded line of %d columns: %q", in, len(line), line)
		}
	}
	unfolded := strings.ReplaceAll(enc, "\r\n", "")
	got, err := new(mime.WordDecoder).DecodeHeader(unfolded)
	if err != nil {
		t.Fatalf("%q: decode %q: %v", in, unfolded, err)
	}
	if want := Sanitize(in); got != want {
		t.Fatalf("round trip of %q: got %q, want %q", in, got, want)
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a\r\nb":       "a b",
		"  a  \t b  ":  "a b",
		"\x00\x1b[31m": "[31m",
		"ok":           "ok",
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMessageBytes(t *testing.T) {
	t.Parallel()
	m := Message{
		From:    mail.Address{Name: "Bot\r\nBcc: x@example.com", Address: "bot@example.com"},
		To:      mail.Address{Name: "Zoë", Address: "zoe@example.com"},
		Subject: "Hi", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), MessageID: "1@example.com",
		Headers: [][2]string{{"X-Template", "Welcome\r\nBcc: y@example.com"}},
		Text:    "line one\nline two with a very long sentence that quoted-printable must soft-wrap because it is longer than seventy-six characters",
		HTML:    "<p>hi</p>", Boundary: "BOUNDARY",
	}
	b, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Header["Bcc"]) != 0 {
		t.Fatalf("Bcc injected: %s", b)
	}
	if got := msg.Header.Get("X-Template"); got != "Welcome Bcc: y@example.com" {
		t.Fatalf("X-Template = %q", got)
	}
	for _, bad := range []Message{
		{From: mail.Address{Address: "not an address"}, To: m.To},
		{From: m.From, To: mail.Address{Address: "a@b.example\r\nBcc: c@d.example"}},
		{From: m.From, To: m.To, MessageID: "<x@y>"},
		{From: m.From, To: m.To, Headers: [][2]string{{"Bad Name", "v"}}},
	} {
		if _, err := bad.Bytes(); err == nil {
			t.Errorf("Bytes(%+v) succeeded, want an error", bad)
		}
	}
}

func FuzzEncodeHeaderText(f *testing.F) {
	for _, s := range []string{"Hello", "Grüße ✓", "a\r\nBcc: b", "=?utf-8?q?x?=", strings.Repeat("é", 100)} {
		f.Add(s, 9)
	}
	f.Fuzz(func(t *testing.T, s string, prefix int) {
		if prefix < 0 || prefix > 40 {
			prefix = 9
		}
		name := strings.Repeat("X", max(prefix-2, 1))
		checkHeaderValue(t, name, s, EncodeHeaderText(s, len(name)+2))
	})
}

// checkAddressHeader asserts what a To or From header must satisfy: folds only, no line
// over 78 octets unless the address alone is longer, and it parses back to the sanitised
// name and the address.
func checkAddressHeader(t *testing.T, name string, a mail.Address, enc string) {
	t.Helper()
	lines := strings.Split(name+": "+enc, "\r\n")
	for i, line := range lines {
		if strings.ContainsAny(line, "\r\n") {
			t.Fatalf("%q: bare CR or LF in %q", a.Name, line)
		}
		if i > 0 && !strings.HasPrefix(line, " ") {
			t.Fatalf("%q: continuation line %q does not start with a space", a.Name, line)
		}
		if len(line) > 78 && len(line) > len(a.Address)+3 {
			t.Fatalf("%q: line of %d octets: %q", a.Name, len(line), line)
		}
	}
	got, err := mail.ParseAddress(strings.ReplaceAll(enc, "\r\n", ""))
	if err != nil {
		t.Fatalf("%q: parse %q: %v", a.Name, enc, err)
	}
	if want := Sanitize(a.Name); got.Name != want || got.Address != a.Address {
		t.Fatalf("round trip of %q: got %q <%s>, want %q <%s>\n%s", a.Name, got.Name, got.Address, want, a.Address, enc)
	}
}

func TestFormatAddressFolds(t *testing.T) {
	t.Parallel()
	for _, n := range []string{
		"", "Ada", "Zoë", strings.Repeat("漢", 110), strings.Repeat("🎉", 60), strings.Repeat("Ada Lovelace ", 20),
		strings.Repeat("x", 150), `quote " and \ backslash`, "=?utf-8?q?not_encoded?=", "a, b <c@d.example>",
		"Zoë " + strings.Repeat("Grüße 日本語 and more ", 8), "(comment) name", "tab\tand\r\nbreak",
	} {
		for _, field := range []string{"To", "From", "X-A-Very-Long-Header-Name-For-Testing"} {
			a := mail.Address{Name: n, Address: "someone@example.com"}
			enc, err := FormatAddress(a, len(field)+2)
			if err != nil {
				t.Fatal(err)
			}
			checkAddressHeader(t, field, a, enc)
		}
	}
}

func TestFormatAddressRefusesOverlongAddress(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".example"
	if _, err := FormatAddress(mail.Address{Name: "x", Address: long}, 4); err == nil || !strings.Contains(err.Error(), "254") {
		t.Fatalf("a %d-octet address: err = %v", len(long), err)
	}
}

// FuzzFormatAddress: any display name folds into lines of at most 78 octets and parses
// back to the sanitised name.
func FuzzFormatAddress(f *testing.F) {
	for _, s := range []string{"Ada", "Zoë", strings.Repeat("漢", 110), strings.Repeat("Ada Lovelace ", 20), `q " \ `, "=?x?=", "a\r\nBcc: b"} {
		f.Add(s, 4)
	}
	f.Fuzz(func(t *testing.T, name string, prefix int) {
		if prefix < 0 || prefix > 40 {
			prefix = 4
		}
		field := strings.Repeat("X", max(prefix-2, 1))
		a := mail.Address{Name: name, Address: "someone@example.com"}
		enc, err := FormatAddress(a, len(field)+2)
		if err != nil {
			t.Fatal(err)
		}
		checkAddressHeader(t, field, a, enc)
	})
}
