package notifications

import (
	"context"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// Preference is one user's choice about one template: for one method, or for every method
// when Method is empty. A method-specific preference overrides the all-methods one;
// without either, the template's EnabledByDefault applies.
type Preference struct {
	TemplateID uuid.UUID
	Method     Method // "" = every method
	Disabled   bool
}

// TemplatePreferences is one row of a user's settings screen: a template and whether it is
// enabled for each method it is delivered by (StoreEnqueuer.EffectivePreferences).
type TemplatePreferences struct {
	Template Template
	Methods  []MethodPreference
}

// MethodPreference is the effective state of one template and method for one user.
type MethodPreference struct {
	Method  Method
	Enabled bool
}

// Enabled reports whether one user's preference rows leave t enabled for method: the row
// for the method, else the all-methods row, else EnabledByDefault. Rows of other templates
// are ignored.
func (t Template) Enabled(prefs []Preference, method Method) bool {
	all, allSet := false, false
	for _, p := range prefs {
		if p.TemplateID != t.ID {
			continue
		}
		if p.Method == method {
			return !p.Disabled
		}
		if p.Method == "" {
			all, allSet = !p.Disabled, true
		}
	}
	if allSet {
		return all
	}
	return t.EnabledByDefault
}

// EffectivePreferences returns userID's settings screen: every template that is not deleted, by
// name, with whether it is enabled for each method it is delivered by (its Methods, or
// this enqueuer's DefaultMethods less its ExcludeMethods; a template with none is listed
// with no methods). The enqueuer's store must have Store's Templates and Preferences
// (memstore and pgstore do).
func (e *StoreEnqueuer) EffectivePreferences(ctx context.Context, userID uuid.UUID) ([]TemplatePreferences, error) {
	store, ok := e.store.(interface {
		Templates(ctx context.Context) ([]Template, error)
		Preferences(ctx context.Context, userID uuid.UUID) ([]Preference, error)
	})
	if !ok {
		return nil, xerrors.Errorf("preferences: the store (%T) has no Templates and Preferences methods (see Store)", e.store)
	}
	templates, err := store.Templates(ctx)
	if err != nil {
		return nil, xerrors.Errorf("preferences: %w", err)
	}
	prefs, err := store.Preferences(ctx, userID)
	if err != nil {
		return nil, xerrors.Errorf("preferences: %w", err)
	}
	out := make([]TemplatePreferences, 0, len(templates))
	for _, t := range templates {
		methods, _ := e.Methods(t) // none: listed without methods
		tp := TemplatePreferences{Template: t, Methods: make([]MethodPreference, 0, len(methods))}
		for _, m := range methods {
			tp.Methods = append(tp.Methods, MethodPreference{Method: m, Enabled: t.Enabled(prefs, m)})
		}
		out = append(out, tp)
	}
	return out, nil
}
