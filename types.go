package notifications

import (
	"time"

	"github.com/google/uuid"
)

// Method is a delivery method: one of the built-in ones or any string a host registers a
// Handler for.
type Method string

// Built-in delivery methods.
const (
	MethodSMTP    Method = "smtp"
	MethodWebhook Method = "webhook"
	MethodInbox   Method = "inbox"
)

// Status is the state of one message (one delivery of one notification by one method).
type Status string

// Message statuses. Sent, PermanentFailure, Inhibited and Canceled are terminal.
const (
	StatusPending          Status = "pending"
	StatusLeased           Status = "leased"
	StatusSent             Status = "sent"
	StatusTemporaryFailure Status = "temporary_failure"
	StatusPermanentFailure Status = "permanent_failure"
	StatusInhibited        Status = "inhibited"
	// StatusCanceled: an operator canceled the message, or its template was deleted,
	// before it was delivered.
	StatusCanceled Status = "canceled"
)

// Terminal reports whether no further delivery will be attempted for a message in s.
func (s Status) Terminal() bool {
	return s == StatusSent || s == StatusPermanentFailure || s == StatusInhibited || s == StatusCanceled
}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusLeased, StatusSent, StatusTemporaryFailure, StatusPermanentFailure, StatusInhibited, StatusCanceled:
		return true
	}
	return false
}

// Recipient is the user a notification is addressed to. The host supplies it, inline on an
// EnqueueRequest or through the RecipientLookup given to the Enqueuer.
type Recipient struct {
	UserID   uuid.UUID
	Email    string
	Name     string
	Username string
}

// Message is a stored message as Store.Message and Store.Messages return it.
type Message struct {
	ID             uuid.UUID
	TemplateID     uuid.UUID
	UserID         uuid.UUID
	Method         Method
	Status         Status
	StatusReason   string
	AttemptCount   int
	Payload        []byte // JSON-encoded MessagePayload
	Targets        []uuid.UUID
	CreatedBy      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LeasedBy       uuid.UUID // zero unless leased
	LeasedUntil    time.Time // zero unless leased
	NextRetryAfter time.Time // zero unless temporary_failure
	SentAt         time.Time // zero unless sent
}

// InboxItem is one in-app notification, stored under the ID of the message that produced
// it.
type InboxItem struct {
	ID         uuid.UUID // the message ID
	UserID     uuid.UUID
	TemplateID uuid.UUID
	// Title is the rendered title as plain text, for UIs that show text.
	Title string
	// TitleMarkdown is the rendered title as Markdown (user values escaped), for UIs that
	// render Markdown. It may be empty (items stored by schema version 2 and earlier); use
	// Title then.
	TitleMarkdown string
	Content       string // rendered Markdown
	Actions       []Action
	Targets       []uuid.UUID
	CreatedAt     time.Time
	ReadAt        time.Time // zero while unread
	ArchivedAt    time.Time // zero unless archived
}
