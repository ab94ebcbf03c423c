package markdown

import "testing"

// Escape skips the replacer only for values it would leave unchanged: every byte the
// replacer changes, alone or next to others, is one needsReplace reports.
func TestNeedsReplace(t *testing.T) {
	t.Parallel()
	for c := 0; c < 256; c++ {
		for _, s := range []string{string([]byte{byte(c)}), "a" + string([]byte{byte(c)}) + "b", string([]byte{byte(c), '\n'})} {
			if !needsReplace(s) && escaper.Replace(s) != s {
				t.Errorf("needsReplace(%q) = false, but the replacer gives %q", s, escaper.Replace(s))
			}
		}
	}
	for _, s := range []string{"", "plain text", "u@example.com", "ünï.:/ 123"} {
		if needsReplace(s) {
			t.Errorf("needsReplace(%q) = true", s)
		}
	}
}
