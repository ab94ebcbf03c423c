package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// keyedMessages returns n smtp messages of tmpl, each with a dedupe key of its own.
func keyedMessages(tmpl notifications.Template, prefix string, n int) []driver.NewMessage {
	msgs := make([]driver.NewMessage, n)
	for i := range msgs {
		msgs[i] = driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp",
			Payload: []byte(`{}`), DedupeKey: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return msgs
}

// checkDedupeKeys fails the test unless the dedupe_keys table of schema holds exactly the
// key of every stored message that has one, each naming its message, and returns how many.
func checkDedupeKeys(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) int {
	t.Helper()
	var keys, keyed, matched int
	s := pgx.Identifier{schema}.Sanitize()
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+s+`.dedupe_keys),
		(SELECT count(*) FROM `+s+`.messages WHERE dedupe_key IS NOT NULL),
		(SELECT count(*) FROM `+s+`.dedupe_keys k JOIN `+s+`.messages m ON m.id = k.message_id AND m.dedupe_key = k.key)`).
		Scan(&keys, &keyed, &matched); err != nil {
		t.Fatal(err)
	}
	if keys != keyed || matched != keyed {
		t.Fatalf("dedupe_keys has %d keys, %d of them naming their message; %d stored messages have a key", keys, matched, keyed)
	}
	return keys
}

// TestDedupeKeysFollowEveryWriter: the dedupe keys live in a table of their own. Every
// way of storing a message adds its key (the one-message statement, the batch statement,
// COPY, the host's transaction, which write it themselves, and the previous version's
// enqueue, whose rows get theirs from a trigger), a duplicate is refused on each of them,
// a rolled-back enqueue leaves no key, and the purge removes the keys of what it
// deletes, so the same content can be stored again.
func TestDedupeKeysFollowEveryWriter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tmpl := notifications.Template{ID: uuid.New(), Name: "keyed", TitleTemplate: "t", BodyTemplate: "b", EnabledByDefault: true}
	if err := f.store.UpsertTemplates(f.ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	// One message, a batch below the COPY threshold, one above it, and the host's
	// transaction (one committed, one rolled back).
	writes := []struct {
		name string
		msgs []driver.NewMessage
	}{
		{"single", keyedMessages(tmpl, "single", 1)},
		{"statement", keyedMessages(tmpl, "statement", 10)},
		{"copy", keyedMessages(tmpl, "copy", 300)},
	}
	stored := 0
	for _, w := range writes {
		if refused, err := f.store.EnqueueMessages(f.ctx, w.msgs, true); err != nil || refused != nil {
			t.Fatalf("%s: refused %v, %v", w.name, refused, err)
		}
		stored += len(w.msgs)
	}
	inTx := keyedMessages(tmpl, "tx", 2)
	if err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		_, err := f.store.WithTx(tx).EnqueueMessages(f.ctx, inTx[:1], true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stored++
	rollback := errors.New("the host rolls back")
	if err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := f.store.WithTx(tx).EnqueueMessages(f.ctx, inTx[1:], true); err != nil {
			return err
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	// A writer that does not write the keys itself: the previous version's enqueue, on
	// the same pool after this version's (whose setting ended with its transaction).
	previousSQL := previousStatement(t, "enqueue", f.schema)
	previous := keyedMessages(tmpl, "previous", 20)
	if n, err := previousEnqueue(f.ctx, f.pool, previousSQL, previous); err != nil || n != len(previous) {
		t.Fatalf("the previous version's enqueue stored %d of %d: %v", n, len(previous), err)
	}
	stored += len(previous)
	if got := checkDedupeKeys(t, f.ctx, f.pool, f.schema); got != stored {
		t.Fatalf("%d keys after %d keyed messages were stored", got, stored)
	}
	for _, key := range []string{"copy-5", "previous-3"} {
		dup := keyedMessages(tmpl, "previous-again", 2)
		dup[1].DedupeKey = key
		_, err := previousEnqueue(f.ctx, f.pool, previousSQL, dup)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "dedupe_keys_pkey" {
			t.Fatalf("the previous version's enqueue of the stored key %s: %v; want a unique violation on dedupe_keys_pkey", key, err)
		}
	}

	// A duplicate of a stored key through each path, and within one COPY batch.
	again := func(prefix string, n int, key string) []driver.NewMessage {
		msgs := keyedMessages(tmpl, prefix, n)
		msgs[n-1].DedupeKey = key
		return msgs
	}
	for _, c := range []struct {
		name string
		msgs []driver.NewMessage
	}{
		{"single", again("single-again", 1, "single-0")},
		{"statement", again("statement-again", 10, "copy-7")},
		{"copy", again("copy-again", 300, "statement-3")},
		{"copy, key twice in the batch", again("copy-twice", 300, "copy-twice-0")},
		{"single, key the previous version stored", again("single-previous", 1, "previous-7")},
	} {
		refused, err := f.store.EnqueueMessages(f.ctx, c.msgs, true)
		var pgErr *pgconn.PgError
		if !errors.Is(err, notifications.ErrDuplicate) || !errors.As(err, &pgErr) || pgErr.ConstraintName != "dedupe_keys_pkey" {
			t.Fatalf("%s: refused %v, err %v; want ErrDuplicate from dedupe_keys_pkey", c.name, refused, err)
		}
	}
	err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		_, err := f.store.WithTx(tx).EnqueueMessages(f.ctx, again("tx-again", 1, "tx-0"), true)
		return err
	})
	if !errors.Is(err, notifications.ErrDuplicate) {
		t.Fatalf("duplicate in the host's transaction: %v; want ErrDuplicate", err)
	}
	if got := checkDedupeKeys(t, f.ctx, f.pool, f.schema); got != stored {
		t.Fatalf("%d keys after refused duplicates; want the %d stored", got, stored)
	}
	// Not atomic: the batch is refused, then each message is stored under a savepoint of
	// its own, with its key, and the duplicate alone is refused.
	mixed := again("mixed", 10, "statement-5")
	if refused, err := f.store.EnqueueMessages(f.ctx, mixed, false); err != nil || len(refused) != 10 ||
		!errors.Is(refused[9], notifications.ErrDuplicate) || slices.ContainsFunc(refused[:9], func(err error) bool { return err != nil }) {
		t.Fatalf("not atomic: refused %v, %v; want the last one alone refused as a duplicate", refused, err)
	}
	stored += 9
	if got := checkDedupeKeys(t, f.ctx, f.pool, f.schema); got != stored {
		t.Fatalf("%d keys after the messages stored one by one; want %d", got, stored)
	}
	// The rolled-back message's key is free.
	if refused, err := f.store.EnqueueMessages(f.ctx, inTx[1:], true); err != nil || refused != nil {
		t.Fatalf("key of a rolled-back enqueue: refused %v, %v", refused, err)
	}
	stored++

	// Deliver everything, then purge it: the keys go with the messages, and the same
	// content can be stored again.
	notifier := uuid.New()
	leased, err := f.store.LeaseMessages(f.ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{"smtp"}, Limit: stored, LeasePeriod: time.Minute, MaxAttempts: 3})
	if err != nil || len(leased) != stored {
		t.Fatalf("lease: %d of %d, %v", len(leased), stored, err)
	}
	markAllSent(t, f.ctx, f.store, notifier, leased)
	if n, err := f.store.PurgeMessages(f.ctx, driver.PurgeParams{MessagesOlderThan: 0, BatchSize: 100}); err != nil || n != stored {
		t.Fatalf("purged %d of %d: %v", n, stored, err)
	}
	if got := checkDedupeKeys(t, f.ctx, f.pool, f.schema); got != 0 {
		t.Fatalf("%d keys left after the purge", got)
	}
	for _, w := range writes {
		if refused, err := f.store.EnqueueMessages(f.ctx, keyedMessages(tmpl, w.name, len(w.msgs)), true); err != nil || refused != nil {
			t.Fatalf("%s after the purge: refused %v, %v", w.name, refused, err)
		}
	}
	if n, err := previousEnqueue(f.ctx, f.pool, previousSQL, keyedMessages(tmpl, "previous", len(previous))); err != nil || n != len(previous) {
		t.Fatalf("the previous version's enqueue after the purge stored %d of %d: %v", n, len(previous), err)
	}
	checkDedupeKeys(t, f.ctx, f.pool, f.schema)
}

// TestConcurrentDuplicateWaitsForTheFirst: of two transactions that store the same dedupe
// key, the second waits for the first: it is refused as a duplicate when the first
// commits, and stored when the first rolls back.
func TestConcurrentDuplicateWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, commit := range []bool{true, false} {
		key := fmt.Sprintf("concurrent-%v", commit)
		first, err := f.pool.Begin(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		msg := keyedMessages(f.tmpl, key, 1)
		msg[0].DedupeKey = key
		if _, err := f.store.WithTx(first).EnqueueMessages(f.ctx, msg, true); err != nil {
			t.Fatal(err)
		}
		second := make(chan error, 1)
		go func() {
			dup := keyedMessages(f.tmpl, key+"-second", 1)
			dup[0].DedupeKey = key
			_, err := f.store.EnqueueMessages(f.ctx, dup, true)
			second <- err
		}()
		// The second enqueue waits on the first transaction's key.
		waitForLockWait(t, f.ctx, f.pool, f.schema)
		if commit {
			err = first.Commit(f.ctx)
		} else {
			err = first.Rollback(f.ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		err = <-second
		if commit && !errors.Is(err, notifications.ErrDuplicate) {
			t.Fatalf("after the first committed: %v; want ErrDuplicate", err)
		}
		if !commit && err != nil {
			t.Fatalf("after the first rolled back: %v; want it stored", err)
		}
	}
	checkDedupeKeys(t, f.ctx, f.pool, f.schema)
}

// waitForLockWait returns once a statement on schema waits for another transaction.
func waitForLockWait(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) {
	t.Helper()
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND wait_event = 'transactionid' AND strpos(query, $1) > 0)`,
			pgx.Identifier{schema}.Sanitize()+".").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no enqueue waited for the first transaction")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestDedupeKeyCannotChange: no version changes a stored message's dedupe key, and an
// update that would is refused, since the dedupe_keys table would no longer match it; a
// TRUNCATE of messages empties the table too.
func TestDedupeKeyCannotChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if refused, err := f.store.EnqueueMessages(f.ctx, keyedMessages(f.tmpl, "fixed", 3), true); err != nil || refused != nil {
		t.Fatalf("refused %v, %v", refused, err)
	}
	s := pgx.Identifier{f.schema}.Sanitize()
	_, err := f.pool.Exec(f.ctx, "UPDATE "+s+".messages SET dedupe_key = 'other' WHERE dedupe_key = 'fixed-0'")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ColumnName != "dedupe_key" {
		t.Fatalf("changing a dedupe key: %v; want a check violation naming dedupe_key", err)
	}
	if _, err := f.pool.Exec(f.ctx, "UPDATE "+s+".messages SET dedupe_key = dedupe_key, updated_at = now()"); err != nil {
		t.Fatalf("an update that keeps the key: %v", err)
	}
	checkDedupeKeys(t, f.ctx, f.pool, f.schema)
	if _, err := f.pool.Exec(f.ctx, "TRUNCATE "+s+".messages CASCADE"); err != nil {
		t.Fatal(err)
	}
	if got := checkDedupeKeys(t, f.ctx, f.pool, f.schema); got != 0 {
		t.Fatalf("%d keys after TRUNCATE", got)
	}
}

// TestMigrationFillsDedupeKeys: a schema of the version before the dedupe_keys table,
// with messages stored, is migrated: every stored message's key is in the table, a key
// whose message a purge deleted while the table was filled (put there by hand here,
// between the two migrations) is removed, the unique index on messages is gone, and
// duplicates of messages stored before the migration are still refused.
func TestMigrationFillsDedupeKeys(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := pgstore.Config{Schema: schema}
	if err := pgstore.MigrateTo(ctx, pool, 11, cfg); err != nil {
		t.Fatal(err)
	}
	// Before 0012, stored by the previous version (this version's enqueue needs the table).
	store, tmpl := storeWithTemplate(t, ctx, pool, schema)
	previousSQL := previousStatement(t, "enqueue", schema)
	before := keyedMessages(tmpl, "before", 200)
	if n, err := previousEnqueue(ctx, pool, previousSQL, before); err != nil || n != len(before) {
		t.Fatalf("stored %d of %d: %v", n, len(before), err)
	}
	if err := pgstore.MigrateTo(ctx, pool, 12, cfg); err != nil {
		t.Fatal(err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	if _, err := pool.Exec(ctx, "INSERT INTO "+s+".dedupe_keys (key, message_id) VALUES ('orphan', $1)", uuid.New()); err != nil {
		t.Fatal(err)
	}
	// Between 0012 and 0013, by this version and by the previous one.
	between := keyedMessages(tmpl, "between", 100)
	if refused, err := store.EnqueueMessages(ctx, between, true); err != nil || refused != nil {
		t.Fatalf("refused %v, %v", refused, err)
	}
	betweenPrevious := keyedMessages(tmpl, "between previous", 100)
	if n, err := previousEnqueue(ctx, pool, previousSQL, betweenPrevious); err != nil || n != len(betweenPrevious) {
		t.Fatalf("stored %d of %d: %v", n, len(betweenPrevious), err)
	}
	if err := pgstore.Migrate(ctx, pool, cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := checkDedupeKeys(t, ctx, pool, schema), len(before)+len(between)+len(betweenPrevious); got != want {
		t.Fatalf("%d keys; want %d", got, want)
	}
	var index bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".messages_dedupe_key_c").Scan(&index); err != nil || index {
		t.Fatalf("messages_dedupe_key_c still there: %v, %v", index, err)
	}
	dup := keyedMessages(tmpl, "dup", 1)
	dup[0].DedupeKey = before[42].DedupeKey
	if _, err := store.EnqueueMessages(ctx, dup, true); !errors.Is(err, notifications.ErrDuplicate) {
		t.Fatalf("duplicate of a message stored before the migration: %v; want ErrDuplicate", err)
	}
	orphan := keyedMessages(tmpl, "orphan", 1)
	orphan[0].DedupeKey = "orphan"
	if refused, err := store.EnqueueMessages(ctx, orphan, true); err != nil || refused != nil {
		t.Fatalf("the key of a deleted message: refused %v, %v", refused, err)
	}
}

// TestEnqueueWritesItsOwnKeys: this version's enqueues write their dedupe keys
// themselves, so the insert trigger for other writers' rows is never called for theirs
// (one plpgsql call per enqueue, or per message, on the request path); the previous
// version's enqueue calls it once per message. Counted by PostgreSQL's function
// statistics within the transaction.
func TestEnqueueWritesItsOwnKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	calls := func(tx pgx.Tx) int64 {
		t.Helper()
		var n int64
		if err := tx.QueryRow(f.ctx, `SELECT coalesce(sum(pg_stat_get_xact_function_calls(p.oid)), 0)::bigint
			FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1`, f.schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	inTx := func(fn func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(f.ctx, "SET LOCAL track_functions = 'pl'"); err != nil {
				return err
			}
			return fn(tx)
		}); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{1, 10, 300} // the one-message statement, the batch statement, COPY
	for _, n := range sizes {
		inTx(func(tx pgx.Tx) error { // each in a transaction of its own: the setting lasts for the transaction
			if refused, err := f.store.WithTx(tx).EnqueueMessages(f.ctx, keyedMessages(f.tmpl, fmt.Sprint("own ", n), n), true); err != nil || refused != nil {
				t.Fatalf("%d messages: refused %v, %v", n, refused, err)
			}
			if got := calls(tx); got != 0 {
				t.Fatalf("an enqueue of %d messages called trigger functions %d times; want none", n, got)
			}
			return nil
		})
	}
	inTx(func(tx pgx.Tx) error {
		msgs := keyedMessages(f.tmpl, "previous", 5)
		if n, err := previousEnqueue(f.ctx, tx, previousStatement(t, "enqueue", f.schema), msgs); err != nil || n != len(msgs) {
			t.Fatalf("the previous version's enqueue stored %d of %d: %v", n, len(msgs), err)
		}
		if got := calls(tx); got != int64(len(msgs)) {
			t.Fatalf("the previous version's enqueue of %d messages called trigger functions %d times; want one per message", len(msgs), got)
		}
		return nil
	})
	// On the store's pool (its own transactions, the prelude's batch): with the trigger's
	// function made to fail, every enqueue still stores its messages and their keys.
	if _, err := f.pool.Exec(f.ctx, `CREATE OR REPLACE FUNCTION `+pgx.Identifier{f.schema, "dedupe_key_add"}.Sanitize()+`() RETURNS trigger
		LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the insert trigger was called'; END $$`); err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes {
		if refused, err := f.store.EnqueueMessages(f.ctx, keyedMessages(f.tmpl, fmt.Sprint("pool ", n), n), true); err != nil || refused != nil {
			t.Fatalf("%d messages on the pool: refused %v, %v", n, refused, err)
		}
	}
	checkDedupeKeys(t, f.ctx, f.pool, f.schema)
}
