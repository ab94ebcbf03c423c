package markdown_test

import (
	"strings"
	"testing"

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
