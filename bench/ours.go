package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// oursConfig is the Manager configuration used for every drain.
func oursConfig() notifications.Config {
	cfg := benchkit.BenchConfig()
	if v, err := strconv.Atoi(os.Getenv("BENCH_LEASE_COUNT")); err == nil {
		cfg.LeaseCount = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_SYNC_BUFFER")); err == nil {
		cfg.StoreSyncBufferSize = v
	}
	if v, err := time.ParseDuration(os.Getenv("BENCH_SYNC_INTERVAL")); err == nil {
		cfg.StoreSyncInterval = v
	}
	return cfg
}

// benchMethod is the method every benchmark message is delivered by.
const benchMethod = notifications.MethodWebhook

var benchTemplate = notifications.Template{
	ID: uuid.MustParse("b0000000-0000-4000-8000-000000000001"), Name: "bench",
	TitleTemplate: "Hi {{.UserName}}", BodyTemplate: "Your build **{{.Labels.build}}** passed.", EnabledByDefault: true,
	Methods: []notifications.Method{benchMethod},
}

var successHandler = notifications.HandlerFunc(func(notifications.MessagePayload, string, string, template.FuncMap) (notifications.DeliveryFunc, error) {
	return func(context.Context, uuid.UUID) (bool, error) { return false, nil }, nil
})

func (b *bench) schema(ctx context.Context, prefix string) (string, func(), error) {
	name := prefix + "_" + uuid.NewString()[:8]
	drop := func() {
		_, _ = b.pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	}
	if _, err := b.pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	return name, drop, nil
}

// oursStore migrates a fresh schema and registers the template.
func (b *bench) oursStore(ctx context.Context) (*pgstore.Store, string, func(), error) {
	schema, drop, err := b.schema(ctx, "ours")
	if err != nil {
		return nil, "", nil, err
	}
	if err := pgstore.Migrate(ctx, b.pool, pgstore.Config{Schema: schema}); err != nil {
		drop()
		return nil, "", nil, err
	}
	store := pgstore.New(b.pool, pgstore.Config{Schema: schema})
	if err := notifications.NewRegistry(nil).Register(ctx, store, benchTemplate); err != nil {
		drop()
		return nil, "", nil, err
	}
	return store, schema, drop, nil
}

// checkpointAt says when a drain runs a CHECKPOINT. Durable settings write a page whole
// the first time it changes after a checkpoint begins (full_page_writes), and a
// checkpoint starts whenever the WAL since the last one reaches about half of
// max_wal_size, which rounds of 100,000 messages do every round or two: without a
// CHECKPOINT of its own, a drain pays those full-page images or not by where the
// previous rounds left the WAL.
type checkpointAt int

const (
	// beforeBacklog: before the backlog is stored. The drain then changes pages that were
	// already written since the checkpoint, as a live queue's messages are delivered
	// seconds after they are stored, unless its own round's WAL starts another checkpoint.
	beforeBacklog checkpointAt = iota
	// beforeDrain: between storing the backlog and draining it, so that every page the
	// drain changes is written whole once: a backlog older than the checkpoint interval,
	// such as the one a receiver's outage leaves.
	beforeDrain
)

// checkpoint runs a CHECKPOINT (the bench connects as a superuser).
func (b *bench) checkpoint(ctx context.Context) error {
	if _, err := b.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// checkpointIf runs a CHECKPOINT if a drain that checkpoints at is at step now.
func (b *bench) checkpointIf(ctx context.Context, at, now checkpointAt) error {
	if at != now {
		return nil
	}
	return b.checkpoint(ctx)
}

// analyze updates the planner's statistics of a table after a backlog was inserted, as
// autovacuum does within a minute or so: every drain starts from a steady state instead of
// a table the planner has never seen.
func (b *bench) analyze(ctx context.Context, schema, table string) error {
	_, err := b.pool.Exec(ctx, "ANALYZE "+pgx.Identifier{schema, table}.Sanitize())
	return err
}

// storeOn is a store on an existing schema through pool.
func storeOn(pool *pgxpool.Pool, schema string) *pgstore.Store {
	return pgstore.New(pool, pgstore.Config{Schema: schema})
}

func requests(n int) []notifications.EnqueueRequest {
	reqs := make([]notifications.EnqueueRequest, n)
	for i := range reqs {
		id := uuid.New()
		reqs[i] = notifications.EnqueueRequest{
			TemplateID: benchTemplate.ID, UserID: id,
			Recipient: &notifications.Recipient{UserID: id, Email: "u@example.com", Name: "U"},
			Labels:    map[string]string{"build": fmt.Sprint(i)},
		}
	}
	return reqs
}

// enqueueBatches enqueues n messages in batches of 1,000 and returns the time it took.
func enqueueBatches(ctx context.Context, store notifications.Store, n int) (time.Duration, error) {
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		return 0, err
	}
	reqs := requests(n)
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		if _, err := enq.SendAtomic(ctx, reqs[i:min(i+1000, n)]...); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// drain runs managers Managers on store until n results are written; it returns the time
// from Run to the last write.
func drain(ctx context.Context, store notifications.Store, managers, n int) (time.Duration, error) {
	watched := notificationstest.WatchStore(store)
	cfg := oursConfig()
	var ms []*notifications.Manager
	for range managers {
		m, err := notifications.NewManager(watched, map[notifications.Method]notifications.Handler{benchMethod: successHandler}, cfg)
		if err != nil {
			return 0, err
		}
		ms = append(ms, m)
	}
	start := time.Now()
	for _, m := range ms {
		m.Run(ctx)
	}
	if err := watched.WaitForResults(ctx, n); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	for _, m := range ms {
		if err := m.Stop(ctx); err != nil {
			return 0, err
		}
	}
	counts, err := store.CountByStatus(ctx)
	if err != nil {
		return 0, err
	}
	if counts[notifications.StatusSent] != n {
		return 0, fmt.Errorf("sent %d of %d", counts[notifications.StatusSent], n)
	}
	return elapsed, nil
}

func (b *bench) oursDrain(ctx context.Context, managers int, at checkpointAt) (float64, cpuCost, error) {
	if err := b.checkpointIf(ctx, at, beforeBacklog); err != nil {
		return 0, cpuCost{}, err
	}
	store, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return 0, cpuCost{}, err
	}
	defer drop()
	if _, err := enqueueBatches(ctx, store, b.o.n); err != nil {
		return 0, cpuCost{}, err
	}
	if err := b.analyze(ctx, schema, "messages"); err != nil {
		return 0, cpuCost{}, err
	}
	if err := b.checkpointIf(ctx, at, beforeDrain); err != nil {
		return 0, cpuCost{}, err
	}
	stop, err := startProfile("BENCH_CPUPROFILE")
	if err != nil {
		return 0, cpuCost{}, err
	}
	defer stop()
	before := b.startSample(ctx)
	elapsed, err := drain(ctx, store, managers, b.o.n)
	if err != nil {
		return 0, cpuCost{}, err
	}
	return float64(b.o.n) / elapsed.Seconds(), b.endSample(ctx, before, b.o.n), nil
}

// startProfile starts a CPU profile into the file the environment variable names, if it
// is set, and returns the function that stops it.
func startProfile(env string) (func(), error) {
	path := os.Getenv(env)
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func (b *bench) memstoreDrain(ctx context.Context) error {
	store := memstore.New(memstore.Config{})
	if err := notifications.NewRegistry(nil).Register(ctx, store, benchTemplate); err != nil {
		return err
	}
	if _, err := enqueueBatches(ctx, store, b.o.n); err != nil {
		return err
	}
	stop, err := startProfile("BENCH_MEMSTORE_CPUPROFILE")
	if err != nil {
		return err
	}
	elapsed, err := drain(ctx, store, 1, b.o.n)
	stop()
	if err != nil {
		return err
	}
	b.record("memstore drain msgs/s", float64(b.o.n)/elapsed.Seconds())
	return nil
}

func (b *bench) scale(ctx context.Context) error {
	for _, k := range []int{1, 2, 4} {
		rate, _, err := b.oursDrain(ctx, k, beforeBacklog)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("scale %d managers msgs/s", k)
		if k == 1 {
			name = "scale 1 manager msgs/s"
		}
		b.record(name, rate)
	}
	return nil
}

// oursEnqueue: single enqueues (per-call latency) and batch enqueue throughput.
func (b *bench) oursEnqueue(ctx context.Context) error {
	store, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return err
	}
	defer drop()
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		return err
	}
	reqs := requests(b.o.singleN)
	took := make([]time.Duration, 0, len(reqs))
	start := time.Now()
	for _, r := range reqs {
		t0 := time.Now()
		if _, err := enq.SendAtomic(ctx, r); err != nil {
			return err
		}
		took = append(took, time.Since(t0))
	}
	total := time.Since(start)
	slices.Sort(took)
	b.record("enqueue single ours p50 µs", float64(took[len(took)/2].Microseconds()))
	b.record("enqueue single ours msgs/s", float64(len(reqs))/total.Seconds())

	// The batches go through a pool of their own whose tracer times each kind of
	// statement: where the time goes.
	cfg, err := pgxpool.ParseConfig(b.url)
	if err != nil {
		return err
	}
	tracer := newPhaseTracer()
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	elapsed, err := enqueueBatches(ctx, pgstore.New(pool, pgstore.Config{Schema: schema}), b.o.n)
	if err != nil {
		return err
	}
	b.record("enqueue batch ours msgs/s", float64(b.o.n)/elapsed.Seconds())
	perK := func(d time.Duration) float64 { return d.Seconds() * 1000 / (float64(b.o.n) / 1000) }
	// The batches' own statements; the wake-ups ("other") overlap the next batch.
	var inStatements time.Duration
	for _, p := range []string{"check", "copy messages", "copy dedupe_keys", "begin+commit"} {
		took := tracer.took(p)
		inStatements += took
		b.record("enqueue batch ours ms/1k: "+p, perK(took))
	}
	b.record("enqueue batch ours ms/1k: go", perK(elapsed-inStatements))
	return nil
}

// oursLatency: an idle Manager; single enqueues spaced apart; time from the start of the
// enqueue call (INSERT and commit included) to the handler being called.
func (b *bench) oursLatency(ctx context.Context) ([]time.Duration, error) {
	store, _, drop, err := b.oursStore(ctx)
	if err != nil {
		return nil, err
	}
	defer drop()
	called := make(chan uuid.UUID, 16)
	var mu sync.Mutex
	at := map[uuid.UUID]time.Time{}
	h := notifications.HandlerFunc(func(notifications.MessagePayload, string, string, template.FuncMap) (notifications.DeliveryFunc, error) {
		return func(_ context.Context, id uuid.UUID) (bool, error) {
			now := time.Now()
			mu.Lock()
			at[id] = now
			mu.Unlock()
			called <- id
			return false, nil
		}, nil
	})
	cfg := oursConfig()
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{benchMethod: h}, cfg)
	if err != nil {
		return nil, err
	}
	m.Run(ctx)
	defer func() { _ = m.Stop(ctx) }()
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		return nil, err
	}
	reqs := requests(b.o.latencyN)
	out := make([]time.Duration, 0, len(reqs))
	time.Sleep(200 * time.Millisecond) // let the listener settle before the first sample
	for _, r := range reqs {
		t0 := time.Now()
		ids, err := enq.SendAtomic(ctx, r)
		if err != nil {
			return nil, err
		}
		select {
		case <-called:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("message %s not delivered within 10s", ids[0])
		}
		mu.Lock()
		out = append(out, at[ids[0]].Sub(t0))
		mu.Unlock()
		time.Sleep(b.o.latencyGap)
	}
	return out, nil
}
