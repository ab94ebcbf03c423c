// Package markdown holds the Markdown helpers shared by the root package (escaping of
// user-controlled values before templates run) and the dispatch handlers (Markdown to HTML
// and to plain text).
package markdown

import (
	"reflect"
	"strings"
	"unicode"
)

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

// replaced marks the bytes that begin one of escaper's old strings.
var replaced = func() (t [256]bool) {
	for _, c := range []byte("\\`*_{}[]()#+-!|<>~&\r\n") {
		t[c] = true
	}
	return t
}()

// needsReplace reports whether escaper would change s; when it would not, Escape skips
// it (it allocates even when nothing changes).
func needsReplace(s string) bool {
	for i := 0; i < len(s); i++ {
		if replaced[s[i]] {
			return true
		}
	}
	return false
}

// Escape returns s with Markdown syntax neutralised, for interpolating a user-controlled
// value into a Markdown template. Besides the characters above, what only has meaning at
// the start of a line is neutralised at the start of the value (which a template may put
// at the start of a line): leading blanks (an indented code block) are dropped, and an
// ordered-list number ("1.") or a setext underline ("===") is escaped.
func Escape(s string) string {
	if needsReplace(s) {
		s = escaper.Replace(s)
	}
	s = strings.TrimLeft(s, " \t")
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

// EscapeKey escapes a map key for interpolation. A plain key — letters and digits, joined
// by single "-", "_", ".", ":" or "/" (user_name, app.kubernetes.io/name) — can form no
// Markdown and is returned unchanged, so templates can still name it; any other key is
// escaped like a value (Escape).
func EscapeKey(k string) string {
	if isPlainKey(k) {
		return k
	}
	return Escape(k)
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	sep := true // at the start, as after a separator
	for _, r := range k {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			sep = false
		case strings.ContainsRune("-_.:/", r) && !sep:
			sep = true
		default:
			return false
		}
	}
	return !sep
}

// EscapeAny returns a copy of v with every string in it escaped: strings, and at any
// depth the elements of slices and arrays and the keys (EscapeKey) and values of maps,
// whatever their element types (map[string]any, []any, map[string][]string, ...). Other
// values (numbers, booleans, structs) are returned as they are.
func EscapeAny(v any) any {
	if v == nil {
		return nil
	}
	return escapeValue(reflect.ValueOf(v)).Interface()
}

func escapeValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		return reflect.ValueOf(Escape(v.String())).Convert(v.Type())
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(escapeValue(v.Elem()))
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			if k.Kind() == reflect.String {
				k = reflect.ValueOf(EscapeKey(k.String())).Convert(k.Type())
			}
			out.SetMapIndex(k, escapeValue(it.Value()))
		}
		return out
	case reflect.Slice:
		if v.IsNil() || v.Type().Elem().Kind() == reflect.Uint8 {
			return v // nil, or bytes
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(escapeValue(v.Index(i)))
		}
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			out.Index(i).Set(escapeValue(v.Index(i)))
		}
		return out
	default:
		return v
	}
}
