package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// rawWorkers loops lease rawBatch rows each and complete them (BENCH_RAW_WORKERS and
// BENCH_RAW_BATCH override them). Tuned on this machine: see BENCHMARKS.md.
var rawWorkers, rawBatch = envInt("BENCH_RAW_WORKERS", 2), envInt("BENCH_RAW_BATCH", 1000)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rawDrain is the raw limit: on a table of the same shape as ours (pgstore's own
// migration), loops that lease rawBatch pending rows with one FOR UPDATE SKIP LOCKED
// statement (committed asynchronously, updating by id = ANY, as pgstore does) and mark
// them sent with one UPDATE ... = ANY, with no library around them.
func (b *bench) rawDrain(ctx context.Context) (float64, error) {
	if err := b.checkpoint(ctx); err != nil {
		return 0, err
	}
	store, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return 0, err
	}
	defer drop()
	if _, err := enqueueBatches(ctx, store, b.o.n); err != nil {
		return 0, err
	}
	if err := b.analyze(ctx, schema, "messages"); err != nil {
		return 0, err
	}
	s := pgx.Identifier{schema}.Sanitize()
	// A lease in place, as pgstore's: the row keeps its status and gets leased_by,
	// leased_until and leased_at, which no index reads (a HOT update). It returns what a
	// delivery needs (template, recipient, payload), not only the IDs.
	lease := `WITH c AS (SELECT id FROM ` + s + `.messages WHERE status = 'pending' AND method = '` + string(benchMethod) + `' AND (leased_by IS NULL OR leased_until <= now())
	ORDER BY seq LIMIT ` + strconv.Itoa(rawBatch) + ` FOR UPDATE SKIP LOCKED),
async AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE ` + s + `.messages m SET leased_by = '00000000-0000-4000-8000-000000000001', leased_until = now() + interval '2 minutes',
	leased_at = now(), attempt_count = m.attempt_count + 1
WHERE m.id = ANY(ARRAY(SELECT id FROM c)) AND EXISTS (SELECT 1 FROM async) RETURNING m.id, m.template_id, m.user_id, m.payload::text`
	complete := `UPDATE ` + s + `.messages SET status = 'sent', sent_at = now(), updated_at = now(), leased_by = NULL, leased_until = NULL, leased_at = NULL
WHERE id = ANY($1)`
	var mu sync.Mutex
	done := 0
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for range rawWorkers {
		g.Go(func() error {
			for {
				rows, err := b.pool.Query(gctx, lease)
				if err != nil {
					return err
				}
				// What a delivery needs: the message, its template and recipient, and
				// its payload.
				var ids []uuid.UUID
				var id, tmpl, user uuid.UUID
				var payload string
				if _, err := pgx.ForEachRow(rows, []any{&id, &tmpl, &user, &payload}, func() error {
					ids = append(ids, id)
					return nil
				}); err != nil {
					return err
				}
				if len(ids) == 0 {
					return nil
				}
				if _, err := b.pool.Exec(gctx, complete, ids); err != nil {
					return err
				}
				mu.Lock()
				done += len(ids)
				mu.Unlock()
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	if done != b.o.n {
		return 0, fmt.Errorf("raw loop completed %d of %d", done, b.o.n)
	}
	return float64(b.o.n) / elapsed.Seconds(), nil
}
