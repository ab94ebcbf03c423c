package notifications

import "github.com/google/uuid"

// InboxEvent is a change to one user's inbox, as a live broker (dispatch.Broker) carries
// it to the user's open screens.
type InboxEvent struct {
	Kind   InboxEventKind
	UserID uuid.UUID
	// ItemID is the item changed; zero for InboxEventReadAll.
	ItemID uuid.UUID
	// Item is the new item, for InboxEventCreated only.
	Item InboxItem
}

// InboxEventKind says what changed.
type InboxEventKind string

// Inbox event kinds.
const (
	InboxEventCreated  InboxEventKind = "created"
	InboxEventRead     InboxEventKind = "read"
	InboxEventReadAll  InboxEventKind = "read_all"
	InboxEventArchived InboxEventKind = "archived"
	InboxEventDeleted  InboxEventKind = "deleted"
)
