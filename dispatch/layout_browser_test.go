package dispatch_test

import (
	"context"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/internal/sample"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// phoneWidth is the CSS width of a common phone screen.
const phoneWidth = 375

// scrollWidth loads page (an HTML document) in headless Chromium inside an iframe of
// width px and returns the document's scrollWidth there: over width means the reader has
// to scroll sideways. (A top-level headless window cannot be narrower than 500 px.)
func scrollWidth(t *testing.T, page string, width int) int {
	t.Helper()
	dir := t.TempDir()
	wrapper := `<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">` +
		`<iframe id="f" style="width:` + strconv.Itoa(width) + `px;height:800px;border:0" srcdoc="` + html.EscapeString(page) + `"` +
		` onload="document.body.setAttribute('data-scroll-width', String(this.contentDocument.documentElement.scrollWidth))"></iframe></body></html>`
	file := filepath.Join(dir, "page.html")
	if err := os.WriteFile(file, []byte(wrapper), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=800,900", "--dump-dom", "file://"+file)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`data-scroll-width="(\d+)"`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("chromium did not report a scroll width:\n%s\n%s", out, stderr.String())
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required with CI=true (make test installs it as root: scripts/ensure-chromium.sh): %v", err)
		}
		t.Skipf("skipping: no chromium at %s (apt-get install chromium)", chromiumPath)
	}
}

// TestEmailHTMLFitsPhoneWidth renders the HTML part of the golden emails, and of one with
// long unbroken words in every place a user value or template can put them, in headless
// Chromium at 375 px: the page never scrolls sideways.
func TestEmailHTMLFitsPhoneWidth(t *testing.T) {
	t.Parallel()
	requireChromium(t)
	if got := scrollWidth(t, `<!doctype html><body><div style="width:1000px">wide</div></body>`, phoneWidth); got < 1000 {
		t.Fatalf("the measurement does not see a 1000 px element: scrollWidth %d", got)
	}
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: "127.0.0.1:1", From: "Acme CI <notifications@acme.example>"})
	long := strings.Repeat("Supercalifragilistic", 12)
	hostile := sample.PasswordReset
	hostile.TitleTemplate = "Reset " + long + " {{.Labels.ip}}"
	hostile.BodyTemplate = "Word: {{.Labels.ip}}\n\nURL: https://ci.acme.example/" + long + "\n\n`" + long + "`\n\n```\n" + long + " " + long + "\n```"
	type email struct {
		name    string
		tmpl    notifications.Template
		payload func(notifications.MessagePayload) notifications.MessagePayload
	}
	var emails []email
	for _, tmpl := range sample.Templates() {
		emails = append(emails, email{tmpl.Name, tmpl, nil})
	}
	emails = append(emails, email{"long unbroken words", hostile, func(p notifications.MessagePayload) notifications.MessagePayload {
		p.UserName = long
		p.Labels = map[string]string{"ip": long, "code": long}
		p.Actions = []notifications.Action{{Label: long, URL: "https://ci.acme.example/" + long}}
		return p
	}})
	for i, e := range emails {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			p, err := sample.Payload(e.tmpl, i)
			if err != nil {
				t.Fatal(err)
			}
			if e.payload != nil {
				p = e.payload(p)
			}
			title, body, err := notifications.NewRegistry(sample.Helpers()).RenderTitleBody(e.tmpl, p)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := h.BuildMessage(p, title, body, sample.Helpers(), uuid.New(), "")
			if err != nil {
				t.Fatal(err)
			}
			_, page := emailParts(t, raw)
			if got := scrollWidth(t, page, phoneWidth); got > phoneWidth {
				t.Fatalf("the email is %d px wide at a %d px screen: it scrolls sideways", got, phoneWidth)
			}
		})
	}
}
