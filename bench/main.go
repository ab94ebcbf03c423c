// Command bench measures notifications against River (riverqueue/river v0.51, riverpgxv5)
// and against a plain pgx loop on one PostgreSQL, alternating the systems in every round,
// and prints medians, ratios and machine-readable RESULT lines. `make bench` and
// `make bench-quick` run it against a throw-away cluster (scripts/with-postgres.sh).
//
// It is a module of its own so that River is never a dependency of the library.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

type options struct {
	n          int // messages per drain and batch enqueue
	rounds     int
	latencyN   int // single enqueues in the latency test
	latencyGap time.Duration
	singleN    int // single enqueues in the enqueue test
	rssSmall   int // backlogs for the RSS comparison
	rssLarge   int
	rssDrain   int           // messages drained while RSS is measured
	txDur      time.Duration // how long each transactional-enqueue run lasts
	only       string
	settings   string // comma-separated server settings to run under: durable, fast
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "small sizes, one round: under a minute")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per workload (medians are reported)")
	flag.StringVar(&o.only, "only", "", "comma-separated workloads to run (e2e,aged,raw,recovery,txenq,latency,xlatency,enqueue,memstore,rss,scale)")
	flag.StringVar(&o.settings, "settings", "durable,fast", "server settings to run every workload under, in order: durable (PostgreSQL's defaults), fast (fsync, synchronous_commit, full_page_writes off)")
	rssChild := flag.String("rss-child", "", "internal: drain a prepared schema and exit (RSS measurement)")
	rssChildN := flag.Int("rss-child-n", 0, "internal: how many messages the RSS child drains")
	latencyChild := flag.String("latency-child", "", "internal: run a Manager on a prepared schema and report each delivery (cross-process latency)")
	flag.Parse()
	o.n, o.latencyN, o.latencyGap, o.singleN, o.txDur = 100000, 200, 50*time.Millisecond, 2000, 5*time.Second
	o.rssSmall, o.rssLarge, o.rssDrain = 100000, 1000000, 50000
	if *quick {
		o.n, o.rounds, o.latencyN, o.singleN, o.txDur = 20000, 1, 40, 500, 2*time.Second
		o.rssSmall, o.rssLarge, o.rssDrain = 20000, 200000, 10000
	}
	url := os.Getenv("NOTIFICATIONS_TEST_DATABASE_URL")
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if url == "" {
		fmt.Fprintln(os.Stderr, "bench: set DATABASE_URL (make bench starts a throw-away PostgreSQL)")
		os.Exit(2)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fail(err)
	}
	defer pool.Close()
	if *rssChild != "" {
		if err := rssChildMain(ctx, pool, *rssChild, *rssChildN); err != nil {
			fail(err)
		}
		return
	}
	if *latencyChild != "" {
		if err := latencyChildMain(ctx, pool, *latencyChild); err != nil {
			fail(err)
		}
		return
	}
	b := &bench{o: o, pool: pool, url: url, results: map[string][]float64{}}
	if err := b.run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

type bench struct {
	o       options
	pool    *pgxpool.Pool
	url     string
	results map[string][]float64
	order   []string
	prefix  string // "fast " while the fast settings run
}

func (b *bench) record(name string, v float64) {
	name = b.prefix + name
	if _, ok := b.results[name]; !ok {
		b.order = append(b.order, name)
	}
	b.results[name] = append(b.results[name], v)
	fmt.Printf("  %-34s %12.2f\n", name, v)
}

func (b *bench) median(name string) float64 {
	v := slices.Clone(b.results[name])
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func (b *bench) want(w string) bool {
	return b.o.only == "" || slices.Contains(strings.Split(b.o.only, ","), w)
}

func (b *bench) run(ctx context.Context) error {
	var version string
	if err := b.pool.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return err
	}
	fmt.Printf("bench: %d messages, %d rounds, PostgreSQL %s, %d CPUs, %s\n", b.o.n, b.o.rounds, version, runtime.NumCPU(), runtime.Version())
	findPostmaster(ctx, b.pool)
	var phases []settings
	for _, name := range strings.Split(b.o.settings, ",") {
		p, ok := settingsByName[name]
		if !ok {
			return fmt.Errorf("unknown -settings %q (durable, fast)", name)
		}
		phases = append(phases, p)
	}
	for _, p := range phases {
		if err := b.apply(ctx, p); err != nil {
			return err
		}
		b.prefix = p.prefix
		if err := b.runPhase(ctx); err != nil {
			return fmt.Errorf("%s settings: %w", p.name, err)
		}
	}
	for _, p := range phases {
		b.report(p)
	}
	for _, p := range phases {
		b.resultLines(p)
	}
	return nil
}

func (b *bench) runPhase(ctx context.Context) error {
	for round := 1; round <= b.o.rounds; round++ {
		fmt.Printf("round %d\n", round)
		steps := []struct {
			name string
			fn   func(context.Context) error
		}{
			{"e2e", b.e2e}, {"aged", b.aged}, {"raw", b.raw}, {"recovery", b.recovery}, {"txenq", b.txEnqueue}, {"enqueue", b.enqueue},
			{"memstore", b.memstoreDrain}, {"scale", b.scale}, {"latency", b.latency}, {"xlatency", b.crossLatency},
		}
		for _, s := range steps {
			if !b.want(s.name) {
				continue
			}
			if err := s.fn(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	if b.want("rss") {
		if err := b.rss(ctx); err != nil {
			return fmt.Errorf("rss: %w", err)
		}
	}
	return nil
}

func (b *bench) report(p settings) {
	fmt.Println()
	fmt.Printf("%s settings (%s): medians over %d rounds\n", p.name, p.describe, b.o.rounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tmedian\tall rounds")
	for _, name := range b.order {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if !ok || (p.prefix == "" && strings.HasPrefix(name, settingsByName["fast"].prefix)) {
			continue
		}
		var all []string
		for _, v := range b.results[name] {
			all = append(all, fmt.Sprintf("%.2f", v))
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\n", rest, b.median(name), strings.Join(all, " "))
	}
	tw.Flush()
}

// resultLines prints the RESULT lines of one settings phase: unprefixed for the durable
// settings, prefixed "fast_" for the fast ones.
func (b *bench) resultLines(p settings) {
	// A measure of a workload that did not run is NaN, and so is a ratio of it: no line.
	m := func(name string) float64 {
		if _, ok := b.results[p.prefix+name]; !ok {
			return math.NaN()
		}
		return b.median(p.prefix + name)
	}
	ratio := func(a, c string) float64 {
		if m(c) == 0 {
			return math.NaN()
		}
		return m(a) / m(c)
	}
	fmt.Println()
	add := func(name string, v float64) {
		if !math.IsNaN(v) {
			fmt.Printf("RESULT %s%s %.3f\n", p.result, name, v)
		}
	}
	add("e2e_ours_msgs_per_s", m("e2e ours msgs/s"))
	add("e2e_river_default_msgs_per_s", m("e2e river default msgs/s"))
	add("e2e_river_best_msgs_per_s", m("e2e river best msgs/s"))
	add("e2e_raw_msgs_per_s", m("raw pgx msgs/s"))
	add("e2e_vs_river", ratio("e2e ours msgs/s", "e2e river best msgs/s"))
	add("e2e_vs_river_default", ratio("e2e ours msgs/s", "e2e river default msgs/s"))
	add("e2e_vs_raw", ratio("e2e ours msgs/s", "raw pgx msgs/s"))
	add("aged_e2e_ours_msgs_per_s", m("aged e2e ours msgs/s"))
	add("aged_e2e_river_best_msgs_per_s", m("aged e2e river best msgs/s"))
	add("aged_e2e_vs_river", ratio("aged e2e ours msgs/s", "aged e2e river best msgs/s"))
	add("aged_wal_bytes_per_msg", m("aged cost wal bytes/msg"))
	add("aged_wal_bytes_per_msg_river", m("aged cost river wal bytes/msg"))
	add("aged_wal_fpi_per_1k_msgs", m("aged cost full-page images/1k msgs"))
	add("aged_wal_fpi_per_1k_msgs_river", m("aged cost river full-page images/1k msgs"))
	add("recovery_msgs_per_s", m("recovery due retries msgs/s"))
	add("recovery_pending_msgs_per_s", m("recovery pending msgs/s"))
	add("recovery_vs_pending", ratio("recovery due retries msgs/s", "recovery pending msgs/s"))
	for _, c := range txClients {
		add(fmt.Sprintf("txenq_ours_%d_tx_per_s", c), m(fmt.Sprintf("txenq ours %d clients tx/s", c)))
		add(fmt.Sprintf("txenq_river_%d_tx_per_s", c), m(fmt.Sprintf("txenq river %d clients tx/s", c)))
		add(fmt.Sprintf("txenq_vs_river_%d", c), ratio(fmt.Sprintf("txenq ours %d clients tx/s", c), fmt.Sprintf("txenq river %d clients tx/s", c)))
		add(fmt.Sprintf("txenq_ours_%d_p50_ms", c), m(fmt.Sprintf("txenq ours %d clients p50 ms", c)))
		add(fmt.Sprintf("txenq_river_%d_p50_ms", c), m(fmt.Sprintf("txenq river %d clients p50 ms", c)))
	}
	add("latency_p50_ms", m("latency ours p50 ms"))
	add("latency_p90_ms", m("latency ours p90 ms"))
	add("latency_p99_ms", m("latency ours p99 ms"))
	add("latency_river_default_p50_ms", m("latency river default p50 ms"))
	add("latency_river_10ms_p50_ms", m("latency river 10ms p50 ms"))
	add("xlatency_p50_ms", m("xlatency send p50 ms"))
	add("xlatency_p90_ms", m("xlatency send p90 ms"))
	add("xlatency_p99_ms", m("xlatency send p99 ms"))
	add("xlatency_tx_p50_ms", m("xlatency tx+wake p50 ms"))
	add("xlatency_tx_p99_ms", m("xlatency tx+wake p99 ms"))
	add("enqueue_batch_ours_msgs_per_s", m("enqueue batch ours msgs/s"))
	add("enqueue_batch_river_msgs_per_s", m("enqueue batch river msgs/s"))
	add("enqueue_batch_vs_river", ratio("enqueue batch ours msgs/s", "enqueue batch river msgs/s"))
	add("enqueue_single_ours_p50_us", m("enqueue single ours p50 µs"))
	add("enqueue_single_river_p50_us", m("enqueue single river p50 µs"))
	add("memstore_drain_msgs_per_s", m("memstore drain msgs/s"))
	add("cpu_go_s_per_10k", m("cost go cpu s/10k"))
	add("cpu_postgres_s_per_10k", m("cost postgres cpu s/10k"))
	add("wal_bytes_per_msg", m("cost wal bytes/msg"))
	add("wal_bytes_per_msg_river", m("cost river wal bytes/msg"))
	add("wal_fpi_per_1k_msgs", m("cost full-page images/1k msgs"))
	add("wal_fpi_per_1k_msgs_river", m("cost river full-page images/1k msgs"))
	add("rss_small_backlog_mb", m("rss small backlog MB"))
	add("rss_large_backlog_mb", m("rss large backlog MB"))
	add("rss_large_vs_small", ratio("rss large backlog MB", "rss small backlog MB"))
	add("scale_1_msgs_per_s", m("scale 1 manager msgs/s"))
	add("scale_2_msgs_per_s", m("scale 2 managers msgs/s"))
	add("scale_4_msgs_per_s", m("scale 4 managers msgs/s"))
}
