// Package markdown holds the Markdown helpers shared by the root package (escaping of
// user-controlled values before templates run) and the dispatch handlers (Markdown to HTML
// and to plain text).
package markdown

import "strings"

// escaper backslash-escapes every character that could open Markdown syntax (emphasis,
// code, links, images, autolinks, raw HTML, headings, lists, tables, strikethrough) and
// folds line breaks into spaces so that a value can never start a new block, such as a
// link reference definition. CommonMark lets any ASCII punctuation be escaped, so an
// escaped value renders as exactly the text the user supplied.
var escaper = strings.NewReplacer(
	"\\", "\\\\",
	"`", "\\`",
	"*", "\\*",
	"_", "\\_",
	"{", "\\{",
	"}", "\\}",
	"[", "\\[",
	"]", "\\]",
	"(", "\\(",
	")", "\\)",
	"#", "\\#",
	"+", "\\+",
	"-", "\\-",
	"!", "\\!",
	"|", "\\|",
	"<", "\\<",
	">", "\\>",
	"~", "\\~",
	"&", "\\&",
	"\r\n", " ",
	"\r", " ",
	"\n", " ",
)

// Escape returns s with Markdown syntax neutralised, for interpolating a user-controlled
// value into a Markdown template. Besides the characters above, what only has meaning at
// the start of a line is neutralised at the start of the value (which a template may put
// at the start of a line): leading blanks (an indented code block) are dropped, and an
// ordered-list number ("1.") or a setext underline ("===") is escaped.
func Escape(s string) string {
	s = strings.TrimLeft(escaper.Replace(s), " \t")
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		digits++
	}
	switch {
	case digits > 0 && digits < len(s) && s[digits] == '.' && (digits+1 == len(s) || s[digits+1] == ' ' || s[digits+1] == '\t'):
		return s[:digits] + "\\" + s[digits:]
	case strings.HasPrefix(s, "="):
		return "\\" + s
	}
	return s
}

// EscapeAny escapes strings inside v (maps, slices, plain strings) and returns a copy;
// other values are returned as they are.
func EscapeAny(v any) any {
	switch t := v.(type) {
	case string:
		return Escape(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = EscapeAny(x)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(t))
		for k, x := range t {
			out[k] = Escape(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = EscapeAny(x)
		}
		return out
	case []string:
		out := make([]string, len(t))
		for i, x := range t {
			out[i] = Escape(x)
		}
		return out
	default:
		return v
	}
}
