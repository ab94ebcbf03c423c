package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// noopArgs is the River job: the same work as our success handler (none).
type noopArgs struct {
	Build int `json:"build"`
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	called func(jobID int64)
}

func (w *noopWorker) Work(_ context.Context, job *river.Job[noopArgs]) error {
	if w.called != nil {
		w.called(job.ID)
	}
	return nil
}

// riverSettings are the client settings compared.
type riverSettings struct {
	name          string
	maxWorkers    int
	fetchCooldown time.Duration
	fetchPoll     time.Duration
}

var (
	riverDefault = riverSettings{name: "default", maxWorkers: 100} // River's documented example setting; FetchCooldown 100ms, FetchPollInterval 1s
	riverBest    = riverSettings{name: "best", maxWorkers: 1000, fetchCooldown: time.Millisecond, fetchPoll: 50 * time.Millisecond}
	river10ms    = riverSettings{name: "10ms", maxWorkers: 100, fetchCooldown: 10 * time.Millisecond}
)

func (b *bench) riverClient(ctx context.Context, s riverSettings, worker *noopWorker) (*river.Client[pgx.Tx], func(), error) {
	return b.riverClientOn(ctx, b.pool, s, worker)
}

// riverClientOn is riverClient on another pool.
func (b *bench) riverClientOn(ctx context.Context, pool *pgxpool.Pool, s riverSettings, worker *noopWorker) (*river.Client[pgx.Tx], func(), error) {
	schema, drop, err := b.schema(ctx, "river")
	if err != nil {
		return nil, nil, err
	}
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema})
	if err != nil {
		drop()
		return nil, nil, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		drop()
		return nil, nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	client, err := river.NewClient(driver, &river.Config{
		Schema:            schema,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: s.maxWorkers}},
		Workers:           workers,
		FetchCooldown:     s.fetchCooldown,
		FetchPollInterval: s.fetchPoll,
		Logger:            discardLogger(),
	})
	if err != nil {
		drop()
		return nil, nil, err
	}
	return client, drop, nil
}

func riverInsertBatches(ctx context.Context, client *river.Client[pgx.Tx], n int) (time.Duration, error) {
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{Build: i}}
	}
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		if _, err := client.InsertManyFast(ctx, params[i:min(i+1000, n)]); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// riverDefaultDrainMax bounds the drain with River's defaults: its rate is capped near
// MaxWorkers/FetchCooldown = 1,000 jobs/s, so 100,000 jobs would take 100 s per round
// without telling anything more.
const riverDefaultDrainMax = 20000

// riverDrain inserts n jobs (not timed), starts the client and waits for n completed
// events (emitted once River has recorded the completion).
func (b *bench) riverDrain(ctx context.Context, s riverSettings, at checkpointAt) (float64, cpuCost, error) {
	n := b.o.n
	if err := b.checkpointIf(ctx, at, beforeBacklog); err != nil {
		return 0, cpuCost{}, err
	}
	if s == riverDefault {
		n = min(n, riverDefaultDrainMax)
	}
	client, drop, err := b.riverClient(ctx, s, &noopWorker{})
	if err != nil {
		return 0, cpuCost{}, err
	}
	defer drop()
	if _, err := riverInsertBatches(ctx, client, n); err != nil {
		return 0, cpuCost{}, err
	}
	if err := b.analyze(ctx, client.Schema(), "river_job"); err != nil {
		return 0, cpuCost{}, err
	}
	if err := b.checkpointIf(ctx, at, beforeDrain); err != nil {
		return 0, cpuCost{}, err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: 100000, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()
	before := b.startSample(ctx)
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, cpuCost{}, err
	}
	for done := 0; done < n; {
		select {
		case <-events:
			done++
		case <-time.After(60 * time.Second):
			return 0, cpuCost{}, fmt.Errorf("river %s: %d of %d completed after a minute without progress", s.name, done, n)
		}
	}
	elapsed := time.Since(start)
	cost := b.endSample(ctx, before, n)
	stopCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if err := client.Stop(stopCtx); err != nil {
		return 0, cpuCost{}, err
	}
	return float64(n) / elapsed.Seconds(), cost, nil
}

func (b *bench) riverEnqueue(ctx context.Context) error {
	client, drop, err := b.riverClient(ctx, riverDefault, &noopWorker{})
	if err != nil {
		return err
	}
	defer drop()
	took := make([]time.Duration, 0, b.o.singleN)
	start := time.Now()
	for i := range b.o.singleN {
		t0 := time.Now()
		if _, err := client.Insert(ctx, noopArgs{Build: i}, nil); err != nil {
			return err
		}
		took = append(took, time.Since(t0))
	}
	total := time.Since(start)
	slices.Sort(took)
	b.record("enqueue single river p50 µs", float64(took[len(took)/2].Microseconds()))
	b.record("enqueue single river msgs/s", float64(b.o.singleN)/total.Seconds())
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	elapsed, err := riverInsertBatches(ctx, client, b.o.n)
	if err != nil {
		return err
	}
	b.record("enqueue batch river msgs/s", float64(b.o.n)/elapsed.Seconds())
	return nil
}

func (b *bench) riverLatency(ctx context.Context, s riverSettings) ([]time.Duration, error) {
	var mu sync.Mutex
	at := map[int64]time.Time{}
	called := make(chan int64, 16)
	w := &noopWorker{called: func(id int64) {
		now := time.Now()
		mu.Lock()
		at[id] = now
		mu.Unlock()
		called <- id
	}}
	client, drop, err := b.riverClient(ctx, s, w)
	if err != nil {
		return nil, err
	}
	defer drop()
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		stopCtx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		_ = client.Stop(stopCtx)
	}()
	time.Sleep(200 * time.Millisecond) // let the client settle before the first sample
	out := make([]time.Duration, 0, b.o.latencyN)
	for i := range b.o.latencyN {
		t0 := time.Now()
		res, err := client.Insert(ctx, noopArgs{Build: i}, nil)
		if err != nil {
			return nil, err
		}
		select {
		case <-called:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("river job %d not worked within 10s", res.Job.ID)
		}
		mu.Lock()
		out = append(out, at[res.Job.ID].Sub(t0))
		mu.Unlock()
		time.Sleep(b.o.latencyGap)
	}
	return out, nil
}
