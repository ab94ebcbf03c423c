package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// enqueueWebhooks stores n webhook messages of tmpl, in enqueue order, and returns their IDs.
func enqueueWebhooks(t *testing.T, ctx context.Context, store *pgstore.Store, tmpl notifications.Template, n int) []uuid.UUID {
	t.Helper()
	msgs := make([]driver.NewMessage, n)
	ids := make([]uuid.UUID, n)
	for i := range msgs {
		ids[i] = driver.NewMessageID(time.Now())
		msgs[i] = driver.NewMessage{ID: ids[i], TemplateID: tmpl.ID, UserID: uuid.New(), Method: string(notifications.MethodWebhook),
			Payload: []byte(`{"version":1,"labels":{"build":"a build label of some length"}}`)}
	}
	if _, err := store.EnqueueMessages(ctx, msgs, true); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestLeaseIsAHOTUpdate: a lease changes no indexed column, so PostgreSQL writes it as a
// HOT update (no index entry) when the row's page has room, which the table's fillfactor
// keeps; the result write, which changes the status, is not one.
func TestLeaseIsAHOTUpdate(t *testing.T) {
	t.Parallel()
	ctx, cfg := poolConfig(t)
	cfg.MaxConns = 1 // one backend: its statistics are flushed before they are read
	pool, schema := migratedPool(t, ctx, cfg)
	store, tmpl := storeWithTemplate(t, ctx, pool, schema)
	updates := func() (all, hot int64) {
		t.Helper()
		if _, err := pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'messages'",
			schema).Scan(&all, &hot); err != nil {
			t.Fatal(err)
		}
		return all, hot
	}
	const n = 300
	enqueueWebhooks(t, ctx, store, tmpl, n)
	all0, hot0 := updates()
	notifier := uuid.New()
	leased, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{string(notifications.MethodWebhook)},
		Limit: n, LeasePeriod: time.Minute, MaxAttempts: 5})
	if err != nil || len(leased) != n {
		t.Fatalf("leased %d of %d: %v", len(leased), n, err)
	}
	all1, hot1 := updates()
	if all1-all0 != n || hot1-hot0 != n {
		t.Fatalf("the lease of %d messages made %d updates, %d of them HOT; want every one HOT", n, all1-all0, hot1-hot0)
	}
	markAllSent(t, ctx, store, notifier, leased)
	all2, hot2 := updates()
	t.Logf("lease: %d updates, %d HOT; result write: %d updates, %d HOT", all1-all0, hot1-hot0, all2-all1, hot2-hot1)
	if counts, err := store.CountByStatus(ctx); err != nil || counts[notifications.StatusSent] != n {
		t.Fatalf("statuses %v, %v: want %d sent", counts, err, n)
	}
}

// previousStatement reads a statement of the previous version's replicas from
// testdata/previous_version, for the schema.
func previousStatement(t *testing.T, name, schema string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/previous_version/" + name + ".sql")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "{{s}}", pgx.Identifier{schema}.Sanitize())
}

// previousEnqueue stores msgs with the previous version's batch enqueue statement
// (previousStatement "enqueue", in sql) and returns how many rows it inserted.
func previousEnqueue(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, msgs []driver.NewMessage) (int, error) {
	n := len(msgs)
	ids, tmpls, users, methods := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads, targets, createdBy, keys := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	for i, m := range msgs {
		ids[i], tmpls[i], users[i], methods[i] = m.ID.String(), m.TemplateID.String(), m.UserID.String(), m.Method
		payloads[i], targets[i], createdBy[i] = string(m.Payload), "{}", m.CreatedBy
		if m.DedupeKey != "" {
			keys[i] = &msgs[i].DedupeKey
		}
	}
	var (
		badTemplate, badUser *uuid.UUID
		missing              *bool
		inserted             int
	)
	err := db.QueryRow(ctx, sql, nil, ids, tmpls, users, methods, payloads, targets, createdBy, keys).Scan(&badTemplate, &badUser, &missing, &inserted)
	if err == nil && badTemplate != nil {
		err = xerrors.Errorf("the previous version's enqueue refused template %s", badTemplate)
	}
	return inserted, err
}

// previousLease runs the previous version's lease statement (previousStatement "lease")
// of up to limit webhook messages as notifier and returns the attempt number of each
// message it leased.
func previousLease(ctx context.Context, pool *pgxpool.Pool, sql string, notifier uuid.UUID, limit int) (map[uuid.UUID]int32, error) {
	rows, err := pool.Query(ctx, sql, nil, notifier, limit, time.Minute.Microseconds(), 5,
		[]string{string(notifications.MethodWebhook)})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := map[uuid.UUID]int32{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		got[uuid.UUID(vals[0].([16]byte))] = vals[8].(int32)
	}
	return got, rows.Err()
}

// TestPreviousVersionLeavesLeasesInPlaceAlone: during a rolling upgrade, replicas of the
// previous version run their own statements on the migrated schema, where a leased
// message keeps its status. Their lease must not take a message this version leased in
// place, nor their cancellation change it (the trigger of 0009_lease_in_place.sql), so
// that it is delivered once and its result lands. Once such a lease has expired, their
// statements treat the message as pending and end the lease in place: they lease it and
// write its result, or cancel it, and the late result of the notifier that held it
// changes nothing. Their purge, without the indexes it read (0011_fewer_index_entries.sql),
// still deletes what is finished and nothing else.
func TestPreviousVersionLeavesLeasesInPlaceAlone(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema, WakeInterval: -1})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	ids := enqueueWebhooks(t, ctx, store, tmpl, 5)
	ours, theirs := uuid.New(), uuid.New()
	mine, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: ours, Methods: []string{string(notifications.MethodWebhook)},
		Limit: 3, LeasePeriod: time.Minute, MaxAttempts: 5})
	if err != nil || len(mine) != 3 || mine[0].ID != ids[0] || mine[1].ID != ids[1] || mine[2].ID != ids[2] {
		t.Fatalf("leased %+v, %v; want the first three messages", mine, err)
	}
	// The leases of ids[1] and ids[2] expire (as if their notifier had stopped).
	if _, err := pool.Exec(ctx, "UPDATE "+pgx.Identifier{schema}.Sanitize()+".messages SET leased_until = now() - interval '1 second' WHERE id = ANY($1::text[]::uuid[])",
		[]string{ids[1].String(), ids[2].String()}); err != nil {
		t.Fatal(err)
	}
	cancelSQL := previousStatement(t, "cancel", schema)
	previousCancel := func(id uuid.UUID) int {
		t.Helper()
		var before *string
		var n int
		if err := pool.QueryRow(ctx, cancelSQL, nil, id).Scan(&before, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if previousCancel(ids[0]) != 0 {
		t.Fatalf("the previous version's cancellation changed a message being delivered")
	}
	if previousCancel(ids[2]) != 1 {
		t.Fatalf("the previous version's cancellation left alone a message whose lease had expired")
	}

	got, err := previousLease(ctx, pool, previousStatement(t, "lease", schema), theirs, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok1 := got[ids[1]]; len(got) != 3 || !ok1 || got[ids[3]] != 1 || got[ids[4]] != 1 {
		t.Fatalf("the previous version's lease took %v; want the expired lease and the two pending messages, not %s (leased in place) nor %s (canceled)",
			got, ids[0], ids[2])
	}
	if m, err := store.Message(ctx, ids[0]); err != nil || m.Status != notifications.StatusLeased || m.LeasedBy != ours {
		t.Fatalf("message leased in place after the previous version's lease: %+v, %v; want leased by %s", m, err, ours)
	}
	m, err := store.Message(ctx, ids[1])
	if err != nil || m.Status != notifications.StatusLeased || m.LeasedBy != theirs || m.AttemptCount != 2 || !m.UpdatedAt.After(mine[1].LeasedAt) {
		t.Fatalf("expired lease in place after the previous version leased it: %+v, %v; want leased by %s, attempt 2, updated at its lease", m, err, theirs)
	}

	if n, err := store.MarkSent(ctx, ours, []driver.SentResult{{ID: ids[0], AttemptCount: mine[0].AttemptCount}}); err != nil || n != 1 {
		t.Fatalf("our result for the message leased in place: %d written, %v", n, err)
	}
	var theirsSent int
	if err := pool.QueryRow(ctx, previousStatement(t, "mark_sent", schema), nil, theirs,
		[]string{ids[1].String()}, []int32{2}, []int64{1000}).Scan(&theirsSent); err != nil || theirsSent != 1 {
		t.Fatalf("the previous version's result for the expired lease it took: %d written, %v", theirsSent, err)
	}
	if n, err := store.MarkSent(ctx, ours, []driver.SentResult{{ID: ids[1], AttemptCount: mine[1].AttemptCount}}); err != nil || n != 0 {
		t.Fatalf("our late result for the lease that expired and was taken: %d written, %v; want none", n, err)
	}
	if n, err := store.MarkFailed(ctx, ours, []driver.FailedResult{{ID: ids[2], AttemptCount: mine[2].AttemptCount,
		Status: string(notifications.StatusTemporaryFailure), Reason: "late", RetryDelay: time.Second}}); err != nil || n != 0 {
		t.Fatalf("our late result for the lease that expired and was canceled: %d written, %v; want none", n, err)
	}
	for _, id := range ids[:2] {
		m, err := store.Message(ctx, id)
		if err != nil || m.Status != notifications.StatusSent || !m.UpdatedAt.Equal(m.SentAt) {
			t.Fatalf("message %s: %+v, %v; want sent, updated at its result", id, m, err)
		}
	}
	if m, err := store.Message(ctx, ids[2]); err != nil || m.Status != notifications.StatusCanceled || m.LeasedBy != uuid.Nil {
		t.Fatalf("message canceled after its lease expired: %+v, %v; want canceled, leased by nobody", m, err)
	}

	// The previous version's purge, on a schema without the indexes it read, deletes the
	// finished messages (two sent, one canceled) and leaves the two it is delivering.
	var locked bool
	var purged int
	if err := pool.QueryRow(ctx, previousStatement(t, "purge", schema), time.Now().Add(time.Hour), time.Minute.Microseconds(),
		"notifications.purge."+schema, 1000).Scan(&locked, &purged); err != nil || !locked || purged != 3 {
		t.Fatalf("the previous version's purge: lock %v, %d deleted, %v; want 3", locked, purged, err)
	}
	for _, id := range ids[3:] {
		if m, err := store.Message(ctx, id); err != nil || m.Status != notifications.StatusLeased {
			t.Fatalf("message %s after the previous version's purge: %+v, %v; want leased", id, m, err)
		}
	}
}

// TestUpgradeWhilePreviousVersionRuns: the rollout of the lease in place. Two replicas of
// the previous version (its own lease and result statements, from testdata) drain a
// backlog on schema version 8 while the schema is migrated to the current one under them,
// then keep draining beside a Manager of this version: every message is delivered once,
// and the previous version's leases wait at most a bounded time for the migration's
// locks.
func TestUpgradeWhilePreviousVersionRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	if !pgtest.Long() {
		t.Skip("long test: runs in the default exec mode only")
	}
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const previous = 8
	if err := pgstore.MigrateTo(ctx, pool, previous, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	// Stored by the previous version's enqueue (this version's needs the dedupe_keys
	// table of 0012), each message with a dedupe key, as its enqueuer gave them.
	const total = 10_000
	var ids []uuid.UUID
	enqueueSQL := previousStatement(t, "enqueue", schema)
	for b := range total / 1000 {
		msgs := keyedMessages(tmpl, fmt.Sprintf("batch %d", b), 1000)
		for i := range msgs {
			msgs[i].Method = string(notifications.MethodWebhook)
			ids = append(ids, msgs[i].ID)
		}
		if n, err := previousEnqueue(ctx, pool, enqueueSQL, msgs); err != nil || n != len(msgs) {
			t.Fatalf("the previous version's enqueue stored %d of %d: %v", n, len(msgs), err)
		}
	}

	// The previous version's replicas: lease 50, deliver, write the results.
	leaseSQL, markSentSQL := previousStatement(t, "lease", schema), previousStatement(t, "mark_sent", schema)
	var (
		mu         sync.Mutex
		delivered  = map[uuid.UUID]int{}
		worstLease atomic.Int64
		oldErr     error
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	for range 2 {
		notifier := uuid.New()
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				leased, err := previousLease(ctx, pool, leaseSQL, notifier, 50)
				if d := int64(time.Since(start)); d > worstLease.Load() {
					worstLease.Store(d)
				}
				if err == nil && len(leased) > 0 {
					var sent []string
					var attempts []int32
					var took []int64
					mu.Lock()
					for id, a := range leased {
						delivered[id]++
						sent, attempts, took = append(sent, id.String()), append(attempts, a), append(took, 1000)
					}
					mu.Unlock()
					var n int
					err = pool.QueryRow(ctx, markSentSQL, nil, notifier, sent, attempts, took).Scan(&n)
					if err == nil && n != len(sent) {
						err = xerrors.Errorf("the previous version's result write changed %d of %d messages", n, len(sent))
					}
				}
				if err != nil {
					mu.Lock()
					oldErr = err
					mu.Unlock()
					return
				}
			}
		})
	}
	waitDelivered := func(n int) {
		t.Helper()
		for {
			mu.Lock()
			got, err := len(delivered), oldErr
			mu.Unlock()
			if err != nil {
				t.Fatalf("replica of the previous version: %v", err)
			}
			if got >= n {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d of %d messages delivered by the previous version's replicas", got, n)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	waitDelivered(1000)
	worstLease.Store(0)
	start := time.Now()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatalf("migrate under the previous version's replicas: %v", err)
	}
	took, leaseDuring := time.Since(start), time.Duration(worstLease.Load())

	h := notificationstest.NewRecordingHandler(nil)
	cfg := notifications.DefaultConfig()
	cfg.LeaseCount = 50
	cfg.StoreSyncInterval = 20 * time.Millisecond
	cfg.FetchInterval = 50 * time.Millisecond
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Run(ctx)
	for {
		counts, err := store.CountByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[notifications.StatusSent] == total {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("statuses %v: want all %d sent", counts, total)
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if oldErr != nil {
		t.Fatalf("replica of the previous version: %v", oldErr)
	}
	byNew := h.Deliveries()
	for _, d := range byNew {
		delivered[d.MsgID]++
	}
	for _, id := range ids {
		if delivered[id] != 1 {
			t.Errorf("message %s delivered %d times", id, delivered[id])
		}
	}
	// The migration filled the dedupe keys of the messages they stored before it.
	if got := checkDedupeKeys(t, ctx, pool, schema); got != total {
		t.Fatalf("%d dedupe keys for the %d messages stored before the migration", got, total)
	}
	msg := fmt.Sprintf("migration %d -> %d took %s under two replicas of the previous version; their worst lease during it took %s; "+
		"%d messages delivered by them, %d by a Manager of this version",
		previous, pgstore.SchemaVersion(), took.Round(time.Millisecond), leaseDuring.Round(time.Microsecond), total-len(byNew), len(byNew))
	t.Log(msg)
	if leaseDuring > time.Second {
		t.Fatalf("%s; want their leases under 1s", msg)
	}
}
