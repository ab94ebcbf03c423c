package notifications

import (
	"strings"
	"testing"

	"github.com/notifykit/notifications/internal/markdown"
)

// planSources are title and body sources, with whether they have a plan.
var planSources = []struct {
	src  string
	plan bool
}{
	{"Body", true},
	{"  Hi {{.UserName}},\n", true},
	{"{{.UserName}}{{.UserEmail}} {{.UserUsername}} {{.NotificationName}} {{.UserID}} {{.NotificationTemplateID}} {{.Version}}", true},
	{"{{- .UserName -}}  !", true},
	{"{{/* c */}}", true},
	{`{{define "x"}}y{{end}}z`, true},
	{"{{.Labels.x}}", true},
	{"Build **{{.Labels.build}}** {{.UserName}}", true},
	{"{{.Labels.missing}}", true},
	{"{{.Labels.a__b}}", false},
	{"{{.Labels.x.y}}", false},
	{"{{.Data.y}}", false},
	{"{{.Actions}}", false},
	{"{{.}}", false},
	{`{{.UserName | printf "%q"}}`, false},
	{"{{$x := .UserName}}{{$x}}", false},
	{"{{if .UserName}}a{{end}}", false},
	{"{{.Nope}}", false},
	{"{{", false},
}

// renderReference renders title and body the way titleBody does without a plan.
func renderReference(r *renderer, titleSrc, bodySrc string, p MessagePayload) (string, string, error) {
	data := escapedPayload(p)
	title, err := r.execute(titleSrc, data)
	if err != nil {
		return "", "", err
	}
	body, err := r.execute(bodySrc, data)
	if err != nil {
		return "", "", err
	}
	return strings.TrimSpace(title), strings.TrimSpace(body), nil
}

func TestRenderPlan(t *testing.T) {
	t.Parallel()
	r := newRenderer(nil)
	for _, tc := range planSources {
		parsed, err := r.parse(tc.src)
		if got := err == nil && parsed.plan != nil; got != tc.plan {
			t.Errorf("%q: has plan %v, want %v", tc.src, got, tc.plan)
		}
	}
}

// FuzzRenderPlan: a plan renders exactly what text/template renders over the escaped
// payload, for every pair of sources. key is one more label's key: where it escapes like a
// label a plan prints, which of the two text/template prints depends on map order, and
// the plan must step aside.
func FuzzRenderPlan(f *testing.F) {
	for _, s := range []string{"plain", "[x](https://evil.example)", "  1. x", "=== h", "<b>&amp;</b>", "a\r\nb", "\\*_`~|", "ünï"} {
		f.Add(s, s, s, s, "k")
	}
	f.Add("a", "b", "c", "d", " x")
	f.Add("a", "b", "c", "d", "missing")
	f.Add("a", "b", "c", "d", "\tbuild")
	r := newRenderer(nil)
	f.Fuzz(func(t *testing.T, name, username, email, tmplName, key string) {
		p := MessagePayload{Version: "1.2", NotificationName: tmplName, NotificationTemplateID: "t", UserID: "u",
			UserName: name, UserUsername: username, UserEmail: email, Labels: map[string]string{"x": name, "build": username, key: email},
			Data: map[string]any{"y": email}}
		if key != "x" && key != "build" && (markdown.EscapeKey(key) == "x" || markdown.EscapeKey(key) == "build") {
			if _, ok := r.renderPlan("{{.Labels.x}}{{.Labels.build}}", &p); ok {
				t.Fatalf("label key %q escapes like a printed label's, and the plan rendered anyway", key)
			}
			return
		}
		for _, title := range planSources {
			for _, body := range append(planSources, struct {
				src  string
				plan bool
			}{"", true}) {
				gotT, gotB, gotErr := r.titleBody(title.src, body.src, p)
				wantT, wantB, wantErr := renderReference(r, title.src, body.src, p)
				if gotT != wantT || gotB != wantB || (gotErr == nil) != (wantErr == nil) {
					t.Fatalf("title %q body %q over %+v:\ngot  %q %q %v\nwant %q %q %v", title.src, body.src, p, gotT, gotB, gotErr, wantT, wantB, wantErr)
				}
			}
		}
	})
}
