package memstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
)

// SetPreference implements notifications.Store.
func (s *Store) SetPreference(ctx context.Context, userID uuid.UUID, p notifications.Preference) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("set preference: %w", err)
	}
	if userID == uuid.Nil {
		return xerrors.Errorf("set preference: user ID must be set: %w", notifications.ErrInvalidMessage)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[p.TemplateID]; !ok || s.deleted[p.TemplateID] {
		return xerrors.Errorf("set preference: template %s: %w", p.TemplateID, notifications.ErrNotFound)
	}
	prefs := s.prefs[userID]
	for i, q := range prefs {
		if q.TemplateID == p.TemplateID && q.Method == p.Method {
			prefs[i] = p
			return nil
		}
	}
	s.prefs[userID] = append(prefs, p)
	return nil
}

// Preferences implements notifications.Store.
func (s *Store) Preferences(ctx context.Context, userID uuid.UUID) ([]notifications.Preference, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("preferences: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]notifications.Preference, 0, len(s.prefs[userID]))
	for _, p := range s.prefs[userID] {
		if !s.deleted[p.TemplateID] {
			out = append(out, p)
		}
	}
	return out, nil
}

// Templates implements notifications.Store.
func (s *Store) Templates(ctx context.Context) ([]notifications.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("list templates: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]notifications.Template, 0, len(s.templates))
	for id, t := range s.templates {
		if !s.deleted[id] {
			out = append(out, cloneTemplate(t))
		}
	}
	slices.SortFunc(out, func(a, b notifications.Template) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteTemplate implements notifications.Store. It reads only the unfinished
// messages (the lease queues), not the history.
func (s *Store) DeleteTemplate(ctx context.Context, id uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("delete template: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[id]; !ok || s.deleted[id] {
		return xerrors.Errorf("delete template %s: %w", id, notifications.ErrNotFound)
	}
	s.deleted[id] = true
	var unfinished []*message
	for _, q := range s.queues {
		for e := q.pending.Front(); e != nil; e = e.Next() {
			if m := e.Value.(*message); m.TemplateID == id {
				unfinished = append(unfinished, m)
			}
		}
		for _, m := range q.timed {
			if m.TemplateID == id {
				unfinished = append(unfinished, m)
			}
		}
	}
	for _, m := range unfinished {
		s.cancelLocked(m, "template deleted")
	}
	return nil
}
