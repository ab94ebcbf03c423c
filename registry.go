package notifications

import (
	"context"
	"maps"
	"text/template"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// Registry is the one place a host's template helpers live (functions such as base_url or
// app_name that templates call). Registering templates validates them with these helpers,
// the enqueuer renders action labels and URLs with them, and the Manager renders titles
// and bodies with them and hands them to handlers — so a template that registers also
// renders. Create one at start-up and give the same Registry to Config.Registry and
// EnqueuerConfig.Registry. It caches parsed templates and is safe for concurrent use.
type Registry struct {
	helpers template.FuncMap
	render  *renderer
}

// NewRegistry returns a Registry with a copy of helpers (nil: no helpers).
func NewRegistry(helpers template.FuncMap) *Registry {
	h := maps.Clone(helpers)
	return &Registry{helpers: h, render: newRenderer(h)}
}

// noHelpers is the Registry of a nil *Registry: one, so that its parse cache is shared.
var noHelpers = NewRegistry(nil)

// orDefault returns r, or the Registry without helpers when r is nil.
func (r *Registry) orDefault() *Registry {
	if r == nil {
		return noHelpers
	}
	return r
}

// Validate checks that t is complete and that every template in it parses with the
// registry's helpers. The error names the template and the field and wraps
// ErrInvalidTemplate.
func (r *Registry) Validate(t Template) error {
	return t.validate(r.orDefault().helpers)
}

// Register validates every template with the registry's helpers and upserts them all in
// one call: nothing is stored when any template is invalid, or when two of them share a
// name. Call it at start-up; registering a template again replaces it (and restores a
// deleted one).
func (r *Registry) Register(ctx context.Context, store TemplateStore, templates ...Template) error {
	r = r.orDefault()
	seen := make(map[string]uuid.UUID, len(templates))
	for _, t := range templates {
		if err := t.validate(r.helpers); err != nil {
			return xerrors.Errorf("register templates: %w", err)
		}
		if other, ok := seen[t.Name]; ok && other != t.ID {
			return xerrors.Errorf("register templates: template name %q is used by %s and %s: %w", t.Name, other, t.ID, ErrInvalidTemplate)
		}
		seen[t.Name] = t.ID
	}
	if err := store.UpsertTemplates(ctx, templates...); err != nil {
		return xerrors.Errorf("register templates: %w", err)
	}
	return nil
}

// RenderTitleBody renders a template's title and body over payload the way the Manager
// does before delivery: user-controlled values escaped, the registry's helpers available.
// The result is Markdown. Use it to preview notifications.
func (r *Registry) RenderTitleBody(t Template, payload MessagePayload) (title, body string, err error) {
	return r.orDefault().render.titleBody(t.TitleTemplate, t.BodyTemplate, payload)
}

// RenderActions renders a template's actions over payload the way enqueueing does (the
// result is what MessagePayload.Actions holds).
func (r *Registry) RenderActions(t Template, payload MessagePayload) ([]Action, error) {
	return r.orDefault().render.actions(t, payload)
}
