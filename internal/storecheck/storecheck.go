// Package storecheck holds input checks that memstore and pgstore share, so that both
// refuse the same input with the same words.
package storecheck

import (
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
)

// TemplateBatch refuses one upsert call that names a template ID, or a template name,
// twice: which of the two should win is not the store's guess to make.
func TemplateBatch(templates []notifications.Template) error {
	ids := make(map[uuid.UUID]struct{}, len(templates))
	names := make(map[string]uuid.UUID, len(templates))
	for _, t := range templates {
		if _, dup := ids[t.ID]; dup {
			return xerrors.Errorf("template ID %s appears twice in one call: %w", t.ID, notifications.ErrDuplicate)
		}
		ids[t.ID] = struct{}{}
		if other, dup := names[t.Name]; dup {
			return xerrors.Errorf("template name %q is given to both %s and %s in one call: %w", t.Name, other, t.ID, notifications.ErrDuplicate)
		}
		names[t.Name] = t.ID
	}
	return nil
}
