// Package driver holds the types that only a Store implementation and the notifications
// engine exchange: the arguments and results of the queue operations
// (notifications.NotifierStore) and the rows an enqueue writes
// (notifications.EnqueueStore). A host that embeds the library with memstore or pgstore
// never needs this package; a team writing its own Store does, together with
// notificationstest.RunStoreTests, which checks the whole contract.
//
// The package imports nothing from the root package, so that the root's Store interfaces
// can name these types. Methods and statuses are therefore plain strings here; they hold
// the values of notifications.Method and notifications.Status.
package driver

import (
	"time"

	"github.com/google/uuid"
)

// LeaseParams are the arguments of NotifierStore.LeaseMessages.
type LeaseParams struct {
	NotifierID uuid.UUID
	// Methods are the methods the caller can deliver; only their messages are leased.
	Methods     []string
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
	Method        string
	TemplateID    uuid.UUID
	TemplateName  string
	TitleTemplate string
	BodyTemplate  string
	Payload       []byte // JSON-encoded notifications.MessagePayload, decoded by the engine
	// Disabled: the recipient disabled the template for the message's method after the
	// message was enqueued; the engine marks it inhibited without delivering.
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
	AttemptCount int // as returned by LeaseMessages: the fence
	// Status is "temporary_failure", "permanent_failure" or "inhibited".
	Status string
	Reason string
	// RetryDelay is how long a temporary failure waits before it is eligible again.
	RetryDelay time.Duration
	// Duration is how long the delivery took (0 when none was attempted), for the attempt
	// history.
	Duration time.Duration
}

// NewMessage is one row to enqueue.
type NewMessage struct {
	ID         uuid.UUID
	TemplateID uuid.UUID
	UserID     uuid.UUID
	Method     string
	Payload    []byte // JSON-encoded notifications.MessagePayload
	Targets    []uuid.UUID
	CreatedBy  string
	// DedupeKey is unique among stored messages; a second message with the same key is
	// refused with ErrDuplicate.
	DedupeKey string
}
