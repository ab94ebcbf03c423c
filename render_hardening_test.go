package notifications_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"text/template"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/markdown"
)

// TestUserKeysNestedValuesAndActionLabelsCannotInjectMarkdown: label and data keys (in
// range loops), values nested in data at any depth, and action labels read through
// .Actions are escaped like plain values: no link, image or HTML reaches the email.
// Plain keys (letters and digits joined by single - _ . : /) stay as they are, so
// templates can still name them.
func TestUserKeysNestedValuesAndActionLabelsCannotInjectMarkdown(t *testing.T) {
	t.Parallel()
	link, image := "[Reset your password](https://evil.example/phish)", "![i](https://evil.example/t.png)"
	p := notifications.MessagePayload{
		Labels: map[string]string{link: "v", image: "w", "user_name": "Ada", "app.kubernetes.io/name": "api"},
		Data: map[string]any{
			link:    "x",
			"list":  []any{link, map[string]any{image: image}},
			"typed": map[string][]string{link: {image}},
			"deep":  map[string]any{"a": map[string]any{"b": []any{[]any{image}}}},
			"array": [2]string{link, image},
		},
		Actions: []notifications.Action{{Label: link + " <b>x</b>", URL: "https://app.example.com/reset"}},
	}
	for name, src := range map[string]string{
		"label keys":          `{{range $k, $v := .Labels}}{{$k}} {{end}}`,
		"data keys":           `{{range $k, $v := .Data}}{{$k}} {{end}}`,
		"nested values":       `{{range .Data.list}}{{.}} {{end}}{{range $k, $v := index .Data.list 1}}{{$k}} {{$v}}{{end}}`,
		"typed nested":        `{{range $k, $v := .Data.typed}}{{$k}} {{index $v 0}}{{end}}`,
		"deep nested":         `{{index (index .Data.deep.a.b 0) 0}}`,
		"array":               `{{index .Data.array 0}} {{index .Data.array 1}}`,
		"whole maps":          `{{.Labels}} {{.Data}}`,
		"action labels":       `{{range .Actions}}[{{.Label}}]({{.URL}}){{end}}`,
		"action labels plain": `{{range .Actions}}{{.Label}}{{end}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, body, err := notifications.NewRegistry(nil).RenderTitleBody(notifications.Template{TitleTemplate: "t", BodyTemplate: src}, p)
			if err != nil {
				t.Fatal(err)
			}
			html, err := markdown.ToHTML(body)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(html, "evil.example/phish\"") || strings.Contains(html, "<img") || strings.Contains(html, "<b>") {
				t.Fatalf("user keys or values produced markup:\n%s\n%s", body, html)
			}
			if name == "action labels" && !strings.Contains(html, `<a href="https://app.example.com/reset">`) {
				t.Fatalf("the template's own link is gone:\n%s", html)
			}
		})
	}
	title, _, err := notifications.NewRegistry(nil).RenderTitleBody(notifications.Template{TitleTemplate: `{{.Labels.user_name}} {{index .Labels "app.kubernetes.io/name"}}`}, p)
	if err != nil || title != "Ada api" {
		t.Fatalf("plain keys: %q %v", title, err)
	}
}

// TestActionURLsEscapeUserValues: user values in action URL templates are escaped as path
// segments (url.PathEscape) before the query and as query values (url.QueryEscape) after
// it; url_path keeps "/" between escaped segments and url_raw inserts a value as is; a
// rendered URL whose scheme, host or user info differs from what the template's literal
// prefix (text and helper output before the first user value) gives is refused.
func TestActionURLsEscapeUserValues(t *testing.T) {
	t.Parallel()
	helpers := template.FuncMap{"base_url": func() string { return "https://app.example.com" }}
	for _, tc := range []struct {
		url    string
		labels map[string]string
		want   string // "" means refused
	}{
		{"{{base_url}}/u/{{.Labels.name}}", map[string]string{"name": "a b/c?d#e"}, "https://app.example.com/u/a%20b%2Fc%3Fd%23e"},
		{"{{base_url}}/reset?code={{.Labels.code}}", map[string]string{"code": "x&next=https://evil.example"}, "https://app.example.com/reset?code=x%26next%3Dhttps%3A%2F%2Fevil.example"},
		{"{{base_url}}/s?q={{.Labels.q}}#{{.Labels.f}}", map[string]string{"q": "a b+c", "f": "x y"}, "https://app.example.com/s?q=a+b%2Bc#x%20y"},
		{"{{base_url}}/{{url_path .Labels.repo}}/issues", map[string]string{"repo": "acme/my api"}, "https://app.example.com/acme/my%20api/issues"},
		{"{{base_url}}/{{url_raw .Labels.p}}", map[string]string{"p": "a/b?c=d"}, "https://app.example.com/a/b?c=d"},
		{"/builds/{{.Labels.id}}", map[string]string{"id": "42"}, "/builds/42"},
		{"https://app.example.com/b/{{.Labels.id}}", map[string]string{"id": "42"}, "https://app.example.com/b/42"},
		// Host, scheme or user info changed by a user value: refused.
		{"{{base_url}}{{.Labels.path}}", map[string]string{"path": "@evil.example/login"}, ""},
		{"{{base_url}}{{.Labels.path}}", map[string]string{"path": ".evil.example/x"}, ""},
		{"{{base_url}}{{.Labels.path}}", map[string]string{"path": ":8443/x"}, ""},
		{"{{.Labels.url}}", map[string]string{"url": "javascript:alert(1)"}, ""},
		{"/{{url_path .Labels.p}}", map[string]string{"p": "/evil.example/x"}, ""},
		{"https://{{.Labels.tenant}}.example.com/", map[string]string{"tenant": "evil.example/x?"}, ""},
		{"{{base_url}}{{url_raw .Labels.p}}", map[string]string{"p": "@evil.example"}, ""},
		{"{{url_raw .Labels.url}}", map[string]string{"url": "https://evil.example/"}, ""},
	} {
		tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "t",
			Actions: []notifications.TemplateAction{{Label: "Open", URL: tc.url}}}
		if err := notifications.NewRegistry(helpers).Validate(tmpl); err != nil {
			t.Fatalf("%s: Validate: %v", tc.url, err)
		}
		actions, err := notifications.NewRegistry(helpers).RenderActions(tmpl, notifications.MessagePayload{Labels: tc.labels})
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s with %v: rendered %q, want it refused", tc.url, tc.labels, actions[0].URL)
			} else if !errors.Is(err, notifications.ErrInvalidMessage) || !strings.Contains(err.Error(), "Actions[0].URL") {
				t.Errorf("%s with %v: err = %v, want ErrInvalidMessage naming Actions[0].URL", tc.url, tc.labels, err)
			}
			continue
		}
		if err != nil || actions[0].URL != tc.want {
			t.Errorf("%s with %v: %q (%v), want %q", tc.url, tc.labels, actionURL(actions), err, tc.want)
		}
	}
}

func actionURL(a []notifications.Action) string {
	if len(a) == 0 {
		return ""
	}
	return a[0].URL
}

// FuzzRenderActionURL: whatever the user values, an action URL renders with each value
// escaped into its own path segment, query value and fragment (decoding gives it back),
// and a value placed right after the host either leaves scheme, host and user info alone
// or is refused with ErrInvalidMessage.
func FuzzRenderActionURL(f *testing.F) {
	for _, s := range []string{"plain", "a b/c?d#e&f=g", "@evil.example/login", ":8080", ".evil.example", "x&next=https://evil.example",
		"%2F%00", "javascript:alert(1)", "//evil.example", "\r\n", "ü/ß", "../../admin"} {
		f.Add(s, s, s)
	}
	helpers := template.FuncMap{"base_url": func() string { return "https://app.example.com" }}
	parts := notifications.Template{Name: "parts", Actions: []notifications.TemplateAction{{Label: "l", URL: "{{base_url}}/p/{{.Labels.a}}?q={{.Labels.b}}#{{.Labels.c}}"}}}
	glued := notifications.Template{Name: "glued", Actions: []notifications.TemplateAction{{Label: "l", URL: "{{base_url}}{{.Labels.a}}"}}}
	whole := notifications.Template{Name: "whole", Actions: []notifications.TemplateAction{{Label: "l", URL: "{{.Labels.a}}/{{url_path .Labels.b}}"}}}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		p := notifications.MessagePayload{Labels: map[string]string{"a": a, "b": b, "c": c}}
		actions, err := notifications.NewRegistry(helpers).RenderActions(parts, p)
		if err != nil {
			t.Fatalf("parts: %v", err)
		}
		u, err := url.Parse(actions[0].URL)
		if err != nil {
			t.Fatalf("parts: %q does not parse: %v", actions[0].URL, err)
		}
		if u.Scheme != "https" || u.Host != "app.example.com" || u.User != nil || u.Path != "/p/"+a || u.Query().Get("q") != b || len(u.Query()) != 1 || u.Fragment != c {
			t.Fatalf("parts: %q gives scheme %q host %q path %q query %v fragment %q", actions[0].URL, u.Scheme, u.Host, u.Path, u.Query(), u.Fragment)
		}
		for _, tc := range []struct {
			tmpl         notifications.Template
			scheme, host string
		}{{glued, "https", "app.example.com"}, {whole, "", ""}} {
			actions, err := notifications.NewRegistry(helpers).RenderActions(tc.tmpl, p)
			if err != nil {
				if !errors.Is(err, notifications.ErrInvalidMessage) {
					t.Fatalf("%s: %v is not ErrInvalidMessage", tc.tmpl.Name, err)
				}
				continue
			}
			u, err := url.Parse(actions[0].URL)
			if err != nil || !strings.EqualFold(u.Scheme, tc.scheme) || !strings.EqualFold(u.Host, tc.host) || u.User != nil {
				t.Fatalf("%s: %q (%v) changed scheme, host or user info", tc.tmpl.Name, actions[0].URL, err)
			}
		}
	})
}
