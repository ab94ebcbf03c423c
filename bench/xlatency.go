package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
)

// crossLatency: the idle latency from the start of an enqueue in this process to the
// handler being called in another process (this binary re-executed with -latency-child),
// woken only through PostgreSQL. Samples alternate a plain Send and a transaction that
// enqueues through WithTx, commits and calls Wake. Both processes read the same wall
// clock.
func (b *bench) crossLatency(ctx context.Context) error {
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	store, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return err
	}
	defer drop()
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-latency-child", schema)
	cmd.Env = append(os.Environ(), "NOTIFICATIONS_TEST_DATABASE_URL="+b.url)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Wait() }()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		return fmt.Errorf("latency child did not start: %q %v", lines.Text(), lines.Err())
	}
	delivered := make(chan [2]string, 16)
	go func() {
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) == 2 {
				delivered <- [2]string{f[0], f[1]}
			}
		}
		close(delivered)
	}()
	var plain, inTx []time.Duration
	reqs := requests(2 * b.o.latencyN)
	for i, r := range reqs {
		t0 := time.Now()
		var ids []uuid.UUID
		if i%2 == 0 {
			ids, err = enq.SendAtomic(ctx, r)
		} else {
			err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
				ids, err = enq.SendAtomicTx(ctx, tx, r)
				return err
			})
			if err == nil {
				store.Wake()
			}
		}
		if err != nil {
			return err
		}
		select {
		case d, ok := <-delivered:
			if !ok {
				return fmt.Errorf("latency child exited")
			}
			if d[0] != ids[0].String() {
				return fmt.Errorf("latency child delivered %s, want %s", d[0], ids[0])
			}
			ns, err := strconv.ParseInt(d[1], 10, 64)
			if err != nil {
				return err
			}
			if i%2 == 0 {
				plain = append(plain, time.Unix(0, ns).Sub(t0))
			} else {
				inTx = append(inTx, time.Unix(0, ns).Sub(t0))
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("message %s not delivered by the other process within 10s", ids[0])
		}
		time.Sleep(b.o.latencyGap)
	}
	b.recordPercentiles("xlatency send", plain)
	b.recordPercentiles("xlatency tx+wake", inTx)
	return nil
}

// latencyChildMain runs a Manager on schema, prints "ready" and then "<id> <unix ns>"
// for every delivery, until its stdin closes.
func latencyChildMain(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var mu sync.Mutex
	h := notifications.HandlerFunc(func(notifications.MessagePayload, string, string, template.FuncMap) (notifications.DeliveryFunc, error) {
		return func(_ context.Context, id uuid.UUID) (bool, error) {
			now := time.Now().UnixNano()
			mu.Lock()
			fmt.Printf("%s %d\n", id, now)
			mu.Unlock()
			return false, nil
		}, nil
	})
	cfg := oursConfig()
	m, err := notifications.NewManager(storeOn(pool, schema), map[notifications.Method]notifications.Handler{benchMethod: h}, cfg)
	if err != nil {
		return err
	}
	m.Run(ctx)
	time.Sleep(200 * time.Millisecond) // let the listener settle before the first sample
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return m.Stop(ctx)
}
