package notifications_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"text/template"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/markdown"
	"github.com/notifykit/notifications/memstore"
)

// TestHostileInputAtEnqueue: every bad request is refused with an error that says what is
// wrong and wraps a sentinel, and leaves the store exactly as it was.
func TestHostileInputAtEnqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	tmpl := notifications.Template{ID: uuid.New(), Name: "ok", TitleTemplate: "Hi {{.UserName}}", BodyTemplate: "{{.Labels.x}}", EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{DefaultMethods: []notifications.Method{notifications.MethodSMTP}})
	if err != nil {
		t.Fatal(err)
	}
	rcpt := &notifications.Recipient{UserID: uuid.New(), Email: "a@example.com"}
	count := func() int {
		counts, _ := store.CountByStatus(ctx)
		return counts[notifications.StatusPending]
	}
	huge := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name string
		req  notifications.EnqueueRequest
		want error
		text string
	}{
		{"1 MB label", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Labels: map[string]string{"x": huge}}, notifications.ErrInvalidMessage, "over the limit"},
		{"1 MB data", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Data: map[string]any{"x": huge}}, notifications.ErrInvalidMessage, "over the limit"},
		{"unencodable data", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Data: map[string]any{"f": func() {}}}, notifications.ErrInvalidMessage, "encode payload"},
		{"unknown template", notifications.EnqueueRequest{TemplateID: uuid.New(), UserID: rcpt.UserID, Recipient: rcpt}, notifications.ErrNotFound, "template"},
		{"nil template ID", notifications.EnqueueRequest{UserID: rcpt.UserID, Recipient: rcpt}, notifications.ErrInvalidMessage, "TemplateID"},
		{"nil user ID", notifications.EnqueueRequest{TemplateID: tmpl.ID}, notifications.ErrInvalidMessage, "UserID"},
		{"no recipient and no lookup", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New()}, notifications.ErrInvalidMessage, "no Lookup"},
		{"NUL in a label value", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Labels: map[string]string{"x": "evil\x00user"}}, notifications.ErrInvalidMessage, `Labels["x"] contains a NUL byte`},
		{"NUL in a label key", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Labels: map[string]string{"a\x00": "v"}}, notifications.ErrInvalidMessage, "Labels key"},
		{"invalid UTF-8 in a label", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Labels: map[string]string{"x": "caf\xe9"}}, notifications.ErrInvalidMessage, `Labels["x"] is not valid UTF-8`},
		{"NUL in nested data", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Data: map[string]any{"a": map[string]any{"b": []any{"ok", "x\x00"}}}}, notifications.ErrInvalidMessage, `Data["a"]["b"][1] contains a NUL byte`},
		{"NUL in CreatedBy", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, CreatedBy: "job\x00"}, notifications.ErrInvalidMessage, "CreatedBy contains a NUL byte"},
		{"NUL in the recipient's name", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: &notifications.Recipient{Email: "a@example.com", Name: "A\x00"}}, notifications.ErrInvalidMessage, "Recipient.Name contains a NUL byte"},
		{"invalid UTF-8 in the idempotency key", notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, IdempotencyKey: "\xff"}, notifications.ErrInvalidMessage, "IdempotencyKey is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count()
			_, err := enq.SendAtomic(ctx, tc.req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
			if after := count(); after != before {
				t.Fatalf("%d messages stored by a refused request", after-before)
			}
		})
	}
	// An atomic batch with one bad request stores nothing; Send stores the good one and
	// names the bad one.
	good := notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Labels: map[string]string{"x": "fine"}}
	bad := notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt, Labels: map[string]string{"x": huge}}
	if _, err := enq.SendAtomic(ctx, good, bad); !errors.Is(err, notifications.ErrInvalidMessage) || !strings.Contains(err.Error(), "request 1") {
		t.Fatalf("batch: %v", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("a failed batch stored %d messages", n)
	}
	res, err := enq.Send(ctx, good, bad)
	if err != nil || len(res) != 2 || res[0].Err != nil || len(res[0].MessageIDs) != 1 ||
		!errors.Is(res[1].Err, notifications.ErrInvalidMessage) || !strings.Contains(res[1].Err.Error(), "request 1 (user "+rcpt.UserID.String()+")") {
		t.Fatalf("Send: %+v, %v", res, err)
	}
}

// TestHostileTemplates: templates that do not parse, call unknown functions or read
// unknown fields are refused at registration with the template and field named; nothing
// is stored.
func TestHostileTemplates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	helpers := template.FuncMap{"base_url": func() string { return "https://x.example" }}
	for _, tc := range []struct {
		name string
		tmpl notifications.Template
		text string
	}{
		{"unclosed action", notifications.Template{TitleTemplate: "Hi {{.UserName"}, "TitleTemplate"},
		{"unknown function", notifications.Template{TitleTemplate: "t", BodyTemplate: "{{exec \"rm -rf /\"}}"}, "BodyTemplate"},
		{"unknown field", notifications.Template{TitleTemplate: "{{.Password}}"}, "TitleTemplate"},
		{"bad action URL", notifications.Template{TitleTemplate: "t", Actions: []notifications.TemplateAction{{Label: "x", URL: "{{base_url"}}}, "Actions[0].URL"},
		{"empty title", notifications.Template{BodyTemplate: "b"}, "TitleTemplate"},
		{"no ID", notifications.Template{TitleTemplate: "t"}, "ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memstore.New(memstore.Config{})
			tc.tmpl.Name = tc.name
			if tc.name != "no ID" {
				tc.tmpl.ID = uuid.New()
			}
			err := notifications.NewRegistry(helpers).Register(ctx, store, tc.tmpl)
			if !errors.Is(err, notifications.ErrInvalidTemplate) || !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("err = %v, want ErrInvalidTemplate naming %q and %q", err, tc.name, tc.text)
			}
			if _, err := store.Template(ctx, tc.tmpl.ID); !errors.Is(err, notifications.ErrNotFound) {
				t.Fatalf("the refused template was stored: %v", err)
			}
		})
	}
}

// TestUserValuesCannotInjectMarkdown: labels, data and names are escaped before the
// templates run, so links, images and HTML in them stay literal text.
func TestUserValuesCannotInjectMarkdown(t *testing.T) {
	t.Parallel()
	tmpl := notifications.Template{TitleTemplate: "{{.Labels.title}}", BodyTemplate: "From {{.UserName}}: {{.Labels.msg}} {{.Data.n}}"}
	p := notifications.MessagePayload{
		UserName: "[Ada](https://evil.example)",
		Labels:   map[string]string{"title": "Hi\r\n# Heading", "msg": "![img](https://evil.example/x.png) <script>alert(1)</script> **bold**"},
		Data:     map[string]any{"n": "<img src=x onerror=alert(1)>"},
	}
	_, body, err := notifications.NewRegistry(nil).RenderTitleBody(tmpl, p)
	if err != nil {
		t.Fatal(err)
	}
	html, err := markdown.ToHTML(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<a ", "<img", "<script", "<strong>", "<h1>"} {
		if strings.Contains(html, bad) {
			t.Errorf("user values produced %q in the email HTML: %s", bad, html)
		}
	}
	// Payloads that are not JSON objects are refused on decode.
	for _, raw := range []string{"", "null x", "[1,2]", `{"user_id": 5}`, "\x00"} {
		if _, err := notifications.DecodePayload([]byte(raw)); raw != "" && !errors.Is(err, notifications.ErrInvalidMessage) {
			t.Errorf("DecodePayload(%q) = %v, want ErrInvalidMessage", raw, err)
		}
	}
}

// TestNilMapsAndMissingKeys: requests without labels or data enqueue, and templates that
// read absent keys render "<no value>" instead of failing.
func TestNilMapsAndMissingKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "Build {{.Labels.build}}", BodyTemplate: "{{.Data.reason}}", EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{DefaultMethods: []notifications.Method{notifications.MethodSMTP}})
	if err != nil {
		t.Fatal(err)
	}
	rcpt := &notifications.Recipient{UserID: uuid.New()}
	if _, err := enq.SendAtomic(ctx, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: rcpt.UserID, Recipient: rcpt}); err != nil {
		t.Fatalf("nil labels and data: %v", err)
	}
	title, body, err := notifications.NewRegistry(nil).RenderTitleBody(tmpl, notifications.MessagePayload{})
	if err != nil || title != "Build <no value>" || body != "<no value>" {
		t.Fatalf("render with nil maps: %q %q %v", title, body, err)
	}
}
