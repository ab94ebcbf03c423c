package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// TestDataErrorsAreInvalidMessage: values PostgreSQL cannot store (a NUL byte or invalid
// UTF-8 in text) are the caller's input error, ErrInvalidMessage; a data exception from the
// server keeps the driver's error as the cause. NUL bytes are refused before they are sent
// (in the simple protocol they would break the message, not raise a data exception).
func TestDataErrorsAreInvalidMessage(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t)
	ctx := context.Background()
	check := func(what string, err error, sqlstate string) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.Is(err, notifications.ErrInvalidMessage) || (sqlstate != "" && (!errors.As(err, &pgErr) || pgErr.Code != sqlstate)) {
			t.Errorf("%s: err %v, want ErrInvalidMessage (SQLSTATE %q)", what, err, sqlstate)
		}
	}
	item := func(title string) notifications.InboxItem {
		return notifications.InboxItem{ID: uuid.New(), UserID: uuid.New(), TemplateID: uuid.New(), Title: title}
	}
	_, err := store.InsertInboxItem(ctx, item("evil\x00user"))
	check("inbox title with NUL", err, "")
	_, err = store.InsertInboxItem(ctx, item("evil\xffuser"))
	check("inbox title with invalid UTF-8", err, "22021")

	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	msg := func(createdBy string) []driver.NewMessage {
		return []driver.NewMessage{{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`), CreatedBy: createdBy}}
	}
	enqueue := func(msgs []driver.NewMessage) error {
		_, err := store.EnqueueMessages(ctx, msgs, true)
		return err
	}
	check("created_by with NUL", enqueue(msg("evil\x00user")), "")
	check("created_by with invalid UTF-8", enqueue(msg("evil\xffuser")), "22021")
	bad := tmpl
	bad.ID, bad.Name = uuid.New(), "evil\x00name"
	check("template name with NUL", store.UpsertTemplates(ctx, bad), "")
	if all, err := store.Messages(ctx, notifications.MessageQuery{}); err != nil || len(all.Messages) != 0 {
		t.Fatalf("refused input stored %d messages (%v)", len(all.Messages), err)
	}
}

// TestSchemaNameLimit: NOTIFY channel names ("<schema>.wake", "<schema>.inbox") are limited
// to 63 bytes, so longer schema names are refused before anything is created.
func TestSchemaNameLimit(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	name := func(n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }

	tooLong := name(pgstore.MaxSchemaLen + 1)
	err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: tooLong})
	if err == nil || !strings.Contains(err.Error(), "57 bytes") {
		t.Fatalf("migrate with a %d-byte schema: err %v, want a refusal naming the limit", len(tooLong), err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", tooLong).Scan(&exists); err != nil || exists {
		t.Fatalf("the refused schema was created: %v, %v", exists, err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: tooLong})
	if _, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: uuid.New(), Methods: []string{"smtp"},
		Limit: 1, LeasePeriod: time.Minute, MaxAttempts: 1}); err == nil || !strings.Contains(err.Error(), "57 bytes") {
		t.Fatalf("a store on a too-long schema: err %v, want the limit", err)
	}

	longest := name(pgstore.MaxSchemaLen)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{longest}.Sanitize()+" CASCADE")
	})
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: longest}); err != nil {
		t.Fatalf("migrate a %d-byte schema: %v", len(longest), err)
	}
	store = pgstore.New(pool, pgstore.Config{Schema: longest})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(),
		Method: "smtp", Payload: []byte(`{}`)}}, true); err != nil {
		t.Fatalf("enqueue on a %d-byte schema: %v", len(longest), err)
	}
	if err := store.NewInboxBroker().Publish(ctx, notifications.InboxEvent{Kind: notifications.InboxEventCreated, ItemID: uuid.New(), UserID: uuid.New()}); err != nil {
		t.Fatalf("publish on a %d-byte schema: %v", len(longest), err)
	}
}

// TestConfigRefusals: a Config that cannot work is refused by Migrate and by every method
// of the store, with sentences naming each field at fault; nothing is created.
func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	cfg := pgstore.Config{Schema: schema, ListenerPingInterval: -time.Second, BrokerPollInterval: -time.Second,
		ListenerDSN: "postgres://localhost/x", ListenerConn: func(context.Context) (*pgx.Conn, error) { return nil, nil }}
	wants := []string{"Config.ListenerPingInterval", "Config.BrokerPollInterval", "Config.ListenerConn and Config.ListenerDSN"}
	err := pgstore.Migrate(ctx, pool, cfg)
	for _, want := range wants {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("migrate with a bad Config: %v; want it to name %s", err, want)
		}
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil || exists {
		t.Fatalf("the refused schema was created: %v, %v", exists, err)
	}
	if _, err := pgstore.New(pool, cfg).Paused(ctx); err == nil || !strings.Contains(err.Error(), wants[0]) {
		t.Fatalf("a store with a bad Config: %v; want the refusal", err)
	}
}

// TestInTxRefusesWhatIsNotATransaction: SendTx with something other than a pgx.Tx stores
// nothing and names what it got.
func TestInTxRefusesWhatIsNotATransaction(t *testing.T) {
	f := newFixture(t)
	for _, tx := range []any{nil, f.pool, "tx"} {
		_, err := f.enq.SendTx(f.ctx, tx, notifications.EnqueueRequest{UserID: uuid.New(), TemplateID: f.tmpl.ID})
		if err == nil || !strings.Contains(err.Error(), "pgx.Tx") || !strings.Contains(err.Error(), fmt.Sprintf("%T", tx)) {
			t.Fatalf("SendTx(%T): %v; want a refusal naming pgx.Tx and the type given", tx, err)
		}
	}
	if counts, err := f.store.CountByStatus(f.ctx); err != nil || len(counts) != 0 {
		t.Fatalf("stored %v, %v", counts, err)
	}
}
