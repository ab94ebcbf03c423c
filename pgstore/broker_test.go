package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/pgstore"
)

// TestInboxBrokerAcrossReplicas runs two brokers on one schema, as two replicas would: an
// item stored and published through the first reaches a subscriber of the second exactly
// once, and a subscriber of another user gets nothing.
func TestInboxBrokerAcrossReplicas(t *testing.T) {
	t.Parallel()
	storeA, pool, schema := newStore(t)
	storeB := pgstore.New(pool, pgstore.Config{Schema: schema})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a, b := storeA.NewInboxBroker(), storeB.NewInboxBroker()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	ready := make(chan struct{}, 2)
	for _, br := range []*pgstore.InboxBroker{a, b} {
		go func() {
			defer func() { done <- struct{}{} }()
			_ = br.Run(runCtx, func() { ready <- struct{}{} })
		}()
	}
	<-ready
	<-ready

	user, other := uuid.New(), uuid.New()
	subCtx, unsubscribe := context.WithCancel(ctx)
	events := b.Subscribe(subCtx, user)
	otherEvents := b.Subscribe(subCtx, other)

	item := notifications.InboxItem{ID: uuid.New(), UserID: user, TemplateID: uuid.New(), Title: "Build failed", Content: "**red**",
		Actions: []notifications.Action{{Label: "Logs", URL: "https://ci.example.com/1"}}}
	created, err := storeA.InsertInboxItem(ctx, item)
	if err != nil || !created {
		t.Fatalf("insert: created=%v err=%v", created, err)
	}
	if err := a.Publish(ctx, notifications.InboxEvent{Kind: notifications.InboxEventCreated, UserID: user, ItemID: item.ID}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	// A marker for the other user, published after the item: once it has arrived, every
	// event for the item has been processed too (one listener connection, in order).
	marker := notifications.InboxItem{ID: uuid.New(), UserID: other, TemplateID: uuid.New(), Title: "marker"}
	if _, err := storeA.InsertInboxItem(ctx, marker); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, notifications.InboxEvent{Kind: notifications.InboxEventRead, UserID: other, ItemID: marker.ID}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if got := ev.Item; ev.Kind != notifications.InboxEventCreated || ev.ItemID != item.ID || got.ID != item.ID || got.Title != item.Title || len(got.Actions) != 1 {
			t.Fatalf("received %+v, want the created %+v", ev, item)
		}
	case <-ctx.Done():
		t.Fatal("no event for the subscriber")
	}
	select {
	case got := <-otherEvents:
		if got.Kind != notifications.InboxEventRead || got.ItemID != marker.ID || got.UserID != other {
			t.Fatalf("other user received %+v, want only the marker", got)
		}
	case <-ctx.Done():
		t.Fatal("no marker event")
	}
	unsubscribe()
	var extra int
	for range events {
		extra++
	}
	if extra != 0 {
		t.Fatalf("the subscriber received %d more events, want exactly one in all", extra)
	}
	stop()
	<-done
	<-done
}
