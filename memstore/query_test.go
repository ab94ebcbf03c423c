package memstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// TestMessageQueriesDoNotScan: with 200,000 messages of other users and templates, a page
// of one user's or one template's messages, or of a minute an hour ago, looks at only
// those messages (counted with Store.Examined, not timed).
func TestMessageQueriesDoNotScan(t *testing.T) {
	busy := notifications.Template{ID: uuid.New(), Name: "busy", TitleTemplate: "x", EnabledByDefault: true}
	rare := notifications.Template{ID: uuid.New(), Name: "rare", TitleTemplate: "x", EnabledByDefault: true}
	ctx, clk, s := largeStore(t, busy, rare)
	user := uuid.New()
	enqueue := func(tmpl, user uuid.UUID) {
		msg := driver.NewMessage{ID: uuid.New(), TemplateID: tmpl, UserID: user, Method: string(notifications.MethodWebhook), Payload: []byte(`{}`)}
		if _, err := s.EnqueueMessages(ctx, []driver.NewMessage{msg}, true); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(rare.ID, user)
	hourAgo := clk.Now()
	clk.Advance(time.Hour)
	const backlog, batch = 200_000, 5_000
	for i := 0; i < backlog; i += batch {
		msgs := make([]driver.NewMessage, batch)
		for j := range msgs {
			msgs[j] = driver.NewMessage{ID: uuid.New(), TemplateID: busy.ID, UserID: uuid.New(), Method: string(notifications.MethodWebhook), Payload: []byte(`{}`)}
		}
		if _, err := s.EnqueueMessages(ctx, msgs, true); err != nil {
			t.Fatal(err)
		}
	}
	for name, q := range map[string]notifications.MessageQuery{
		"user":     {UserID: user},
		"template": {TemplateID: rare.ID},
		"window":   {CreatedAfter: hourAgo, CreatedBefore: hourAgo.Add(time.Minute)},
	} {
		before := s.Examined()
		page, err := s.Messages(ctx, q)
		if err != nil || len(page.Messages) != 1 {
			t.Fatalf("%s: %d messages, %v; want 1", name, len(page.Messages), err)
		}
		if n := s.Examined() - before; n != 1 {
			t.Errorf("%s: a page looked at %d messages with %d other messages stored; want 1", name, n, backlog)
		}
	}
}
