package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// rawWorkers is how many plain pgx loops lease and complete concurrently.
const rawWorkers = 4

// rawDrain is the raw limit: on a table of the same shape as ours (pgstore's own
// migration), loops that lease 100 pending rows with one FOR UPDATE SKIP LOCKED statement
// and mark them sent with one UPDATE ... = ANY, with no library around them.
func (b *bench) rawDrain(ctx context.Context) (float64, error) {
	store, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return 0, err
	}
	defer drop()
	if _, err := enqueueBatches(ctx, store, b.o.n); err != nil {
		return 0, err
	}
	s := pgx.Identifier{schema}.Sanitize()
	lease := `WITH c AS (SELECT id FROM ` + s + `.messages WHERE status = 'pending' ORDER BY seq LIMIT 100 FOR UPDATE SKIP LOCKED)
UPDATE ` + s + `.messages m SET status = 'leased', leased_until = now() + interval '2 minutes', attempt_count = m.attempt_count + 1, updated_at = now()
FROM c WHERE m.id = c.id RETURNING m.id`
	complete := `UPDATE ` + s + `.messages SET status = 'sent', sent_at = now(), updated_at = now(), leased_until = NULL WHERE id = ANY($1)`
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
				ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
				if err != nil {
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
