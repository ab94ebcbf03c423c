package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// settings is a set of server settings every workload runs under.
type settings struct {
	name, describe string
	prefix         string // of the measure names
	result         string // of the RESULT lines
	values         map[string]string
}

var settingsByName = map[string]settings{
	"durable": {
		name: "durable", describe: "PostgreSQL's defaults: fsync, synchronous_commit, full_page_writes on",
		values: map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
	},
	"fast": {
		name: "fast", describe: "fsync, synchronous_commit, full_page_writes off", prefix: "fast ", result: "fast_",
		values: map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
	},
}

// shownSettings are printed for every phase, so the output says what the server ran with.
var shownSettings = []string{
	"fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_connections",
	"max_wal_size", "checkpoint_timeout", "work_mem", "wal_sync_method", "autovacuum",
}

// apply switches the server to p with ALTER SYSTEM and pg_reload_conf (the three settings
// are reloadable), waits until a new connection shows them, and replaces the pool so that
// no connection keeps a session value from before. A server started with these settings
// on its command line ignores ALTER SYSTEM: make bench starts it with
// NOTIFICATIONS_PG_DURABLE=1, which leaves them out.
func (b *bench) apply(ctx context.Context, p settings) error {
	for k, v := range p.values {
		if _, err := b.pool.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET %s = '%s'", k, v)); err != nil {
			return fmt.Errorf("apply %s settings: %w", p.name, err)
		}
	}
	if _, err := b.pool.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("apply %s settings: %w", p.name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pool, err := pgxpool.New(ctx, b.url)
		if err != nil {
			return err
		}
		got, err := showSettings(ctx, pool)
		if err != nil {
			pool.Close()
			return err
		}
		var wrong []string
		for k, v := range p.values {
			if got[k] != v {
				wrong = append(wrong, fmt.Sprintf("%s=%s (want %s)", k, got[k], v))
			}
		}
		if len(wrong) == 0 {
			b.pool.Close()
			b.pool = pool
			// The closed pool's backends exit in the background; let them go before the
			// first CPU sample (their CPU time would vanish from the postgres total).
			time.Sleep(time.Second)
			var line []string
			for _, k := range shownSettings {
				line = append(line, k+"="+got[k])
			}
			fmt.Printf("settings %s: %s\n", p.name, strings.Join(line, " "))
			return nil
		}
		pool.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("apply %s settings: the server shows %s after ALTER SYSTEM and a reload; "+
				"was it started with them on its command line? (make bench sets NOTIFICATIONS_PG_DURABLE=1 for scripts/with-postgres.sh)",
				p.name, strings.Join(wrong, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func showSettings(ctx context.Context, pool *pgxpool.Pool) (map[string]string, error) {
	rows, err := pool.Query(ctx, "SELECT name, current_setting(name) FROM unnest($1::text[]) AS name", shownSettings)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}
