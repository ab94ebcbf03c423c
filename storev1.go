package notifications

import (
	"context"

	"github.com/google/uuid"
)

// StoreV1 is a Store with the whole host API: preferences per method, template listing
// and deletion, the inbox UI and operator actions with an attempt history. memstore and
// pgstore implement it and notificationstest.RunStoreTestsV1 checks it.
type StoreV1 interface {
	Store
	PreferenceStore
	TemplateAdminStore
	InboxViewStore
	OperatorStore
}

// PreferenceStore keeps what each user chose to receive. Preferences are enforced at
// enqueue (EnqueueMessages refuses a disabled method) and again at delivery
// (LeasedMessage.Disabled: the Manager marks the message inhibited).
type PreferenceStore interface {
	// SetPreference records p for userID, replacing the row for the same template and
	// method. Disabled false also opts in to an opt-in template. It returns ErrNotFound
	// for an unknown or deleted template.
	SetPreference(ctx context.Context, userID uuid.UUID, p Preference) error
	// Preferences returns the rows userID set, for templates that are not deleted.
	Preferences(ctx context.Context, userID uuid.UUID) ([]Preference, error)
}

// TemplateAdminStore lists and deletes templates.
type TemplateAdminStore interface {
	// Templates lists the templates that are not deleted, by name.
	Templates(ctx context.Context) ([]Template, error)
	// DeleteTemplate soft-deletes a template: it leaves Templates and preference screens,
	// Template and enqueue return ErrNotFound for it, and its unfinished messages are
	// canceled with the reason "template deleted" (a leased one when its result arrives,
	// unless that result is a success); finished messages keep their history.
	// Registering the template again (UpsertTemplates) restores it. It returns
	// ErrNotFound for an unknown or already deleted template.
	DeleteTemplate(ctx context.Context, id uuid.UUID) error
}

// InboxViewStore is what an inbox UI needs beside InboxStore. Every method refuses another
// user's item with ErrNotFound.
type InboxViewStore interface {
	// InboxItems returns one page of userID's items, newest first, selected by q.
	InboxItems(ctx context.Context, userID uuid.UUID, q InboxQuery) (InboxPage, error)
	// MarkAllInboxRead marks every unread item of userID read and returns how many.
	MarkAllInboxRead(ctx context.Context, userID uuid.UUID) (int, error)
	// ArchiveInboxItem moves an item out of the default listing (InboxQuery.Archived
	// lists archived items); archiving an archived item changes nothing.
	ArchiveInboxItem(ctx context.Context, userID, itemID uuid.UUID) error
	// DeleteInboxItem deletes an item.
	DeleteInboxItem(ctx context.Context, userID, itemID uuid.UUID) error
}

// OperatorStore is what support staff and dashboards need: search, the attempt history,
// and actions on single messages.
type OperatorStore interface {
	// Messages returns one page of messages, newest first, selected by q.
	Messages(ctx context.Context, q MessageQuery) (MessagePage, error)
	// MessageAttempts returns the message's delivery attempts, oldest first: the newest 50
	// at most. It returns ErrNotFound for an unknown (or purged)
	// message.
	MessageAttempts(ctx context.Context, id uuid.UUID) ([]Attempt, error)
	// RetryMessage makes a temporary_failure, permanent_failure or canceled message
	// pending now with its attempts reset; the attempt history keeps the earlier
	// attempts and StatusReason says what was retried. Other statuses: ErrWrongStatus;
	// a deleted template: ErrNotFound.
	RetryMessage(ctx context.Context, id uuid.UUID) error
	// CancelMessage cancels a pending or temporary_failure message now. A leased message
	// is canceled when its delivery's result arrives, unless that result is a success or
	// a permanent failure (which are recorded as they happened), or when its lease
	// expires. Finished messages: ErrWrongStatus.
	CancelMessage(ctx context.Context, id uuid.UUID) error
	// ResendMessage enqueues a new pending message with the old one's template, user,
	// method, payload and targets and a fresh dedupe key, and returns its ID. The
	// template must exist and the recipient must not have disabled it for the method.
	ResendMessage(ctx context.Context, id uuid.UUID) (uuid.UUID, error)
}
