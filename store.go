package notifications

import (
	"context"

	"github.com/google/uuid"
	"github.com/notifykit/notifications/driver"
)

// Store is everything a host keeps in one place: messages, templates, preferences, the
// pause switch and inbox items. memstore and pgstore implement it, and
// notificationstest.RunStoreTests checks every method of it. Hosts call the methods
// listed here directly (a preference screen, an inbox UI, support tools); the embedded
// interfaces are what the library's own parts consume: the Manager a NotifierStore, an
// Enqueuer an EnqueueStore, Registry.Register a TemplateStore and the inbox handler in
// package dispatch an InboxStore.
//
// Concurrency: every method is safe for concurrent use, including from several Managers
// (several processes, for a shared store) at once.
//
// Time: a Store reads the current time from its own clock (pgstore: the database's).
// Callers pass durations, never absolute times, so clock skew between replicas cannot
// shorten a lease or a retry delay.
//
// Errors: stores translate their driver's errors into the sentinel errors of this package
// (ErrNotFound, ErrDuplicate, ErrCannotEnqueueDisabledNotification, ErrInvalidMessage,
// ErrWrongStatus, ErrInvalidCursor) where one applies, and otherwise wrap the cause; a method that returns
// an error changed nothing.
type Store interface {
	NotifierStore
	EnqueueStore
	TemplateStore
	InboxStore

	// Templates lists the templates that are not deleted, by name.
	Templates(ctx context.Context) ([]Template, error)
	// DeleteTemplate soft-deletes a template: it leaves Templates and preference screens,
	// Template and enqueue return ErrNotFound for it, and its unfinished messages are
	// canceled with the reason "template deleted" (a leased one when its result arrives,
	// unless that result is final: a success, a permanent failure or inhibited); finished
	// messages keep their history.
	// Registering the template again (UpsertTemplates) restores it. It returns
	// ErrNotFound for an unknown or already deleted template.
	DeleteTemplate(ctx context.Context, id uuid.UUID) error

	// SetPreference records p for userID, replacing the row for the same template and
	// method. Disabled false also opts in to an opt-in template. It returns ErrNotFound
	// for an unknown or deleted template. Preferences are enforced at enqueue
	// (EnqueueMessages refuses a disabled method) and again at delivery (the message ends
	// inhibited).
	SetPreference(ctx context.Context, userID uuid.UUID, p Preference) error
	// Preferences returns the rows userID set, for templates that are not deleted.
	// StoreEnqueuer.EffectivePreferences turns them into a settings screen.
	Preferences(ctx context.Context, userID uuid.UUID) ([]Preference, error)

	// InboxItems returns one page of userID's items, newest first, selected by q. This
	// and the other inbox methods refuse another user's item with ErrNotFound.
	InboxItems(ctx context.Context, userID uuid.UUID, q InboxQuery) (InboxPage, error)
	// MarkAllInboxRead marks every unread item of userID read and returns how many.
	MarkAllInboxRead(ctx context.Context, userID uuid.UUID) (int, error)
	// ArchiveInboxItem moves an item out of the default listing (InboxQuery.Archived
	// lists archived items); archiving an archived item changes nothing.
	ArchiveInboxItem(ctx context.Context, userID, itemID uuid.UUID) error
	// DeleteInboxItem deletes an item.
	DeleteInboxItem(ctx context.Context, userID, itemID uuid.UUID) error

	// Message returns one message, or ErrNotFound.
	Message(ctx context.Context, id uuid.UUID) (Message, error)
	// Messages returns one page of messages, newest first, selected by q.
	Messages(ctx context.Context, q MessageQuery) (MessagePage, error)
	// MessageAttempts returns the message's delivery attempts, oldest first: the newest 50
	// at most. It returns ErrNotFound for an unknown (or purged) message.
	MessageAttempts(ctx context.Context, id uuid.UUID) ([]Attempt, error)
	// RetryMessage makes a temporary_failure, permanent_failure or canceled message
	// pending now with its attempts reset; the attempt history keeps the earlier
	// attempts and StatusReason says what was retried. Other statuses: ErrWrongStatus;
	// a deleted template: ErrNotFound.
	RetryMessage(ctx context.Context, id uuid.UUID) error
	// CancelMessage cancels a pending or temporary_failure message now. A leased message
	// is canceled when its delivery's result arrives, unless that result is final (a
	// success, a permanent failure or inhibited, recorded as they happened), or when its
	// lease expires. Finished messages: ErrWrongStatus.
	CancelMessage(ctx context.Context, id uuid.UUID) error
	// ResendMessage enqueues a new pending message with the old one's template, user,
	// method, payload and targets and a fresh dedupe key, and returns its ID. The
	// template must exist and the recipient must not have disabled it for the method.
	ResendMessage(ctx context.Context, id uuid.UUID) (uuid.UUID, error)
	// CountByStatus returns how many messages are in each status.
	CountByStatus(ctx context.Context) (map[Status]int, error)
	// PendingByMethod returns how many messages of each method are pending. It must be
	// cheap (an index count): a running Manager reads it every minute for the
	// pending_messages gauge and to log methods that no replica handles.
	PendingByMethod(ctx context.Context) (map[Method]int, error)
	// SetPaused pauses or resumes leasing for every notifier sharing the store.
	SetPaused(ctx context.Context, paused bool) error
	// Paused reports the pause switch.
	Paused(ctx context.Context) (bool, error)
}

// NotifierStore is what a Manager needs.
type NotifierStore interface {
	// LeaseMessages reserves up to params.Limit eligible messages of params.Methods for
	// params.NotifierID in one atomic step and returns them: pending ones oldest first,
	// retries and expired leases in the order they became due. Eligible: pending; temporary
	// failures whose retry time has passed; leased messages whose lease expired. Messages of other methods are never touched, so Managers with different
	// handler sets (a rolling deploy that adds a method) share one store safely; an empty
	// params.Methods leases nothing. Each lease increments AttemptCount; a message that would
	// be leased with AttemptCount already at params.MaxAttempts (its earlier leases expired,
	// typically because the process crashed mid-delivery) is instead marked
	// permanent_failure with a reason that says so, and is not returned. Two concurrent
	// calls never return the same message. When the store is paused it returns no messages.
	// The cost of a lease does not grow with the number of messages waiting for a retry.
	LeaseMessages(ctx context.Context, params driver.LeaseParams) ([]driver.LeasedMessage, error)

	// MarkSent records successful deliveries in bulk. It is fenced: a row changes only if
	// it is still leased by notifierID with the AttemptCount given, so a late flush from a
	// notifier whose lease expired changes nothing. It returns how many rows changed.
	// The store records the attempt in the message's history.
	MarkSent(ctx context.Context, notifierID uuid.UUID, results []driver.SentResult) (int, error)

	// MarkFailed records failed or inhibited deliveries in bulk, fenced like MarkSent. A
	// temporary failure of a message whose cancellation was requested while it was leased
	// (Store.CancelMessage, Store.DeleteTemplate) ends canceled
	// instead of waiting for a retry.
	MarkFailed(ctx context.Context, notifierID uuid.UUID, results []driver.FailedResult) (int, error)

	// PurgeMessages deletes finished messages (sent, permanent_failure, inhibited, canceled) last
	// updated more than params.MessagesOlderThan ago, including messages that were never
	// leased, and, when params.ReadInboxOlderThan is positive, inbox items read more than
	// that long ago. It deletes in batches of at most params.BatchSize rows so that no
	// single statement holds locks for long, and returns how many rows it deleted in all.
	// Stores shared by several processes let one purge run at a time; a call that finds
	// another purge running returns 0, nil.
	PurgeMessages(ctx context.Context, params driver.PurgeParams) (int, error)

	// Listen calls wake once it is listening, and then whenever new work may be available
	// (an enqueue committed), until ctx is done; then it returns nil. After recovering from
	// a transient error (e.g. a lost database connection) it calls wake again, since
	// notifications may have been missed. Wake-ups may be coalesced or spurious. A store
	// without notifications returns nil at once and the Manager relies on polling.
	Listen(ctx context.Context, wake func()) error
}

// EnqueueStore is what an Enqueuer needs.
type EnqueueStore interface {
	// EnqueueMessages stores msgs and reports why any was refused: refused is nil when
	// every message was stored, else it has one entry per message, nil for a message
	// stored, else an error wrapping ErrCannotEnqueueDisabledNotification (the recipient
	// disabled the template for the message's method, or did not opt in), ErrDuplicate
	// (the DedupeKey or ID exists, or appears twice in the call), ErrNotFound (unknown or
	// deleted template) or ErrInvalidMessage. Without atomic the other messages are
	// stored; with atomic any refusal stores nothing, and err wraps the first refusal.
	// err is non-nil exactly when nothing was stored because of the call as a whole
	// (atomic refusal, context, database). It wakes listening notifiers once the messages
	// are visible; a store bound to the host's transaction (TxEnqueueStore.InTx), which
	// cannot see the commit, wakes them a little later on its own (pgstore:
	// TxWakeDelay), and the host may wake them at once after committing.
	EnqueueMessages(ctx context.Context, msgs []driver.NewMessage, atomic bool) (refused []error, err error)

	// Template returns the template with the given ID, or ErrNotFound (also for a deleted
	// template).
	Template(ctx context.Context, id uuid.UUID) (Template, error)
}

// InboxStore is what the inbox handler in package dispatch needs: it keeps in-app inbox
// items.
type InboxStore interface {
	// InsertInboxItem stores item under item.ID. Inserting an ID that exists changes
	// nothing and returns created=false, so a redelivered message is not shown twice.
	InsertInboxItem(ctx context.Context, item InboxItem) (created bool, err error)
	// UnreadInboxCount counts a user's unread items that are not archived.
	UnreadInboxCount(ctx context.Context, userID uuid.UUID) (int, error)
	// MarkInboxRead marks one of the user's items read, or returns ErrNotFound (also for
	// another user's item). Marking a read item again changes nothing.
	MarkInboxRead(ctx context.Context, userID, itemID uuid.UUID) error
}
