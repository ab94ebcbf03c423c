package dispatch_test

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	texttemplate "text/template"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
)

// emailParts returns the decoded text and HTML parts of a message.
func emailParts(t *testing.T, raw []byte) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, string(b))
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts", len(parts))
	}
	return parts[0], parts[1]
}

// TestEmailLineValuesStayOnOneLine: user values the layouts put on one line (the
// recipient's name in the greeting, the title, the app name, action labels and URLs) keep
// their CR/LF out of both bodies.
func TestEmailLineValuesStayOnOneLine(t *testing.T) {
	t.Parallel()
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: "127.0.0.1:1"})
	p := samplePayload()
	p.UserName = "Evil\r\nBcc: x,"
	p.Actions = []notifications.Action{{Label: "Open\r\nSubject: phish", URL: "https://app.example.com/x\r\nX-Injected: 1"}}
	helpers := texttemplate.FuncMap{"app_name": func() string { return "App\nFrom: spoof" }}
	raw, err := h.BuildMessage(p, "Title\r\nline", "Body", helpers, uuid.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	text, html := emailParts(t, raw)
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		for _, bad := range []string{"Bcc:", "Subject:", "X-Injected:", "From:"} {
			if strings.HasPrefix(line, bad) {
				t.Errorf("text part has a line starting %q:\n%s", bad, text)
			}
		}
	}
	if !strings.Contains(text, "Hi Evil Bcc: x,,") {
		t.Errorf("greeting not on one line:\n%s", text)
	}
	for _, want := range []string{"<p>Hi Evil Bcc: x,,</p>", "Open Subject: phish</a>", "App From: spoof"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "Title\r\n") || strings.Contains(html, "Title\n") {
		t.Errorf("title spans lines in the HTML part:\n%s", html)
	}
}
