package dispatch

import (
	"context"
	"errors"
	"text/template"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/fanout"
	"github.com/notifykit/notifications/internal/markdown"
)

// Broker carries inbox changes to live subscribers (a server-sent-events endpoint, say):
// the inbox handler publishes new items (InboxEventCreated); a host publishes the read
// state changes it makes (read, read_all, archived, deleted) so every open screen follows.
type Broker interface {
	// Publish delivers ev to the current subscribers of ev.UserID. It must not block on
	// slow subscribers.
	Publish(ctx context.Context, ev notifications.InboxEvent) error
}

// Inbox is the in-app inbox notifications.Handler: it stores each message as an inbox item
// under the message's ID and publishes new items to a Broker.
type Inbox struct {
	store  notifications.InboxStore
	broker Broker
}

var _ notifications.Handler = (*Inbox)(nil)

// NewInbox returns the inbox handler. broker may be nil (no live updates).
func NewInbox(store notifications.InboxStore, broker Broker) (*Inbox, error) {
	if store == nil {
		return nil, xerrors.New("new inbox handler: store must not be nil")
	}
	return &Inbox{store: store, broker: broker}, nil
}

// Dispatcher implements notifications.Handler. The item's Title is the rendered title as
// plain text and TitleMarkdown the rendered Markdown (user values escaped); Content is the
// rendered Markdown body. A redelivered message (same ID) is a success that stores and
// publishes nothing new.
func (h *Inbox) Dispatcher(payload notifications.MessagePayload, title, body string, _ template.FuncMap) (notifications.DeliveryFunc, error) {
	userID, err := uuid.Parse(payload.UserID)
	if err != nil {
		return nil, xerrors.Errorf("inbox: payload user_id %q is not a UUID: %w", payload.UserID, notifications.ErrInvalidMessage)
	}
	templateID, err := uuid.Parse(payload.NotificationTemplateID)
	if err != nil {
		return nil, xerrors.Errorf("inbox: payload notification_template_id %q is not a UUID: %w", payload.NotificationTemplateID, notifications.ErrInvalidMessage)
	}
	return func(ctx context.Context, msgID uuid.UUID) (bool, error) {
		item := notifications.InboxItem{
			ID: msgID, UserID: userID, TemplateID: templateID,
			Title: markdown.ToPlain(title), TitleMarkdown: title, Content: body,
			Actions: payload.Actions, Targets: payload.Targets,
		}
		created, err := h.store.InsertInboxItem(ctx, item)
		if err != nil {
			// A value the store can never hold fails the same way on every attempt.
			return !errors.Is(err, notifications.ErrInvalidMessage), xerrors.Errorf("store inbox item: %w", err)
		}
		if created && h.broker != nil {
			// The item is stored; a failed publish only costs live viewers an update they
			// get on their next list, so it does not fail the delivery.
			_ = h.broker.Publish(ctx, notifications.InboxEvent{
				Kind: notifications.InboxEventCreated, UserID: item.UserID, ItemID: item.ID, Item: item,
			})
		}
		return false, nil
	}, nil
}

// MemoryBroker is an in-process Broker for a single replica (pgstore.InboxBroker carries
// events across replicas). Subscribers get a buffered channel; an event for a subscriber
// whose buffer is full is dropped for that subscriber (it can re-list).
type MemoryBroker struct {
	hub *fanout.Hub[uuid.UUID, notifications.InboxEvent]
}

// NewMemoryBroker returns an empty broker.
func NewMemoryBroker() *MemoryBroker {
	return &MemoryBroker{hub: fanout.New[uuid.UUID, notifications.InboxEvent](64)}
}

// Subscribe returns a channel of the user's inbox events until ctx ends; the channel is
// closed then.
func (b *MemoryBroker) Subscribe(ctx context.Context, userID uuid.UUID) <-chan notifications.InboxEvent {
	return b.hub.Subscribe(ctx, userID)
}

// Publish implements Broker.
func (b *MemoryBroker) Publish(_ context.Context, ev notifications.InboxEvent) error {
	b.hub.Publish(ev.UserID, ev)
	return nil
}
