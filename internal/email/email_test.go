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
