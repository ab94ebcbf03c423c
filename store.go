package notifications

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// The Store contract.
//
// A Store keeps messages, templates, preferences, the pause switch and inbox items. It is
// split by consumer: the Manager needs a NotifierStore, the Enqueuer an EnqueueStore,
// RegisterTemplates a TemplateStore, the inbox handler an InboxStore, and operators an
// AdminStore. Store is the union that memstore and pgstore implement and that
// notificationstest.RunStoreTests checks. StoreV1 adds preferences, template listing and
// deletion, the inbox UI and operator actions (memstore and pgstore implement it).
//
// Concurrency: every method is safe for concurrent use, including from several Managers
// (several processes, for a shared store) at once.
//
// Time: a Store reads the current time from its own clock (pgstore: the database's, unless
// a clock is injected for tests). Callers pass durations, never absolute times, so clock
// skew between replicas cannot shorten a lease or a retry delay.
//
// Errors: stores translate their driver's errors into the sentinel errors of this package
// (ErrNotFound, ErrDuplicate, ErrCannotEnqueueDisabledNotification, ErrInvalidMessage)
// where one applies, and otherwise wrap the cause; a method that returns an error changed
// nothing.
type Store interface {
	NotifierStore
	EnqueueStore
	TemplateStore
	AdminStore
	InboxStore
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
	LeaseMessages(ctx context.Context, params LeaseParams) ([]LeasedMessage, error)

	// MarkSent records successful deliveries in bulk. It is fenced: a row changes only if
	// it is still leased by notifierID with the AttemptCount given, so a late flush from a
	// notifier whose lease expired changes nothing. It returns how many rows changed.
	// Stores that keep an attempt history (StoreV1) record the attempt.
	MarkSent(ctx context.Context, notifierID uuid.UUID, results []SentResult) (int, error)

	// MarkFailed records failed or inhibited deliveries in bulk, fenced like MarkSent. A
	// temporary failure of a message whose cancellation was requested while it was leased
	// (OperatorStore.CancelMessage, TemplateAdminStore.DeleteTemplate) ends canceled
	// instead of waiting for a retry.
	MarkFailed(ctx context.Context, notifierID uuid.UUID, results []FailedResult) (int, error)

	// PurgeMessages deletes finished messages (sent, permanent_failure, inhibited, canceled) last
	// updated more than params.MessagesOlderThan ago, including messages that were never
	// leased, and, when params.ReadInboxOlderThan is positive, inbox items read more than
	// that long ago. It deletes in batches of at most params.BatchSize rows so that no
	// single statement holds locks for long, and returns how many rows it deleted in all.
	// Stores shared by several processes let one purge run at a time; a call that finds
	// another purge running returns 0, nil.
	PurgeMessages(ctx context.Context, params PurgeParams) (int, error)

	// Listen calls wake once it is listening, and then whenever new work may be available
	// (an enqueue committed), until ctx is done; then it returns nil. After recovering from
	// a transient error (e.g. a lost database connection) it calls wake again, since
	// notifications may have been missed. Wake-ups may be coalesced or spurious. A store
	// without notifications returns nil at once and the Manager relies on polling.
	Listen(ctx context.Context, wake func()) error
}

// LeaseParams are the arguments of NotifierStore.LeaseMessages.
type LeaseParams struct {
	NotifierID uuid.UUID
	// Methods are the methods the caller can deliver; only their messages are leased.
	Methods     []Method
	Limit       int
	LeasePeriod time.Duration
	MaxAttempts int
}

// PurgeParams are the arguments of NotifierStore.PurgeMessages.
type PurgeParams struct {
	// MessagesOlderThan: finished messages last updated longer ago than this are deleted.
	MessagesOlderThan time.Duration
	// ReadInboxOlderThan: inbox items read longer ago than this are deleted; 0 keeps them.
	ReadInboxOlderThan time.Duration
	// BatchSize bounds the rows one delete statement removes; 0 means 1,000.
	BatchSize int
}

// LeasedMessage is a message reserved for delivery, with what rendering needs.
type LeasedMessage struct {
	ID            uuid.UUID
	Method        Method
	TemplateID    uuid.UUID
	TemplateName  string
	TitleTemplate string
	BodyTemplate  string
	Payload       []byte // JSON-encoded MessagePayload, decoded by the Manager
	// Disabled: the recipient disabled the template for the message's method after the
	// message was enqueued; the Manager marks it inhibited without delivering.
	Disabled     bool
	AttemptCount int // after this lease's increment, so 1 on the first lease
	CreatedAt    time.Time
	LeasedAt     time.Time
}

// SentResult is one successful delivery.
type SentResult struct {
	ID           uuid.UUID
	AttemptCount int           // as returned by LeaseMessages: the fence
	Duration     time.Duration // how long the delivery took, for the attempt history
}

// FailedResult is one unsuccessful (or inhibited) delivery.
type FailedResult struct {
	ID           uuid.UUID
	AttemptCount int    // as returned by LeaseMessages: the fence
	Status       Status // temporary_failure, permanent_failure or inhibited
	Reason       string
	// RetryDelay is how long a temporary failure waits before it is eligible again.
	RetryDelay time.Duration
	// Duration is how long the delivery took (0 when none was attempted), for the attempt
	// history.
	Duration time.Duration
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
	// are visible (for transactional stores: at commit).
	EnqueueMessages(ctx context.Context, msgs []NewMessage, atomic bool) (refused []error, err error)

	// Template returns the template with the given ID, or ErrNotFound (also for a deleted
	// template).
	Template(ctx context.Context, id uuid.UUID) (Template, error)
}

// NewMessage is one row to enqueue.
type NewMessage struct {
	ID         uuid.UUID
	TemplateID uuid.UUID
	UserID     uuid.UUID
	Method     Method
	Payload    []byte // JSON-encoded MessagePayload
	Targets    []uuid.UUID
	CreatedBy  string
	// DedupeKey is unique among stored messages; a second message with the same key is
	// refused with ErrDuplicate.
	DedupeKey string
}

// AdminStore is for operators and inspection. OperatorStore has the listing and the
// actions.
type AdminStore interface {
	// Message returns one message, or ErrNotFound.
	Message(ctx context.Context, id uuid.UUID) (Message, error)
	// CountByStatus returns how many messages are in each status.
	CountByStatus(ctx context.Context) (map[Status]int, error)
	// SetPaused pauses or resumes leasing for every notifier sharing the store.
	SetPaused(ctx context.Context, paused bool) error
	// Paused reports the pause switch.
	Paused(ctx context.Context) (bool, error)
}

// InboxStore keeps in-app inbox items. The inbox handler in package dispatch consumes it;
// InboxViewStore has the listing and the rest of what an inbox UI needs.
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
