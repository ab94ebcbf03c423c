package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/notifykit/notifications"
)

// txClients are the client counts of the transactional enqueue workload.
var txClients = []int{1, 8, 32}

// txEnqueue: each client runs transactions that insert a row of the host's own table and
// enqueue one notification in the same transaction — ours through
// enq.SendAtomicTx followed by store.Wake after commit (the documented
// way), River's through InsertTx — for txDur per client count, alternating ours and River.
func (b *bench) txEnqueue(ctx context.Context) error {
	cfg, err := pgxpool.ParseConfig(b.url)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(slices.Max(txClients) + 8)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	_, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return err
	}
	defer drop()
	store := storeOn(pool, schema) // the migrated schema, through the larger pool
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		return err
	}
	oursTable := pgx.Identifier{schema, "host_orders"}.Sanitize()
	client, riverDrop, err := b.riverClientOn(ctx, pool, riverDefault, &noopWorker{}) // never started: insert only
	if err != nil {
		return err
	}
	defer riverDrop()
	riverTable := pgx.Identifier{client.Schema(), "host_orders"}.Sanitize()
	for _, t := range []string{oursTable, riverTable} {
		if _, err := pool.Exec(ctx, "CREATE TABLE "+t+" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL)"); err != nil {
			return err
		}
	}
	ours := func(ctx context.Context) error {
		id := uuid.New()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO "+oursTable+" (note) VALUES ($1)", "order"); err != nil {
				return err
			}
			_, err := enq.SendAtomicTx(ctx, tx, notifications.EnqueueRequest{
				TemplateID: benchTemplate.ID, UserID: id,
				Recipient: &notifications.Recipient{UserID: id, Email: "u@example.com", Name: "U"},
				Labels:    map[string]string{"build": "1"},
			})
			return err
		})
		if err == nil {
			store.Wake()
		}
		return err
	}
	theirs := func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO "+riverTable+" (note) VALUES ($1)", "order"); err != nil {
				return err
			}
			_, err := client.InsertTx(ctx, tx, noopArgs{Build: 1}, nil)
			return err
		})
	}
	for _, c := range txClients {
		for _, sys := range []struct {
			name string
			fn   func(context.Context) error
		}{{"ours", ours}, {"river", theirs}} {
			if err := b.checkpoint(ctx); err != nil {
				return err
			}
			before := b.startSample(ctx)
			rate, p50, err := runClients(ctx, c, b.o.txDur, sys.fn)
			if err != nil {
				return fmt.Errorf("%s, %d clients: %w", sys.name, c, err)
			}
			cost := b.endSample(ctx, before, int(rate*b.o.txDur.Seconds()))
			b.record(fmt.Sprintf("txenq %s %d clients tx/s", sys.name, c), rate)
			b.record(fmt.Sprintf("txenq %s %d clients p50 ms", sys.name, c), p50)
			// CPU per transaction, in µs (cost is seconds per 10,000).
			b.record(fmt.Sprintf("txenq %s %d clients go cpu µs/tx", sys.name, c), cost.goPer10k*100)
			b.record(fmt.Sprintf("txenq %s %d clients postgres cpu µs/tx", sys.name, c), cost.pgPer10k*100)
			if cost.walOK {
				b.record(fmt.Sprintf("txenq %s %d clients wal bytes/tx", sys.name, c), cost.walPer)
			}
		}
	}
	return nil
}

// runClients runs fn in a loop on clients goroutines for d and returns transactions per
// second and the median transaction time in milliseconds.
func runClients(ctx context.Context, clients int, d time.Duration, fn func(context.Context) error) (float64, float64, error) {
	var mu sync.Mutex
	var took []time.Duration
	start := time.Now()
	end := start.Add(d)
	g, gctx := errgroup.WithContext(ctx)
	for range clients {
		g.Go(func() error {
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := fn(gctx); err != nil {
					return err
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			took = append(took, mine...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(start)
	slices.Sort(took)
	return float64(len(took)) / elapsed.Seconds(), float64(took[len(took)/2].Microseconds()) / 1000, nil
}
