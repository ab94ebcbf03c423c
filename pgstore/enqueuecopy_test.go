package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/pgstore"
)

// copyBatch is a batch large enough for the copied enqueue (pgstore copies from 64
// messages), of tmpl, each message with its own user, dedupe key and one target.
func copyBatch(tmpl uuid.UUID) []driver.NewMessage {
	msgs := make([]driver.NewMessage, 100)
	for i := range msgs {
		msgs[i] = driver.NewMessage{ID: uuid.New(), TemplateID: tmpl, UserID: uuid.New(), Method: string(notifications.MethodWebhook),
			Payload: fmt.Appendf(nil, `{"n":%d}`, i), Targets: []uuid.UUID{uuid.New()}, CreatedBy: "copy", DedupeKey: uuid.NewString()}
	}
	msgs[1].Targets = nil
	msgs[2].DedupeKey = ""
	return msgs
}

// TestCopiedEnqueue: a large batch (the copied enqueue) stores every message as given, and
// each kind of refusal in it (a missing or deleted template, a disabled one, a duplicate
// ID or key, in the batch or stored, data PostgreSQL refuses, a NUL byte) is attributed to its message,
// the others stored unless atomic; in the pool's exec mode, through PgBouncer and in the
// host's transaction.
func TestCopiedEnqueue(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) (*pgstore.Store, func(func(s *pgstore.Store) error) error){
		"pool": func(t *testing.T) (*pgstore.Store, func(func(s *pgstore.Store) error) error) {
			s, _, _ := newStore(t)
			return s, func(f func(*pgstore.Store) error) error { return f(s) }
		},
		"pgbouncer": func(t *testing.T) (*pgstore.Store, func(func(s *pgstore.Store) error) error) {
			s := bouncerStore(t, quartz.NewReal())
			return s, func(f func(*pgstore.Store) error) error { return f(s) }
		},
		"host transaction": func(t *testing.T) (*pgstore.Store, func(func(s *pgstore.Store) error) error) {
			s, pool, _ := newStore(t)
			return s, func(f func(*pgstore.Store) error) error {
				return pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error { return f(s.WithTx(tx)) })
			}
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store, run := open(t)
			tmpl := notifications.Template{ID: uuid.New(), Name: "copy " + name, TitleTemplate: "Hi", EnabledByDefault: true}
			gone := notifications.Template{ID: uuid.New(), Name: "gone " + name, TitleTemplate: "Hi", EnabledByDefault: true}
			if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl, gone); err != nil {
				t.Fatal(err)
			}
			if err := store.DeleteTemplate(ctx, gone.ID); err != nil {
				t.Fatal(err)
			}
			enqueue := func(msgs []driver.NewMessage, atomic bool) (refused []error, err error) {
				err = run(func(s *pgstore.Store) error {
					var err error
					refused, err = s.EnqueueMessages(ctx, msgs, atomic)
					return err
				})
				return refused, err
			}

			msgs := copyBatch(tmpl.ID)
			if refused, err := enqueue(msgs, true); err != nil || refused != nil {
				t.Fatalf("enqueue: %v, %v", refused, err)
			}
			for _, want := range msgs {
				got, err := store.Message(ctx, want.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != notifications.StatusPending || got.UserID != want.UserID || got.TemplateID != want.TemplateID ||
					string(got.Method) != want.Method || string(got.Payload) != string(want.Payload) || got.CreatedBy != want.CreatedBy ||
					!slices.Equal(got.Targets, want.Targets) && len(got.Targets)+len(want.Targets) > 0 {
					t.Fatalf("stored %+v; want %+v", got, want)
				}
			}

			off := uuid.New()
			if err := store.SetPreference(ctx, off, notifications.Preference{TemplateID: tmpl.ID, Disabled: true}); err != nil {
				t.Fatal(err)
			}
			refusals := []struct {
				name string
				edit func(msgs []driver.NewMessage, m *driver.NewMessage)
				want error
			}{
				{"missing template", func(_ []driver.NewMessage, m *driver.NewMessage) { m.TemplateID = uuid.New() }, notifications.ErrNotFound},
				{"deleted template", func(_ []driver.NewMessage, m *driver.NewMessage) { m.TemplateID = gone.ID }, notifications.ErrNotFound},
				{"disabled", func(_ []driver.NewMessage, m *driver.NewMessage) { m.UserID = off }, notifications.ErrCannotEnqueueDisabledNotification},
				{"stored ID", func(_ []driver.NewMessage, m *driver.NewMessage) { m.ID = msgs[0].ID }, notifications.ErrDuplicate},
				{"stored key", func(_ []driver.NewMessage, m *driver.NewMessage) { m.DedupeKey = msgs[0].DedupeKey }, notifications.ErrDuplicate},
				{"key in the batch", func(b []driver.NewMessage, m *driver.NewMessage) { m.DedupeKey = b[3].DedupeKey }, notifications.ErrDuplicate},
				{"invalid JSON", func(_ []driver.NewMessage, m *driver.NewMessage) { m.Payload = []byte(`{"n":`) }, notifications.ErrInvalidMessage},
				{"invalid UTF-8", func(_ []driver.NewMessage, m *driver.NewMessage) { m.CreatedBy = "\xff" }, notifications.ErrInvalidMessage},
				{"NUL", func(_ []driver.NewMessage, m *driver.NewMessage) { m.DedupeKey = "a\x00b" }, notifications.ErrInvalidMessage},
			}
			for _, r := range refusals {
				for _, atomic := range []bool{true, false} {
					batch := copyBatch(tmpl.ID)
					r.edit(batch, &batch[70])
					refused, err := enqueue(batch, atomic)
					if atomic {
						if !errors.Is(err, r.want) || len(refused) != len(batch) || !errors.Is(refused[70], r.want) {
							t.Fatalf("%s, atomic: %v; want %v", r.name, err, r.want)
						}
					} else if err != nil || len(refused) != len(batch) || !errors.Is(refused[70], r.want) {
						t.Fatalf("%s: %v (message 70: %v); want %v for message 70", r.name, err, refused, r.want)
					}
					for i, m := range batch {
						if i != 70 && refused[i] != nil {
							t.Fatalf("%s: message %d refused: %v", r.name, i, refused[i])
						}
						_, err := store.Message(ctx, m.ID)
						if stored := err == nil; stored != (!atomic && i != 70) && !(r.name == "stored ID" && i == 70) {
							t.Fatalf("%s, atomic %v: message %d stored: %v", r.name, atomic, i, stored)
						}
					}
				}
			}
		})
	}
}
