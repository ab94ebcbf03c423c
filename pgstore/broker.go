package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"cdr.dev/slog"
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/fanout"
)

// InboxBroker carries inbox events to live subscribers on every replica: Publish sends a
// NOTIFY with the event's kind, item ID and user on the schema's "<schema>.inbox"
// channel, and each replica's Run passes it on to the users it has subscribers for,
// loading the item of a created event. It satisfies dispatch.Broker.
//
// Live delivery is best effort, like any push channel: a subscriber whose buffer (64) is
// full, or a replica whose listener is reconnecting, misses the event and sees the item
// on its next list. The item itself is stored before it is published.
type InboxBroker struct {
	store *Store
	hub   *fanout.Hub[uuid.UUID, notifications.InboxEvent]
}

// NewInboxBroker returns a broker on s's schema. Call Run to receive items.
func (s *Store) NewInboxBroker() *InboxBroker {
	return &InboxBroker{store: s, hub: fanout.New[uuid.UUID, notifications.InboxEvent](64)}
}

type inboxEvent struct {
	ID     uuid.UUID                    `json:"id"`
	UserID uuid.UUID                    `json:"user_id"`
	Kind   notifications.InboxEventKind `json:"kind,omitempty"` // "" from older replicas: created
}

func (s *Store) inboxChannel() string { return s.o.schema + ".inbox" }

// Publish implements dispatch.Broker.
func (b *InboxBroker) Publish(ctx context.Context, ev notifications.InboxEvent) error {
	payload, err := json.Marshal(inboxEvent{ID: ev.ItemID, UserID: ev.UserID, Kind: ev.Kind})
	if err != nil {
		return xerrors.Errorf("publish inbox item: %w", err)
	}
	if _, err := b.store.db.Exec(ctx, "SELECT pg_notify($1, $2)", b.store.inboxChannel(), string(payload)); err != nil {
		return xerrors.Errorf("publish inbox item: %w", translate(err))
	}
	return nil
}

// Subscribe returns a channel of userID's inbox events until ctx ends; the channel is
// closed then. Events arrive only while Run runs.
func (b *InboxBroker) Subscribe(ctx context.Context, userID uuid.UUID) <-chan notifications.InboxEvent {
	return b.hub.Subscribe(ctx, userID)
}

// DefaultBrokerPollInterval is how often a broker that cannot listen looks for new items.
const DefaultBrokerPollInterval = time.Second

// Run delivers published items to subscribers until ctx ends. It listens on a dedicated
// connection (the same source as Store.Listen) that it re-establishes after losing it;
// ready, if not nil, is called each time it listens. With PollOnly and no listener
// connection source it cannot listen: it polls the inbox for new items of its subscribers
// every broker poll interval instead (so live items arrive up to that much later; only
// created events, since read-state changes leave nothing to poll for), and calls ready
// once it has its starting point. It polls the same way, after a logged warning, when its
// connection from the pool turns out to go through a transaction pooler (see
// Store.Listen).
func (b *InboxBroker) Run(ctx context.Context, ready func()) error {
	if b.store.err != nil {
		return xerrors.Errorf("run inbox broker: %w", b.store.err)
	}
	if b.store.pool == nil {
		return xerrors.New("run inbox broker: the store has no pool (made with WithTx?)")
	}
	if ready == nil {
		ready = func() {}
	}
	if !b.store.canListen() {
		b.store.o.log.Info(ctx, "inbox broker: PollOnly without a listener connection source, polling for new items",
			slog.F("interval", b.store.o.brokerPoll))
		return b.poll(ctx, ready)
	}
	err := b.store.listen(ctx, b.store.inboxChannel(), ready, func(payload string) {
		var ev inboxEvent
		if err := json.Unmarshal([]byte(payload), &ev); err != nil || !b.hub.Has(ev.UserID) {
			return
		}
		out := notifications.InboxEvent{Kind: ev.Kind, UserID: ev.UserID, ItemID: ev.ID}
		if out.Kind == "" || out.Kind == notifications.InboxEventCreated {
			item, err := b.store.inboxItem(ctx, ev.ID)
			if err != nil {
				b.store.o.log.Warn(ctx, "load published inbox item", slog.F("id", ev.ID), slog.Error(err))
				return
			}
			out.Kind, out.Item = notifications.InboxEventCreated, item
		}
		b.hub.Publish(ev.UserID, out)
	})
	if errors.Is(err, errPooler) {
		b.store.o.log.Warn(ctx, "inbox broker: "+poolerWarning+": polling for new items; "+poolerAdvice,
			slog.F("interval", b.store.o.brokerPoll), slog.F("probe_timeout", listenProbeTimeout))
		return b.poll(ctx, ready)
	}
	return nil
}

// poll publishes the items inserted since the last look for users with subscribers.
func (b *InboxBroker) poll(ctx context.Context, ready func()) error {
	s := b.store
	var last int64
	for {
		err := s.db.QueryRow(ctx, s.q.inboxMaxSeq).Scan(&last)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.o.log.Warn(ctx, "inbox broker: read the starting point", slog.Error(err))
		if sleep(ctx, s.o.clock, s.o.brokerPoll, "brokerPoll") != nil {
			return nil
		}
	}
	ready()
	for {
		if sleep(ctx, s.o.clock, s.o.brokerPoll, "brokerPoll") != nil {
			return nil
		}
		users := b.hub.Keys()
		if len(users) == 0 {
			// Nobody to tell: skip what was inserted meanwhile.
			if err := s.db.QueryRow(ctx, s.q.inboxMaxSeq).Scan(&last); err != nil && ctx.Err() == nil {
				s.o.log.Warn(ctx, "inbox broker: poll", slog.Error(err))
			}
			continue
		}
		next, err := b.pollOnce(ctx, last, users)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.o.log.Warn(ctx, "inbox broker: poll", slog.Error(err))
			continue
		}
		last = next
	}
}

// pollOnce publishes the subscribers' items with seq in (after, max] and returns max.
func (b *InboxBroker) pollOnce(ctx context.Context, after int64, users []uuid.UUID) (int64, error) {
	s := b.store
	var upTo int64
	if err := s.db.QueryRow(ctx, s.q.inboxMaxSeq).Scan(&upTo); err != nil {
		return after, translate(err)
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.String()
	}
	rows, err := s.db.Query(ctx, s.q.inboxSince, after, upTo, ids)
	if err != nil {
		return after, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanInboxItem(rows)
		if err != nil {
			return after, err
		}
		b.hub.Publish(it.UserID, notifications.InboxEvent{Kind: notifications.InboxEventCreated, UserID: it.UserID, ItemID: it.ID, Item: it})
	}
	if err := rows.Err(); err != nil {
		return after, translate(err)
	}
	return upTo, nil
}
