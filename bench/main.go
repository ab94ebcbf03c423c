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
	rssDrain   int // messages drained while RSS is measured
	only       string
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "small sizes, one round: under a minute")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per workload (medians are reported)")
	flag.StringVar(&o.only, "only", "", "comma-separated workloads to run (e2e,raw,latency,enqueue,memstore,rss,scale)")
	rssChild := flag.String("rss-child", "", "internal: drain a prepared schema and exit (RSS measurement)")
	rssChildN := flag.Int("rss-child-n", 0, "internal: how many messages the RSS child drains")
	flag.Parse()
	o.n, o.latencyN, o.latencyGap, o.singleN = 100000, 200, 50*time.Millisecond, 2000
	o.rssSmall, o.rssLarge, o.rssDrain = 100000, 1000000, 50000
	if *quick {
		o.n, o.rounds, o.latencyN, o.singleN = 20000, 1, 40, 500
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
}

func (b *bench) record(name string, v float64) {
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
	for round := 1; round <= b.o.rounds; round++ {
		fmt.Printf("round %d\n", round)
		steps := []struct {
			name string
			fn   func(context.Context) error
		}{
			{"e2e", b.e2e}, {"raw", b.raw}, {"enqueue", b.enqueue}, {"memstore", b.memstoreDrain}, {"scale", b.scale}, {"latency", b.latency},
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
	b.report()
	return nil
}

func (b *bench) report() {
	fmt.Println()
	fmt.Printf("medians over %d rounds\n", b.o.rounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tmedian\tall rounds")
	for _, name := range b.order {
		var all []string
		for _, v := range b.results[name] {
			all = append(all, fmt.Sprintf("%.2f", v))
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\n", name, b.median(name), strings.Join(all, " "))
	}
	tw.Flush()

	ratio := func(a, c string) float64 {
		if b.median(c) == 0 {
			return 0
		}
		return b.median(a) / b.median(c)
	}
	fmt.Println()
	var lines []string
	add := func(name string, v float64) {
		if v != 0 {
			lines = append(lines, fmt.Sprintf("RESULT %s %.3f", name, v))
		}
	}
	add("e2e_ours_msgs_per_s", b.median("e2e ours msgs/s"))
	add("e2e_river_default_msgs_per_s", b.median("e2e river default msgs/s"))
	add("e2e_river_best_msgs_per_s", b.median("e2e river best msgs/s"))
	add("e2e_raw_msgs_per_s", b.median("raw pgx msgs/s"))
	add("e2e_vs_river", ratio("e2e ours msgs/s", "e2e river best msgs/s"))
	add("e2e_vs_river_default", ratio("e2e ours msgs/s", "e2e river default msgs/s"))
	add("e2e_vs_raw", ratio("e2e ours msgs/s", "raw pgx msgs/s"))
	add("latency_p50_ms", b.median("latency ours p50 ms"))
	add("latency_p90_ms", b.median("latency ours p90 ms"))
	add("latency_p99_ms", b.median("latency ours p99 ms"))
	add("latency_river_default_p50_ms", b.median("latency river default p50 ms"))
	add("latency_river_10ms_p50_ms", b.median("latency river 10ms p50 ms"))
	add("enqueue_batch_ours_msgs_per_s", b.median("enqueue batch ours msgs/s"))
	add("enqueue_batch_river_msgs_per_s", b.median("enqueue batch river msgs/s"))
	add("enqueue_batch_vs_river", ratio("enqueue batch ours msgs/s", "enqueue batch river msgs/s"))
	add("enqueue_single_ours_p50_us", b.median("enqueue single ours p50 µs"))
	add("enqueue_single_river_p50_us", b.median("enqueue single river p50 µs"))
	add("memstore_drain_msgs_per_s", b.median("memstore drain msgs/s"))
	add("cpu_go_s_per_10k", b.median("cost go cpu s/10k"))
	add("cpu_postgres_s_per_10k", b.median("cost postgres cpu s/10k"))
	add("rss_small_backlog_mb", b.median("rss small backlog MB"))
	add("rss_large_backlog_mb", b.median("rss large backlog MB"))
	add("rss_large_vs_small", ratio("rss large backlog MB", "rss small backlog MB"))
	add("scale_1_msgs_per_s", b.median("scale 1 manager msgs/s"))
	add("scale_2_msgs_per_s", b.median("scale 2 managers msgs/s"))
	add("scale_4_msgs_per_s", b.median("scale 4 managers msgs/s"))
	for _, l := range lines {
		fmt.Println(l)
	}
}
