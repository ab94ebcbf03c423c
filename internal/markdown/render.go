package markdown

import (
	"bytes"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
	"golang.org/x/xerrors"
)

// md renders CommonMark plus strikethrough and tables. html.WithUnsafe is not set, so raw
// HTML in the source is dropped ("<!-- raw HTML omitted -->") and dangerous link schemes
// (javascript:, vbscript:, file:, data: other than images) are not rendered as links.
var md = goldmark.New(
	goldmark.WithExtensions(extension.Strikethrough, extension.Table),
	goldmark.WithRendererOptions(html.WithHardWraps()),
)

// ToHTML renders Markdown as an HTML fragment with raw HTML dropped.
func ToHTML(src string) (string, error) {
	var b bytes.Buffer
	if err := md.Convert([]byte(src), &b); err != nil {
		return "", xerrors.Errorf("render markdown to HTML: %w", err)
	}
	return b.String(), nil
}

// ToPlain renders Markdown as plain text: emphasis dropped, links written "text (url)",
// list items prefixed with "- ", paragraphs separated by blank lines, raw HTML dropped.
func ToPlain(src string) string {
	source := []byte(src)
	doc := md.Parser().Parse(text.NewReader(source))
	var b strings.Builder
	writePlain(&b, doc, source)
	return strings.TrimSpace(collapseBlankLines(b.String()))
}

func writePlain(b *strings.Builder, n ast.Node, src []byte) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch node := c.(type) {
		case *ast.Text:
			b.Write(unescape(node.Segment.Value(src)))
			if node.HardLineBreak() || node.SoftLineBreak() {
				b.WriteByte('\n')
			}
		case *ast.String:
			b.Write(node.Value)
		case *ast.CodeSpan:
			writePlain(b, node, src)
		case *ast.Link:
			label := plainOf(node, src)
			dest := string(node.Destination)
			if label == "" || label == dest {
				b.WriteString(dest)
			} else {
				b.WriteString(label + " (" + dest + ")")
			}
		case *ast.AutoLink:
			b.Write(node.URL(src))
		case *ast.Image:
			b.WriteString(plainOf(node, src))
		case *ast.RawHTML, *ast.HTMLBlock:
			// dropped
		case *ast.Paragraph, *ast.Heading, *ast.Blockquote, *ast.TextBlock:
			writePlain(b, node, src)
			b.WriteString("\n\n")
		case *ast.FencedCodeBlock, *ast.CodeBlock:
			lines := node.Lines()
			for i := 0; i < lines.Len(); i++ {
				seg := lines.At(i)
				b.Write(seg.Value(src))
			}
			b.WriteString("\n")
		case *ast.List:
			writePlain(b, node, src)
			b.WriteString("\n")
		case *ast.ListItem:
			b.WriteString("- ")
			var item strings.Builder
			writePlain(&item, node, src)
			b.WriteString(strings.TrimSpace(collapseBlankLines(item.String())))
			b.WriteString("\n")
		case *ast.ThematicBreak:
			b.WriteString("\n")
		default:
			writePlain(b, node, src)
		}
	}
}

// unescape turns backslash escapes and entity references in source text into the
// characters they stand for, in one pass: an escaped "\&" stays a literal "&" and never
// starts an entity.
func unescape(v []byte) []byte {
	resolve := func(b []byte) []byte { return util.ResolveEntityNames(util.ResolveNumericReferences(b)) }
	out := make([]byte, 0, len(v))
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && util.IsPunct(v[i+1]) {
			out = append(out, resolve(v[start:i])...)
			out = append(out, v[i+1])
			i++
			start = i + 1
		}
	}
	return append(out, resolve(v[start:])...)
}

func plainOf(n ast.Node, src []byte) string {
	var b strings.Builder
	writePlain(&b, n, src)
	return strings.TrimSpace(b.String())
}

func collapseBlankLines(s string) string {
	for strings.Contains(s, "\n\n\n") {
		s = strings.ReplaceAll(s, "\n\n\n", "\n\n")
	}
	return s
}
