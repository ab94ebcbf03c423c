package notifications_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/markdown"
)

// FuzzRenderTitleBody: whatever users put in labels, data and names, rendering does not
// fail or panic, and the email HTML made from the body contains no element that the
// template itself does not produce: user values cannot add links, images, HTML or
// formatting.
func FuzzRenderTitleBody(f *testing.F) {
	for _, s := range []string{"plain", "[x](https://evil.example)", "![i](x.png)", "<script>alert(1)</script>", "**b** _i_ `c`",
		"# h\n- l\n1. o\n> q", "line\r\nBcc: x@y", "&lt;b&gt; &#60;", "https://auto.link <https://x.y>", "| a | b |\n|---|---|", "~~s~~", "\\*"} {
		f.Add(s, s, s)
	}
	tmpl := notifications.Template{
		TitleTemplate: "Build {{.Labels.build}} by {{.UserName}}",
		BodyTemplate:  "Hi {{.UserName}},\n\nThe build **{{.Labels.build}}** failed: {{.Data.reason}}",
	}
	f.Fuzz(func(t *testing.T, name, label, data string) {
		p := notifications.MessagePayload{UserName: name, Labels: map[string]string{"build": label}, Data: map[string]any{"reason": data}}
		title, body, err := notifications.NewRegistry(nil).RenderTitleBody(tmpl, p)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		_ = markdown.ToPlain(title)
		html, err := markdown.ToHTML(body)
		if err != nil {
			t.Fatalf("to HTML: %v", err)
		}
		// The template makes one <p> with a <strong>, possibly a second <p>, and <br>s.
		allowed := map[string]int{"<p>": 2, "<strong>": 1}
		for _, tag := range []string{"<a ", "<img", "<script", "<h1", "<h2", "<ul", "<ol", "<li", "<blockquote", "<pre", "<code", "<em", "<del", "<table", "<hr", "<strong>", "<p>"} {
			if n := strings.Count(html, tag); n > allowed[tag] {
				t.Fatalf("user values produced %d × %q:\nname=%q label=%q data=%q\nbody=%q\nhtml=%s", n, tag, name, label, data, body, html)
			}
		}
	})
}

// FuzzDecodePayload: decoding arbitrary bytes never panics, and whatever decodes survives
// a round trip unchanged.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{`{}`, `{"_version":"1.2","user_id":"x","labels":{"a":"b"},"data":{"n":1,"l":[1,"x",null]}}`,
		`{"actions":[{"label":"l","url":"u"}],"targets":["6a1f4f5e-2d0c-4b8e-9a43-0c7e5d1e0001"]}`, `null`, `[]`, `{"targets":["nope"]}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := notifications.DecodePayload(raw)
		if err != nil {
			return
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		q, err := notifications.DecodePayload(b)
		if err != nil {
			t.Fatalf("decode what we encoded: %v", err)
		}
		b2, _ := json.Marshal(q)
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("round trip changed the payload:\n%s\n%s", b, b2)
		}
	})
}
