package notifications

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"golang.org/x/xerrors"
)

// Action URL templates escape what they print. Every {{...}} that prints a value is escaped
// for where it stands in the URL: url.PathEscape before the first "?" of the template
// text, url.QueryEscape after it, url.PathEscape again in the fragment after "#". Not
// escaped: the output of the host's helpers ({{base_url}}), of urlquery, and of the two
// functions for deliberate raw use, url_path (keeps "/" between escaped segments) and
// url_raw (inserts the value as it is). After rendering, the URL's scheme, host and user
// info must be those that the template's literal prefix gives — the text and helper output
// before the first escaped value — so no user value can move a link to another site.

// Names of the functions that action URL templates get besides the host's helpers; the
// escaping ones are added by the rewrite and are not meant to be called by name.
const (
	urlPathFunc  = "url_path"
	urlRawFunc   = "url_raw"
	escPathFunc  = "_notifications_escape_path"
	escQueryFunc = "_notifications_escape_query"
)

// builtinsEscaped are text/template's own functions whose output is escaped like a value
// (urlquery is not among them: it escapes already).
var builtinsEscaped = []string{"and", "call", "html", "index", "slice", "js", "len", "not", "or",
	"print", "printf", "println", "eq", "ge", "gt", "le", "lt", "ne"}

func urlFuncs() template.FuncMap {
	return template.FuncMap{
		urlPathFunc: func(v any) string {
			segs := strings.Split(urlValue(v), "/")
			for i, s := range segs {
				segs[i] = url.PathEscape(s)
			}
			return strings.Join(segs, "/")
		},
		urlRawFunc:   urlValue,
		escPathFunc:  func(v any) string { return url.PathEscape(urlValue(v)) },
		escQueryFunc: func(v any) string { return url.QueryEscape(urlValue(v)) },
	}
}

// urlValue is how a value prints in a URL: as text/template prints it, a missing one empty.
func urlValue(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// actionURLTemplate is a parsed action URL template: full renders the URL with user values
// escaped, prefix renders its literal prefix (nil when it has none).
type actionURLTemplate struct {
	full, prefix *template.Template
}

// parseActionURL parses an action URL template with the host's helpers and rewrites it so
// that what it prints is escaped.
func parseActionURL(name, src string, helpers template.FuncMap) (*actionURLTemplate, error) {
	t, err := template.New(name).Funcs(helpers).Funcs(urlFuncs()).Option("missingkey=default").Parse(src)
	if err != nil {
		return nil, err
	}
	if len(t.Templates()) > 1 {
		return nil, xerrors.New("{{define}} and {{block}} are not supported in action URLs")
	}
	tree := t.Tree
	var prefixNodes []parse.Node
	inPrefix := true
	if _, err := rewriteURLList(tree, tree.Root, urlPath, &prefixNodes, &inPrefix); err != nil {
		return nil, err
	}
	out := &actionURLTemplate{full: t}
	if len(prefixNodes) > 0 {
		pt := &parse.Tree{Name: name + " prefix", Root: &parse.ListNode{NodeType: parse.NodeList, Nodes: prefixNodes}}
		p, err := t.Clone()
		if err != nil {
			return nil, err
		}
		if out.prefix, err = p.AddParseTree(pt.Name, pt); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type urlPart int

const (
	urlPath urlPart = iota
	urlQuery
	urlFragment
)

// rewriteURLList appends the escaping function for its place to every printing action in
// list, tracking the part of the URL from the template text; while *inPrefix, the nodes
// before the first escaped value are collected into prefix. It returns the part after the
// list.
func rewriteURLList(tree *parse.Tree, list *parse.ListNode, part urlPart, prefix *[]parse.Node, inPrefix *bool) (urlPart, error) {
	if list == nil {
		return part, nil
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			if *inPrefix {
				*prefix = append(*prefix, n.Copy())
			}
			for _, c := range n.Text {
				switch {
				case c == '?' && part == urlPath:
					part = urlQuery
				case c == '#':
					part = urlFragment
				}
			}
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 {
				continue // an assignment prints nothing
			}
			if raw, userValue := printsRaw(n.Pipe); raw {
				if userValue { // url_path, url_raw: unescaped, but not the template's own
					*inPrefix = false
				}
				if *inPrefix {
					*prefix = append(*prefix, n.Copy())
				}
				continue
			}
			*inPrefix = false
			fn := escPathFunc
			if part == urlQuery {
				fn = escQueryFunc
			}
			cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos,
				Args: []parse.Node{parse.NewIdentifier(fn).SetTree(tree).SetPos(n.Pos)}}
			n.Pipe.Cmds = append(n.Pipe.Cmds, cmd)
		case *parse.IfNode, *parse.RangeNode, *parse.WithNode:
			*inPrefix = false
			var branch *parse.BranchNode
			switch b := n.(type) {
			case *parse.IfNode:
				branch = &b.BranchNode
			case *parse.RangeNode:
				branch = &b.BranchNode
			case *parse.WithNode:
				branch = &b.BranchNode
			}
			noPrefix := false
			p1, err := rewriteURLList(tree, branch.List, part, prefix, &noPrefix)
			if err != nil {
				return part, err
			}
			p2, err := rewriteURLList(tree, branch.ElseList, part, prefix, &noPrefix)
			if err != nil {
				return part, err
			}
			part = max(part, p1, p2)
		case *parse.TemplateNode:
			return part, xerrors.New("{{template}} is not supported in action URLs")
		}
	}
	return part, nil
}

// printsRaw reports whether a pipeline's output goes into the URL unescaped: its last
// command calls a function that is neither a text/template builtin nor one whose output
// is escaped (a host helper, url_path, url_raw, urlquery). userValue reports url_path and
// url_raw, whose output is a user value although it is not escaped.
func printsRaw(p *parse.PipeNode) (raw, userValue bool) {
	if len(p.Cmds) == 0 {
		return false, false
	}
	last := p.Cmds[len(p.Cmds)-1]
	id, ok := last.Args[0].(*parse.IdentifierNode)
	if !ok || slices.Contains(builtinsEscaped, id.Ident) {
		return false, false
	}
	return true, id.Ident == urlPathFunc || id.Ident == urlRawFunc
}

// checkActionURL refuses a rendered URL whose scheme, host or user info differs from those
// of the template's literal prefix.
func checkActionURL(prefix, rendered string) error {
	got, err := url.Parse(rendered)
	if err != nil {
		return xerrors.Errorf("rendered URL %q does not parse: %w", rendered, err)
	}
	want, err := url.Parse(prefix)
	if err != nil {
		want = &url.URL{}
	}
	if !strings.EqualFold(got.Scheme, want.Scheme) || !strings.EqualFold(got.Host, want.Host) || got.User.String() != want.User.String() {
		return xerrors.Errorf("rendered URL %q has scheme %q, host %q and user info %q, but the template's literal prefix %q gives %q, %q and %q: a user value may not change them",
			rendered, got.Scheme, got.Host, got.User.String(), prefix, want.Scheme, want.Host, want.User.String())
	}
	return nil
}
