package notifications

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications/internal/markdown"
)

// Template describes one kind of notification. Title, body and each action's label and URL
// are Go text/template sources that produce Markdown; they are executed over a
// MessagePayload (title and body at delivery, actions at enqueue) with the host's helper
// functions. User-controlled values (label and data keys and values at any depth, the
// recipient's names and email, action labels and URLs) are Markdown-escaped before title
// and body run, so they cannot inject links or HTML; plain keys (letters and digits joined
// by single - _ . : /) stay as they are. Action URLs escape user values for their place
// in the URL (see TemplateAction).
type Template struct {
	ID    uuid.UUID
	Name  string // unique
	Group string // free-form grouping for preference screens, e.g. "Workspace Events"
	Kind  string // free-form, e.g. "system"

	TitleTemplate string
	BodyTemplate  string
	Actions       []TemplateAction

	// Methods are the methods the template is delivered by. When empty, it is delivered
	// by the enqueuer's EnqueuerConfig.DefaultMethods minus ExcludeMethods; a template
	// that ends up with no method is refused at enqueue with an error naming it.
	Methods []Method
	// ExcludeMethods removes methods from the defaults (a one-time passcode: exclude
	// MethodInbox). Only with an empty Methods.
	ExcludeMethods []Method

	// EnabledByDefault: when false the template is opt-in, and only users who enabled it
	// through a preference receive it.
	EnabledByDefault bool
}

// TemplateAction is an action whose label and URL are templates rendered at enqueue. The
// label is plain text. In the URL, every value printed is escaped for its place
// (url.PathEscape in the path and fragment, url.QueryEscape in the query) except the
// output of the host's helpers, of urlquery, of url_path (a value whose "/" separates
// escaped path segments) and of url_raw (a value as it is); a rendered URL whose scheme,
// host or user info differs from what the template's text and helpers before the first
// escaped value give is refused with ErrInvalidMessage.
type TemplateAction struct {
	Label string
	URL   string
}

// validate checks that t is complete and that every template in it parses with helpers.
// The error names the template and the field.
func (t Template) validate(helpers template.FuncMap) error {
	if t.ID == uuid.Nil {
		return xerrors.Errorf("template %q: ID must be set: %w", t.Name, ErrInvalidTemplate)
	}
	if strings.TrimSpace(t.Name) == "" {
		return xerrors.Errorf("template %s: Name must be set: %w", t.ID, ErrInvalidTemplate)
	}
	if strings.TrimSpace(t.TitleTemplate) == "" {
		return xerrors.Errorf("template %q: TitleTemplate must be set: %w", t.Name, ErrInvalidTemplate)
	}
	if len(t.Methods) > 0 && len(t.ExcludeMethods) > 0 {
		return xerrors.Errorf("template %q: set Methods or ExcludeMethods, not both: %w", t.Name, ErrInvalidTemplate)
	}
	for _, list := range []struct {
		field   string
		methods []Method
	}{{"Methods", t.Methods}, {"ExcludeMethods", t.ExcludeMethods}} {
		seen := make(map[Method]bool, len(list.methods))
		for i, m := range list.methods {
			if strings.TrimSpace(string(m)) == "" || seen[m] {
				return xerrors.Errorf("template %q: %s[%d] %q is empty or repeated: %w", t.Name, list.field, i, m, ErrInvalidTemplate)
			}
			seen[m] = true
		}
	}
	fields := []struct{ name, src string }{
		{"TitleTemplate", t.TitleTemplate},
		{"BodyTemplate", t.BodyTemplate},
	}
	for i, a := range t.Actions {
		if strings.TrimSpace(a.Label) == "" || strings.TrimSpace(a.URL) == "" {
			return xerrors.Errorf("template %q: Actions[%d] needs both Label and URL: %w", t.Name, i, ErrInvalidTemplate)
		}
		fields = append(fields,
			struct{ name, src string }{fmt.Sprintf("Actions[%d].Label", i), a.Label},
			struct{ name, src string }{fmt.Sprintf("Actions[%d].URL", i), a.URL})
	}
	for _, f := range fields {
		var tpl *template.Template
		var err error
		if strings.HasSuffix(f.name, ".URL") {
			var u *actionURLTemplate
			if u, err = parseActionURL(f.name, f.src, helpers); err == nil {
				tpl = u.full
			}
		} else {
			tpl, err = parseTemplate(f.name, f.src, helpers)
		}
		if err != nil {
			return xerrors.Errorf("template %q: field %s does not parse: %v: %w", t.Name, f.name, err, ErrInvalidTemplate)
		}
		// A trial run over an empty payload finds references to fields a payload does not
		// have ({{.Pasword}}), which parse but could never render. Other execution errors
		// depend on the data and are left to delivery.
		if err := tpl.Execute(io.Discard, MessagePayload{Labels: map[string]string{}, Data: map[string]any{}}); err != nil &&
			strings.Contains(err.Error(), "can't evaluate field") {
			return xerrors.Errorf("template %q: field %s: %v: %w", t.Name, f.name, err, ErrInvalidTemplate)
		}
	}
	return nil
}

// TemplateStore stores templates. Registry.Register is its consumer.
type TemplateStore interface {
	// UpsertTemplates inserts or replaces the templates by ID, atomically.
	UpsertTemplates(ctx context.Context, templates ...Template) error
}

func parseTemplate(name, src string, helpers template.FuncMap) (*template.Template, error) {
	return template.New(name).Funcs(helpers).Option("missingkey=default").Parse(src)
}

// renderer executes templates with a fixed set of helpers and caches parsed templates by
// source text. Safe for concurrent use.
type renderer struct {
	helpers  template.FuncMap
	mu       sync.RWMutex
	cache    map[string]*parsedTemplate
	urlCache map[string]*actionURLTemplate
}

// parsedTemplate is a parsed title, body or action label template.
type parsedTemplate struct {
	t *template.Template
	// plan, when not nil, renders t over a MessagePayload without text/template: t is only
	// text and actions that print one of the payload's string fields ({{.UserName}}) or a
	// label with a plain key ({{.Labels.build}}).
	plan []planPart
}

// maxCachedTemplates bounds the parse cache; it is cleared when full (templates are few
// and registered at start-up, so this only matters for hosts that generate them).
const maxCachedTemplates = 4096

func newRenderer(helpers template.FuncMap) *renderer {
	return &renderer{helpers: helpers, cache: make(map[string]*parsedTemplate), urlCache: make(map[string]*actionURLTemplate)}
}

func (r *renderer) parse(src string) (*parsedTemplate, error) {
	return cachedParse(&r.mu, r.cache, src, func() (*parsedTemplate, error) {
		t, err := parseTemplate("notification", src, r.helpers)
		if err != nil {
			return nil, err
		}
		return &parsedTemplate{t: t, plan: planOf(t)}, nil
	})
}

// parseURL is parse for action URL templates (parseActionURL), with its own cache.
func (r *renderer) parseURL(src string) (*actionURLTemplate, error) {
	return cachedParse(&r.mu, r.urlCache, src, func() (*actionURLTemplate, error) {
		return parseActionURL("url", src, r.helpers)
	})
}

// cachedParse returns cache[src], or parses and caches it (clearing a full cache first).
func cachedParse[T any](mu *sync.RWMutex, cache map[string]T, src string, parse func() (T, error)) (T, error) {
	mu.RLock()
	t, ok := cache[src]
	mu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := parse()
	if err != nil {
		return t, err
	}
	mu.Lock()
	if len(cache) >= maxCachedTemplates {
		clear(cache)
	}
	cache[src] = t
	mu.Unlock()
	return t, nil
}

// executeURL renders an action URL template and checks that user values did not change
// the scheme, host or user info its literal prefix gives.
func (r *renderer) executeURL(src string, data any) (string, error) {
	t, err := r.parseURL(src)
	if err != nil {
		return "", xerrors.Errorf("parse template: %v: %w", err, ErrInvalidTemplate)
	}
	var out, prefix strings.Builder
	if err := t.full.Execute(&out, data); err != nil {
		return "", xerrors.Errorf("execute template: %v: %w", err, ErrInvalidTemplate)
	}
	if t.prefix != nil {
		if err := t.prefix.Execute(&prefix, data); err != nil {
			return "", xerrors.Errorf("execute template prefix: %v: %w", err, ErrInvalidTemplate)
		}
	}
	rendered := strings.TrimSpace(out.String())
	if err := checkActionURL(strings.TrimSpace(prefix.String()), rendered); err != nil {
		return "", xerrors.Errorf("%v: %w", err, ErrInvalidMessage)
	}
	return rendered, nil
}

func (r *renderer) execute(src string, data any) (string, error) {
	if src == "" {
		return "", nil
	}
	t, err := r.parse(src)
	if err != nil {
		return "", xerrors.Errorf("parse template: %w", err)
	}
	var b strings.Builder
	if err := t.t.Execute(&b, data); err != nil {
		return "", xerrors.Errorf("execute template: %w", err)
	}
	return b.String(), nil
}

// escapedPayload returns a copy of p whose user-controlled values are Markdown-escaped:
// names and email, label and data keys and values at any depth, and each action's label
// and URL.
func escapedPayload(p MessagePayload) MessagePayload {
	p.UserName = markdown.Escape(p.UserName)
	p.UserUsername = markdown.Escape(p.UserUsername)
	p.UserEmail = markdown.Escape(p.UserEmail)
	p.NotificationName = markdown.Escape(p.NotificationName)
	// Empty labels, data and actions have nothing to escape; templates cannot tell them
	// from a copy.
	if len(p.Labels) > 0 {
		p.Labels = markdown.EscapeAny(p.Labels).(map[string]string)
	}
	if len(p.Data) > 0 {
		p.Data = markdown.EscapeAny(p.Data).(map[string]any)
	}
	if len(p.Actions) > 0 {
		actions := make([]Action, len(p.Actions))
		for i, a := range p.Actions {
			actions[i] = Action{Label: markdown.Escape(a.Label), URL: markdown.Escape(a.URL)}
		}
		p.Actions = actions
	}
	return p
}

func (r *renderer) actions(tmpl Template, payload MessagePayload) ([]Action, error) {
	var out []Action
	for i, a := range tmpl.Actions {
		label, err := r.execute(a.Label, payload)
		if err != nil {
			return nil, xerrors.Errorf("template %q: render Actions[%d].Label: %v: %w", tmpl.Name, i, err, ErrInvalidTemplate)
		}
		url, err := r.executeURL(a.URL, payload)
		if err != nil {
			return nil, xerrors.Errorf("template %q: render Actions[%d].URL: %w", tmpl.Name, i, err)
		}
		out = append(out, Action{Label: strings.TrimSpace(label), URL: strings.TrimSpace(url)})
	}
	return out, nil
}

func (r *renderer) titleBody(titleSrc, bodySrc string, payload MessagePayload) (title, body string, err error) {
	if title, ok := r.renderPlan(titleSrc, &payload); ok {
		if body, ok := r.renderPlan(bodySrc, &payload); ok {
			return strings.TrimSpace(title), strings.TrimSpace(body), nil
		}
	}
	data := escapedPayload(payload)
	title, err = r.execute(titleSrc, data)
	if err != nil {
		return "", "", xerrors.Errorf("render title: %w", err)
	}
	body, err = r.execute(bodySrc, data)
	if err != nil {
		return "", "", xerrors.Errorf("render body: %w", err)
	}
	return strings.TrimSpace(title), strings.TrimSpace(body), nil
}

// planPart is a piece of a plan: literal text, or the payload field field names (when
// it is not fieldNone), or for fieldLabel the label named label.
type planPart struct {
	text  string
	field planField
	label string
}

// planField names a MessagePayload field a plan may print.
type planField int

const (
	fieldNone planField = iota
	fieldVersion
	fieldNotificationName
	fieldNotificationTemplateID
	fieldUserID
	fieldUserEmail
	fieldUserName
	fieldUserUsername
	fieldLabel // {{.Labels.key}}
)

// planFields are the fields a plan may print, by name.
var planFields = map[string]planField{
	"Version": fieldVersion, "NotificationName": fieldNotificationName, "NotificationTemplateID": fieldNotificationTemplateID,
	"UserID": fieldUserID, "UserEmail": fieldUserEmail, "UserName": fieldUserName, "UserUsername": fieldUserUsername,
}

// noValue is what text/template prints for a map key that is not there.
const noValue = "<no value>"

// value is the part's value in p as escapedPayload gives it to templates; ok is false
// when only text/template can tell (two labels whose keys escape alike).
func (part *planPart) value(p *MessagePayload) (string, bool) {
	switch part.field {
	case fieldVersion:
		return p.Version, true
	case fieldNotificationName:
		return markdown.Escape(p.NotificationName), true
	case fieldNotificationTemplateID:
		return p.NotificationTemplateID, true
	case fieldUserID:
		return p.UserID, true
	case fieldUserEmail:
		return markdown.Escape(p.UserEmail), true
	case fieldUserName:
		return markdown.Escape(p.UserName), true
	case fieldUserUsername:
		return markdown.Escape(p.UserUsername), true
	case fieldLabel:
		// The escaped labels are keyed by markdown.EscapeKey: part.label (a plain key)
		// itself, or another key that escapes to it.
		v, found := p.Labels[part.label]
		for k := range p.Labels {
			if k != part.label && markdown.EscapeKey(k) == part.label {
				return "", false
			}
		}
		if !found {
			return noValue, true
		}
		return markdown.Escape(v), true
	}
	return part.text, true
}

// planOf returns the plan of t, or nil when t has anything besides text and {{.Field}}
// actions on the fields in planFields or on a label with a plain key ({{.Labels.key}}).
func planOf(t *template.Template) []planPart {
	if t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	plan := make([]planPart, 0, len(t.Tree.Root.Nodes))
	for _, node := range t.Tree.Root.Nodes {
		switch n := node.(type) {
		case *parse.TextNode:
			plan = append(plan, planPart{text: string(n.Text)})
		case *parse.ActionNode:
			if n.Pipe == nil || n.Pipe.IsAssign || len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
				return nil
			}
			f, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
			switch {
			case !ok:
				return nil
			case len(f.Ident) == 1 && planFields[f.Ident[0]] != fieldNone:
				plan = append(plan, planPart{field: planFields[f.Ident[0]]})
			case len(f.Ident) == 2 && f.Ident[0] == "Labels" && markdown.EscapeKey(f.Ident[1]) == f.Ident[1]:
				plan = append(plan, planPart{field: fieldLabel, label: f.Ident[1]})
			default:
				return nil
			}
		default:
			return nil
		}
	}
	return plan
}

// renderPlan renders src over p (escaped as escapedPayload does) when src is empty or
// has a plan; ok is false otherwise, and for a source that does not parse.
func (r *renderer) renderPlan(src string, p *MessagePayload) (out string, ok bool) {
	if src == "" {
		return "", true
	}
	t, err := r.parse(src)
	if err != nil || t.plan == nil {
		return "", false
	}
	switch {
	case len(t.plan) == 0:
		return "", true
	case len(t.plan) == 1 && t.plan[0].field == fieldNone:
		return t.plan[0].text, true
	}
	// Values first, so that the result is allocated once.
	var values [8]string
	parts := values[:0]
	n := 0
	for i := range t.plan {
		s, ok := t.plan[i].value(p)
		if !ok {
			return "", false
		}
		if len(parts) < cap(parts) {
			parts = append(parts, s)
		}
		n += len(s)
	}
	var b strings.Builder
	b.Grow(n)
	for i := range t.plan {
		if i < len(parts) {
			b.WriteString(parts[i])
			continue
		}
		s, _ := t.plan[i].value(p) // ok above
		b.WriteString(s)
	}
	return b.String(), true
}
