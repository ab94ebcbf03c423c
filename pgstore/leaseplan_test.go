package pgstore

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/pgtest"
)

// TestLeaseCostIndependentOfBacklog: with 100,000 due retries, 100,000 expired leases in
// place (pending rows whose lease expired) and 100,000 expired leases of the previous
// version (status 'leased'), a lease of 50 reads a bounded number of buffers (the indexes are read in the order the
// lease wants, so LIMIT stops early) instead of reading and sorting every due row. The
// plans are logged; BENCHMARKS.md quotes them.
func TestLeaseCostIndependentOfBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 rows")
	}
	if !pgtest.Long() {
		t.Skipf("long test: runs in the default exec mode only (this run: %s)", os.Getenv(pgtest.EnvExecMode))
	}
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Migrate(ctx, pool, Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	s := New(pool, Config{Schema: schema})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := s.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	sch := pgx.Identifier{schema}.Sanitize()
	const rows = 100_000
	for _, status := range []string{"temporary_failure", "pending", "leased"} {
		if _, err := pool.Exec(ctx, `INSERT INTO `+sch+`.messages (id, template_id, user_id, method, status, attempt_count, payload,
			created_at, updated_at, next_retry_after, leased_until, leased_by, leased_at)
			SELECT gen_random_uuid(), $1, gen_random_uuid(), 'webhook', $2, 1, '{}', now() - interval '1 hour', now() - interval '1 hour',
				CASE WHEN $2 = 'temporary_failure' THEN now() - interval '1 minute' * random() END,
				CASE WHEN $2 <> 'temporary_failure' THEN now() - interval '1 minute' * random() END,
				CASE WHEN $2 <> 'temporary_failure' THEN gen_random_uuid() END,
				CASE WHEN $2 = 'pending' THEN now() - interval '2 minutes' END
			FROM generate_series(1, $3)`, tmpl.ID, status, rows); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE "+sch+".messages"); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var plan string
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+s.q.lease,
		nil, uuid.New(), 50, time.Minute.Microseconds(), 5, []string{"webhook"}).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var parsed []struct {
		Plan struct {
			SharedHit  int `json:"Shared Hit Blocks"`
			SharedRead int `json:"Shared Read Blocks"`
			TempRead   int `json:"Temp Read Blocks"`
			TempWrite  int `json:"Temp Written Blocks"`
		} `json:"Plan"`
		ExecutionTime float64 `json:"Execution Time"`
	}
	if err := json.Unmarshal([]byte(plan), &parsed); err != nil || len(parsed) != 1 {
		t.Fatalf("parse plan: %v", err)
	}
	p := parsed[0]
	var text strings.Builder
	rows2, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+s.q.lease, nil, uuid.New(), 50, time.Minute.Microseconds(), 5, []string{"webhook"})
	if err != nil {
		t.Fatal(err)
	}
	for rows2.Next() {
		var line string
		_ = rows2.Scan(&line)
		text.WriteString(line + "\n")
	}
	t.Logf("lease of 50 with %d due retries and %d expired leases of each kind: %.2f ms, shared buffers hit %d read %d, temp %d/%d\n%s",
		rows, rows, p.ExecutionTime, p.Plan.SharedHit, p.Plan.SharedRead, p.Plan.TempRead, p.Plan.TempWrite, text.String())
	if blocks := p.Plan.SharedHit + p.Plan.SharedRead; blocks > 3000 || p.Plan.TempWrite > 0 {
		t.Fatalf("a lease of 50 touched %d buffers and wrote %d temp blocks: its cost grows with the backlog", blocks, p.Plan.TempWrite)
	}
}
