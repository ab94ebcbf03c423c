package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/internal/sample"
	"github.com/notifykit/notifications/internal/smtpcapture"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden renders every sample template through the real SMTP and webhook handlers (to
// an in-process SMTP server and an httptest server) and compares what went over the wire
// with testdata/golden. `make golden` rewrites the files.
func TestGolden(t *testing.T) {
	srv := startSMTP(t, smtpcapture.Options{})
	clk := quartz.NewMock(t)
	clk.Set(testTime)
	smtpHandler, err := dispatch.NewSMTP(dispatch.SMTPConfig{Smarthost: srv.Addr, From: "Acme CI <notifications@acme.example>", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	bodies := make(chan []byte, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer hook.Close()
	webhook, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: hook.URL, AllowedNetworks: loopback, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}

	for i, tmpl := range sample.Templates() {
		name := strings.ReplaceAll(strings.ToLower(tmpl.Name), " ", "-")
		t.Run(name, func(t *testing.T) {
			payload, err := sample.Payload(tmpl, i)
			if err != nil {
				t.Fatal(err)
			}
			title, body, err := notifications.NewRegistry(sample.Helpers()).RenderTitleBody(tmpl, payload)
			if err != nil {
				t.Fatal(err)
			}
			msgID := uuid.NewSHA1(uuid.NameSpaceURL, []byte(name))

			before := srv.Count()
			deliverTo(t, smtpHandler, payload, title, body, msgID)
			eml := normaliseMIME(t, srv.Mails()[before].Data)
			compareGolden(t, filepath.Join("testdata", "golden", "email", name+".eml"), eml)

			deliverTo(t, webhook, payload, title, body, msgID)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, <-bodies, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			compareGolden(t, filepath.Join("testdata", "golden", "webhook", name+".json"), pretty.Bytes())
		})
	}
}

func deliverTo(t *testing.T, h notifications.Handler, p notifications.MessagePayload, title, body string, id uuid.UUID) {
	t.Helper()
	fn, err := h.Dispatcher(p, title, body, sample.Helpers())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// normaliseMIME replaces the random multipart boundary and turns CRLF into LF so the file
// reads well; Date and Message-ID are already fixed by the mock clock and message ID.
func normaliseMIME(t *testing.T, raw []byte) []byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		t.Fatalf("no boundary in %q", msg.Header.Get("Content-Type"))
	}
	out := bytes.ReplaceAll(raw, []byte(params["boundary"]), []byte("BOUNDARY"))
	return bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n"))
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run make golden to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run make golden and review the diff):\n--- got ---\n%s", path, got)
	}
}
