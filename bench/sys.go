package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/pgstore"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// cpuSample is CPU time used so far by this process and by every postgres process.
type cpuSample struct{ self, postgres time.Duration }

type cpuCost struct{ goPer10k, pgPer10k float64 }

func sampleCPU() cpuSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpuSample{self: self, postgres: postgresCPU()}
}

func (s cpuSample) since(before cpuSample, messages int) cpuCost {
	per := 10000 / float64(messages)
	return cpuCost{goPer10k: (s.self - before.self).Seconds() * per, pgPer10k: (s.postgres - before.postgres).Seconds() * per}
}

// postgresCPU sums user and system time of every process named postgres (the local
// server: make bench runs one on this machine). Clock ticks are 1/100 s on Linux.
func postgresCPU() time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < 0 || string(b[open+1:closing]) != "postgres" {
			continue
		}
		fields := strings.Fields(string(b[closing+2:]))
		if len(fields) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		s, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// rss measures the peak RSS of a process that drains rssDrain messages from a backlog of
// rssSmall and then of rssLarge messages.
func (b *bench) rss(ctx context.Context) error {
	fmt.Println("rss")
	for round := 0; round < b.o.rounds; round++ {
		for _, c := range []struct {
			name    string
			backlog int
		}{{"rss small backlog MB", b.o.rssSmall}, {"rss large backlog MB", b.o.rssLarge}} {
			mb, err := b.rssOnce(ctx, c.backlog)
			if err != nil {
				return err
			}
			b.record(c.name, mb)
		}
	}
	return nil
}

func (b *bench) rssOnce(ctx context.Context, backlog int) (float64, error) {
	_, schema, drop, err := b.oursStore(ctx)
	if err != nil {
		return 0, err
	}
	defer drop()
	payload, _ := json.Marshal(notifications.MessagePayload{
		Version: notifications.PayloadVersion, NotificationName: benchTemplate.Name, NotificationTemplateID: benchTemplate.ID.String(),
		UserEmail: "u@example.com", UserName: "U", Labels: map[string]string{"build": "1"},
	})
	s := pgx.Identifier{schema}.Sanitize()
	if _, err := b.pool.Exec(ctx, `INSERT INTO `+s+`.messages (id, template_id, user_id, method, payload, created_at, updated_at)
SELECT gen_random_uuid(), $1, gen_random_uuid(), $2, $3::json, now(), now() FROM generate_series(1, $4)`,
		benchTemplate.ID, string(benchMethod), string(payload), backlog); err != nil {
		return 0, fmt.Errorf("insert backlog: %w", err)
	}
	if _, err := b.pool.Exec(ctx, "ANALYZE "+s+".messages"); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-rss-child", schema, "-rss-child-n", strconv.Itoa(b.o.rssDrain))
	cmd.Env = append(os.Environ(), "NOTIFICATIONS_TEST_DATABASE_URL="+b.url)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("rss child: %w", err)
	}
	// The child reports its own VmHWM: wait4's ru_maxrss would include the pages it
	// shared with this process between fork and exec.
	kb, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("rss child said %q: %w", out, err)
	}
	return kb / 1024, nil
}

// peakRSSKB reads this process's peak resident set size (VmHWM) in KiB.
func peakRSSKB() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// rssChildMain drains n messages of schema with one Manager and returns.
func rssChildMain(ctx context.Context, pool *pgxpool.Pool, schema string, n int) error {
	store := pgstore.New(pool, pgstore.WithSchema(schema))
	_, err := drain(ctx, store, 1, n)
	if err != nil && !strings.HasPrefix(err.Error(), "sent ") { // the rest of the backlog stays
		return err
	}
	kb, err := peakRSSKB()
	if err != nil {
		return err
	}
	fmt.Println(kb)
	return nil
}
