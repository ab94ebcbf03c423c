package markdown_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/notifykit/notifications/internal/markdown"
)

func TestToHTMLDropsRawHTML(t *testing.T) {
	t.Parallel()
	got, err := markdown.ToHTML("Hello <script>alert(1)</script> **bold** [x](javascript:alert(1))")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "<script>") || strings.Contains(got, "javascript:") {
		t.Fatalf("unsafe HTML survived: %s", got)
	}
	if !strings.Contains(got, "<strong>bold</strong>") {
		t.Fatalf("markdown not rendered: %s", got)
	}
}

func TestToPlain(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"**Build** _failed_", "Build failed"},
		{"See [the logs](https://ci.example.com/1)", "See the logs (https://ci.example.com/1)"},
		{"<https://example.com>", "https://example.com"},
		{"a <b>raw</b> c", "a raw c"},
		{"# Title\n\nBody line", "Title\n\nBody line"},
		{"- one\n- two", "- one\n- two"},
		{"`code` here", "code here"},
	}
	for _, tc := range tests {
		if got := markdown.ToPlain(tc.in); got != tc.want {
			t.Errorf("ToPlain(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEscapeNeutralisesMarkdown(t *testing.T) {
	t.Parallel()
	evil := "[click](https://evil.example) <img src=x onerror=alert(1)> **x**\n[ref]: https://evil.example"
	html, err := markdown.ToHTML("Label: " + markdown.Escape(evil))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "<a ") || strings.Contains(html, "<img") || strings.Contains(html, "<strong>") {
		t.Fatalf("escaped value produced markup: %s", html)
	}
	if plain := markdown.ToPlain(markdown.Escape(evil)); plain != strings.ReplaceAll(evil, "\n", " ") {
		t.Fatalf("escaped value does not read back as the original text:\n got %q\nwant %q", plain, strings.ReplaceAll(evil, "\n", " "))
	}
}

var (
	htmlTag = regexp.MustCompile(`<[a-z][^>]*>`)
	// dangerousTag matches tags that run code: script-like elements, event handler
	// attributes, and javascript:/vbscript:/data: URLs in href or src.
	dangerousTag = regexp.MustCompile(`^<(script|iframe|object|embed|style|svg|math)\b|\son[a-z]+=|(href|src)="\s*(javascript|vbscript|data):`)
)

// FuzzMarkdown: rendering any input never panics or errors; the HTML never carries
// executable markup (raw HTML is dropped and dangerous link schemes are not linked); the
// plain text is valid UTF-8 whenever the input is; and escaped text renders back to
// itself as plain text.
func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{"**b** [l](https://x.y) ![i](p.png)", "<script>alert(1)</script>", "[x](javascript:alert(1))",
		"<img src=x onerror=alert(1)>", "# h\n\n- a\n- b\n\n```\ncode\n```", "| a |\n|---|\n| b |", "&amp; &#x3C; &lt;", "line\nbreak  \nhard"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		html, err := markdown.ToHTML(src)
		if err != nil {
			t.Fatalf("ToHTML: %v", err)
		}
		for _, tag := range htmlTag.FindAllString(strings.ToLower(html), -1) {
			if dangerousTag.MatchString(tag) {
				t.Fatalf("ToHTML(%q) produced %q:\n%s", src, tag, html)
			}
		}
		plain := markdown.ToPlain(src)
		if utf8.ValidString(src) && !utf8.ValidString(plain) {
			t.Fatalf("ToPlain(%q) = %q is not valid UTF-8", src, plain)
		}
		if utf8.ValidString(src) && !strings.ContainsAny(src, "\r\x00") {
			if got, want := strings.Join(strings.Fields(markdown.ToPlain(markdown.Escape(src))), " "), strings.Join(strings.Fields(src), " "); got != want {
				t.Fatalf("ToPlain(Escape(%q)) = %q, want the text back", src, got)
			}
		}
	})
}
