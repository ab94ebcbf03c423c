package main

import (
	"bytes"
	"context"
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

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications/pgstore"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// cpuSample is CPU time used so far by this process and by every postgres process, and
// the WAL the server has written: its insert position and pg_stat_wal's count of
// full-page images (walOK: both were read).
type cpuSample struct {
	self, postgres time.Duration
	walLSN, fpi    int64
	walOK          bool
}

// cpuCost is what a workload cost per unit of work: CPU seconds per 10,000, WAL bytes and
// full-page images per one (walOK: the WAL counters were read at both ends).
type cpuCost struct {
	goPer10k, pgPer10k, walPer, fpiPer float64
	walOK                              bool
}

// statsSettle is how long a sample waits before reading pg_stat_wal. A backend adds its
// counts there when it goes idle, unless it did so less than a second before
// (PostgreSQL 15's PGSTAT_MIN_INTERVAL): then up to 10 s later. So the full-page images
// of a drain are counted approximately, the same way for every system: close for drains
// of 100,000 messages, loosely for the quick run's; the WAL position has no such delay
// and is read at once.
const statsSettle = 1500 * time.Millisecond

// startSample waits for the counters of what ran before to settle, then reads them.
func (b *bench) startSample(ctx context.Context) cpuSample {
	sleep(ctx, statsSettle)
	s := cpuSample{self: ownCPU(), postgres: postgresCPU()}
	s.walLSN, s.walOK = b.walPosition(ctx)
	if s.walOK {
		s.fpi, s.walOK = b.fullPageImages(ctx)
	}
	return s
}

// endSample reads the CPU time and the WAL position at once and the full-page images once
// they have settled, and returns the cost per unit since start. The WAL counters are
// cluster-wide, so they include whatever else the server wrote meanwhile (autovacuum
// among it).
func (b *bench) endSample(ctx context.Context, start cpuSample, units int) cpuCost {
	self, postgres := ownCPU(), postgresCPU()
	lsn, ok := b.walPosition(ctx)
	ok = ok && start.walOK
	var fpi int64
	if ok {
		sleep(ctx, statsSettle)
		fpi, ok = b.fullPageImages(ctx)
	}
	per := 1 / float64(units)
	c := cpuCost{goPer10k: (self - start.self).Seconds() * per * 10000, pgPer10k: (postgres - start.postgres).Seconds() * per * 10000}
	if ok {
		c.walPer, c.fpiPer, c.walOK = float64(lsn-start.walLSN)*per, float64(fpi-start.fpi)*per, true
	}
	return c
}

func (b *bench) walPosition(ctx context.Context) (int64, bool) {
	var lsn int64
	err := b.pool.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&lsn)
	return lsn, err == nil
}

func (b *bench) fullPageImages(ctx context.Context) (int64, bool) {
	var fpi int64
	err := b.pool.QueryRow(ctx, "SELECT wal_fpi FROM pg_stat_wal").Scan(&fpi)
	return fpi, err == nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ownCPU is the user and system time of this process.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postmasterPID is the PID of the server under test, when it runs on this machine (0:
// count every postgres process). Other clusters on the machine (tests running alongside)
// are not counted.
var postmasterPID int

// findPostmaster sets postmasterPID to the parent of this connection's backend.
func findPostmaster(ctx context.Context, pool *pgxpool.Pool) {
	var backend int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return
	}
	if _, ppid, _, _, ok := procStat(backend); ok {
		postmasterPID = ppid
	}
}

// procStat reads the name, parent and CPU ticks of a process, and the CPU ticks of its
// children that have exited and been waited for.
func procStat(pid int) (name string, ppid int, ticks, exited int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, 0, 0, false
	}
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < 0 {
		return "", 0, 0, 0, false
	}
	fields := strings.Fields(string(b[closing+2:]))
	if len(fields) < 15 {
		return "", 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	cu, _ := strconv.ParseInt(fields[13], 10, 64)
	cs, _ := strconv.ParseInt(fields[14], 10, 64)
	return string(b[open+1 : closing]), ppid, u + s, cu + cs, true
}

// postgresCPU sums user and system time of the server under test: the postmaster and its
// children (every postgres process if the postmaster is not on this machine). Clock ticks
// are 1/100 s on Linux. A backend or autovacuum worker that exits leaves its time in the
// postmaster's count of its exited children, which is added, so the sum never drops
// (without the postmaster on this machine, exited processes take their time with them).
func postgresCPU() time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total int64
	for _, p := range stats {
		pid, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p, "/proc/"), "/stat"))
		name, ppid, ticks, exited, ok := procStat(pid)
		if !ok || name != "postgres" {
			continue
		}
		if postmasterPID != 0 && pid != postmasterPID && ppid != postmasterPID {
			continue
		}
		total += ticks
		if pid == postmasterPID {
			total += exited
		}
	}
	return time.Duration(total) * 10 * time.Millisecond
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
	if err := b.insertBacklog(ctx, schema, backlog, false); err != nil {
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
	store := pgstore.New(pool, pgstore.Config{Schema: schema})
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
