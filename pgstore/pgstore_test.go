package pgstore_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

func TestMain(m *testing.M) {
	if os.Getenv("CRASH_CHILD") == "1" {
		os.Exit(crashChildMain())
	}
	if os.Getenv("MIGRATE_CHILD") == "1" {
		os.Exit(migrateChildMain())
	}
	goleak.VerifyTestMain(m)
}

// newStore migrates a fresh schema and returns a store on it; cfg (at most one) is the
// Config apart from its Schema.
func newStore(t *testing.T, cfgs ...pgstore.Config) (*pgstore.Store, *pgxpool.Pool, string) {
	t.Helper()
	pool, schema := pgtest.Schema(t)
	ctx := context.Background()
	var cfg pgstore.Config
	if len(cfgs) > 0 {
		cfg = cfgs[0]
	}
	cfg.Schema = schema
	if err := pgstore.Migrate(ctx, pool, cfg); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pgstore.New(pool, cfg), pool, schema
}

func TestConformance(t *testing.T) {
	t.Parallel()
	notificationstest.RunStoreTests(t, func(t *testing.T, clk quartz.Clock) notifications.Store {
		s, _, _ := newStore(t, pgstore.Config{}.WithTestClock(clk))
		return s
	})
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate %d: %v", i, err)
		}
	}
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	var rows, version int
	if err := pool.QueryRow(ctx, "SELECT count(*), max(version) FROM "+pgx.Identifier{schema}.Sanitize()+".schema_version").Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != pgstore.SchemaVersion() || version != pgstore.SchemaVersion() {
		t.Fatalf("schema_version has %d rows, version %d; want one row per migration, up to %d", rows, version, pgstore.SchemaVersion())
	}
}

func TestBadInputLeavesTableAsItWas(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t)
	ctx := context.Background()
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	msg := func() driver.NewMessage {
		return driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`), DedupeKey: uuid.NewString()}
	}
	good := msg()
	if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{good}, true); err != nil {
		t.Fatal(err)
	}

	notJSON := msg()
	notJSON.Payload = []byte(`{"labels":`)
	if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{msg(), notJSON}, true); !errors.Is(err, notifications.ErrInvalidMessage) {
		t.Errorf("payload not JSON: err %v, want ErrInvalidMessage", err)
	}
	unknown := msg()
	unknown.TemplateID = uuid.New()
	if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{msg(), unknown}, true); !errors.Is(err, notifications.ErrNotFound) {
		t.Errorf("unknown template: err %v, want ErrNotFound", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.EnqueueMessages(cancelled, []driver.NewMessage{msg()}, true); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err %v, want context.Canceled", err)
	}
	if _, err := store.LeaseMessages(cancelled, driver.LeaseParams{NotifierID: uuid.New(), Methods: []string{"smtp"}, Limit: 1, LeasePeriod: time.Minute, MaxAttempts: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("lease with a cancelled context: err %v", err)
	}

	page, err := store.Messages(ctx, notifications.MessageQuery{})
	if all := page.Messages; err != nil || len(all) != 1 || all[0].ID != good.ID || all[0].Status != notifications.StatusPending {
		t.Fatalf("table changed by bad input: %+v, %v", all, err)
	}

	// A closed pool gives an error that says so.
	pool := pgtest.Pool(t)
	closed := pgstore.New(pool, pgstore.Config{})
	pool.Close()
	if _, err := closed.EnqueueMessages(ctx, []driver.NewMessage{msg()}, true); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("closed pool: err %v", err)
	}
}
