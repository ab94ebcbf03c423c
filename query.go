package notifications

import (
	"time"

	"github.com/google/uuid"
)

// InboxQuery selects a page of one user's inbox items. Zero fields match everything,
// except Archived: false lists the items that are not archived, true the archived ones.
type InboxQuery struct {
	UnreadOnly bool
	TemplateID uuid.UUID
	// Target keeps items whose Targets contain it.
	Target   uuid.UUID
	Archived bool
	// Cursor is the NextCursor of the previous page; "" starts at the newest item. Pages
	// are stable: items inserted after the first page never appear in later pages.
	Cursor string
	// Limit is the page size: 0 means 50; a larger limit than 1,000 is lowered to
	// 1,000.
	Limit int
}

// InboxPage is one page of inbox items, newest first. NextCursor is "" on the last page.
type InboxPage struct {
	Items      []InboxItem
	NextCursor string
}

// MessageQuery selects a page of messages for operators. Zero fields match everything.
type MessageQuery struct {
	Statuses   []Status
	UserID     uuid.UUID
	TemplateID uuid.UUID
	Method     Method
	// CreatedAfter and CreatedBefore bound the creation time (after is inclusive, before
	// exclusive).
	CreatedAfter, CreatedBefore time.Time
	// Cursor is the NextCursor of the previous page; "" starts at the newest message.
	Cursor string
	// Limit is the page size: 0 means 50; a larger limit than 1,000 is lowered to
	// 1,000.
	Limit int
}

// MessagePage is one page of messages, newest first. NextCursor is "" on the last page.
type MessagePage struct {
	Messages   []Message
	NextCursor string
}

// Attempt is one delivery attempt of a message, as Store.MessageAttempts returns
// it.
type Attempt struct {
	Number     int // the message's AttemptCount at this lease, from 1
	NotifierID uuid.UUID
	LeasedAt   time.Time
	FinishedAt time.Time
	// Outcome is the status the attempt ended in: sent, temporary_failure,
	// permanent_failure, inhibited or canceled; leased when its lease expired without a
	// result (the delivering process stopped).
	Outcome  Status
	Reason   string
	Duration time.Duration // the delivery's duration as the Manager measured it
}
