package notifications_test

import (
	"strings"
	"testing"

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
		},
		Actions: []notifications.Action{{Label: link + " <b>x</b>", URL: "https://app.example.com/reset"}},
	}
	for name, src := range map[string]string{
		"label keys":          `{{range $k, $v := .Labels}}{{$k}} {{end}}`,
		"data keys":           `{{range $k, $v := .Data}}{{$k}} {{end}}`,
		"nested values":       `{{range .Data.list}}{{.}} {{end}}{{range $k, $v := index .Data.list 1}}{{$k}} {{$v}}{{end}}`,
		"typed nested":        `{{range $k, $v := .Data.typed}}{{$k}} {{index $v 0}}{{end}}`,
		"deep nested":         `{{index (index .Data.deep.a.b 0) 0}}`,
		"whole maps":          `{{.Labels}} {{.Data}}`,
		"action labels":       `{{range .Actions}}[{{.Label}}]({{.URL}}){{end}}`,
		"action labels plain": `{{range .Actions}}{{.Label}}{{end}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, body, err := notifications.RenderTitleBody(notifications.Template{TitleTemplate: "t", BodyTemplate: src}, p, nil)
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
	title, _, err := notifications.RenderTitleBody(notifications.Template{TitleTemplate: `{{.Labels.user_name}} {{index .Labels "app.kubernetes.io/name"}}`}, p, nil)
	if err != nil || title != "Ada api" {
		t.Fatalf("plain keys: %q %v", title, err)
	}
}
