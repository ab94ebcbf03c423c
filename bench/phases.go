package main

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// phaseTracer sums, by kind of statement, the client-side time of the statements a pool
// runs (from sending one to having its answer): where a batch enqueue's time goes. The
// time outside the batch's own statements is the Go side's (building the messages;
// pgx encodes a COPY's rows while it sends them, inside the COPY's time).
type phaseTracer struct {
	mu   sync.Mutex
	sums map[string]time.Duration
}

type phaseKey struct{}

type phaseStart struct {
	phase string
	at    time.Time
}

func newPhaseTracer() *phaseTracer { return &phaseTracer{sums: map[string]time.Duration{}} }

// phaseOf names the statement: the transaction's begin and commit (with the settings
// statement pgstore runs after BEGIN), the enqueue's check, anything else ("other": the
// wake-ups the store sends from another connection while the next batch runs, which is
// why the Go side is the time outside the named phases, not outside every statement).
func phaseOf(sql string) string {
	s := strings.ToLower(strings.TrimSpace(sql))
	switch {
	case strings.HasPrefix(s, "begin"), strings.HasPrefix(s, "commit"), strings.HasPrefix(s, "select set_config('jit'"):
		return "begin+commit"
	case strings.Contains(s, "with input as"):
		return "check"
	}
	return "other"
}

func (t *phaseTracer) start(ctx context.Context, phase string) context.Context {
	return context.WithValue(ctx, phaseKey{}, phaseStart{phase, time.Now()})
}

func (t *phaseTracer) end(ctx context.Context) {
	s, ok := ctx.Value(phaseKey{}).(phaseStart)
	if !ok {
		return
	}
	took := time.Since(s.at)
	t.mu.Lock()
	t.sums[s.phase] += took
	t.mu.Unlock()
}

func (t *phaseTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, phaseOf(d.SQL))
}

func (t *phaseTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	t.end(ctx)
}

func (t *phaseTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	phase := "copy " + d.TableName[len(d.TableName)-1]
	return t.start(ctx, phase)
}

func (t *phaseTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	t.end(ctx)
}

// took returns the time summed for phase.
func (t *phaseTracer) took(phase string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sums[phase]
}
