// Command layouts measures the server's cost of layouts of the messages table in
// plain SQL (BENCHMARKS.md, "Layouts of the messages table, measured in SQL"). For each layout it creates a schema with pgstore's migrations,
// changes it by hand, inserts -batches × 1,000 rows with INSERT … SELECT (UUIDv7 IDs, a
// 300-byte JSON payload, a 64-character dedupe key unless -dedupe=false, random users), runs ANALYZE and a
// CHECKPOINT, then drains them with one loop of a lease (1,000 rows, FOR UPDATE SKIP
// LOCKED, committed asynchronously, returning the payload) and a result write. It prints
// the rates, the WAL written per message, the table and index sizes and how many updates
// were HOT. With -inflight k, the result of each lease is written after k more leases, so
// that k × 1,000 messages are in flight, as in a Manager (a lease in place reads past them).
//
//	NOTIFICATIONS_PG_DURABLE=1 ./scripts/with-postgres.sh sh -c 'cd bench && go run ./layouts -rounds 3 -inflight 3'
//
// Layouts: "status" is pgstore's schema before the lease in place (schema version 8: a
// lease sets status = 'leased'); "hot" changes it by hand to keep a leased message
// pending (leased_until and leased_at set, the leased index dropped, fillfactor 50), so
// that the lease is a HOT update; "inplace" is pgstore's schema version 10, which does
// that (fillfactor 40, a trigger and an index for replicas of the previous version);
// "lean" is pgstore's schema version 11, which leaves sent messages out of the status
// index and drops the index of finished messages by age; "dedupetable" moves the dedupe
// key's uniqueness from lean's messages into a table of its own, written once at enqueue
// by the insert itself; "dedupekeys" is pgstore's schema as migrated now, which does that
// with triggers for other writers and the purge;
// "split" moves the status, attempt, lease and retry columns of schema 8 with
// the queue indexes and the status search index into a narrow state table beside an
// immutable messages row.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications/pgstore"
)

// idExpr is a UUIDv7 made in SQL (PostgreSQL 15 has no uuidv7()): the clock's
// milliseconds over the first six bytes of a random UUID.
const idExpr = `encode(overlay(uuid_send(gen_random_uuid()) placing substring(int8send((extract(epoch from clock_timestamp())*1000)::bigint) from 3) from 1 for 6), 'hex')::uuid`

// payloadExpr is a payload of the enqueuer's shape, about 300 bytes.
const payloadExpr = `('{"version":1,"notification_name":"bench","notification_template_id":"b0000000-0000-4000-8000-000000000001","user_id":"' || u::text || '","user_email":"u@example.com","user_name":"U","labels":{"build":"' || g || '"},"actions":[{"label":"View","url":"https://example.com/builds/' || g || '"}]}')::json`

// dedupeExpr is each row's dedupe key (-dedupe), or NULL.
var dedupeExpr = "NULL"

const templateID = "b0000000-0000-4000-8000-000000000001"

// layout is one schema variant: the statements that change pgstore's schema, and the
// insert, lease and result write run on it.
type layout struct {
	setup                []string
	insert, lease, write string
	analyze              []string
	// schema: the schema version the migrations build before the hand changes of setup
	// run; 0 is the latest (every pgstore migration).
	schema int
}

const (
	// statusLease is the last schema version whose lease sets status = 'leased'.
	statusLease = 8
	// allIndexes is the last schema version whose result write of a sent message
	// writes seven index entries (the lease in place with the search indexes of
	// schema 6).
	allIndexes = 10
	// uniqueDedupe is the last schema version whose messages table has a unique index on
	// the dedupe key.
	uniqueDedupe = 11
)

func layoutFor(name, s string) (layout, error) {
	// insertFrom is the insert of 1,000 rows, with more FROM items (each followed by a
	// comma) in from.
	insertFrom := func(from string) string {
		return `INSERT INTO ` + s + `.messages (id, template_id, user_id, method, payload, dedupe_key, created_at, updated_at)
SELECT ` + idExpr + `, '` + templateID + `', u, 'webhook', ` + payloadExpr + `, ` + dedupeExpr + `, now(), now()
FROM generate_series(1, 1000) g, ` + from + `LATERAL (SELECT gen_random_uuid() AS u OFFSET 0) x`
	}
	insert := insertFrom("")
	pending := `SELECT id FROM ` + s + `.%s WHERE status = 'pending' AND method = 'webhook'%s ORDER BY seq LIMIT 1000 FOR UPDATE SKIP LOCKED`
	// The lease in place of hot and the layouts after it, and hot's result write.
	hotLease := `WITH l AS (UPDATE ` + s + `.messages m SET leased_by = gen_random_uuid(), leased_until = now() + interval '1 minute',
	attempt_count = m.attempt_count + 1, leased_at = now()
WHERE m.id = ANY(ARRAY(` + fmt.Sprintf(pending, "messages", " AND (leased_until IS NULL OR leased_until <= now())") + `))
RETURNING m.id, m.payload) SELECT id, payload::text FROM l`
	hotWrite := `UPDATE ` + s + `.messages m SET status = 'sent', sent_at = now(), updated_at = now(), leased_by = NULL, leased_until = NULL, last_leased_at = m.leased_at
WHERE m.id = ANY($1) AND m.status = 'pending' AND m.leased_by IS NOT NULL`
	// The result write of pgstore's lease in place (inplace and the layouts after it),
	// which also clears leased_at.
	inPlaceWrite := `UPDATE ` + s + `.messages m SET status = 'sent', sent_at = now(), updated_at = now(), leased_by = NULL, leased_until = NULL,
	leased_at = NULL, last_leased_at = m.leased_at
WHERE m.id = ANY($1) AND m.leased_by IS NOT NULL`
	switch name {
	case "status":
		return layout{
			schema: statusLease,
			insert: insert,
			lease: `WITH l AS (UPDATE ` + s + `.messages m SET status = 'leased', leased_by = gen_random_uuid(), leased_until = now() + interval '1 minute',
	attempt_count = m.attempt_count + 1, updated_at = now()
WHERE m.id = ANY(ARRAY(` + fmt.Sprintf(pending, "messages", "") + `))
RETURNING m.id, m.payload) SELECT id, payload::text FROM l`,
			write: `UPDATE ` + s + `.messages m SET status = 'sent', sent_at = now(), updated_at = now(), leased_by = NULL, leased_until = NULL, last_leased_at = m.updated_at
WHERE m.id = ANY($1) AND m.status = 'leased'`,
			analyze: []string{s + ".messages"},
		}, nil
	case "hot":
		return layout{
			schema: statusLease,
			setup: []string{
				"DROP INDEX " + s + ".messages_leased_by_method",
				"ALTER TABLE " + s + ".messages SET (fillfactor = 50)",
				"ALTER TABLE " + s + ".messages ADD COLUMN leased_at timestamptz",
			},
			insert:  insert,
			lease:   hotLease,
			write:   hotWrite,
			analyze: []string{s + ".messages"},
		}, nil
	case "inplace", "lean":
		// inplace: pgstore's lease in place (schema 10), that of hot with the trigger
		// and index that keep replicas of the previous version off it. lean: schema 11,
		// inplace with fewer index entries per status change (sent messages left out
		// of the status search index, no index of finished messages by age).
		l := layout{schema: uniqueDedupe, insert: insert, lease: hotLease, write: inPlaceWrite, analyze: []string{s + ".messages"}}
		if name == "inplace" {
			l.schema = allIndexes
		}
		return l, nil
	case "dedupetable", "dedupekeys":
		// dedupetable: lean with the dedupe key's uniqueness in a table of its own,
		// written once at enqueue by the insert, so that a result write has no dedupe
		// entry to write. dedupekeys: pgstore's schema as migrated now, that table made by
		// its migrations (with triggers for other writers' rows and the purge), which the
		// insert tells to skip its rows (pgstore.dedupe_keys).
		l := layout{
			schema: uniqueDedupe,
			setup: []string{
				"DROP INDEX " + s + ".messages_dedupe_key_c",
				"CREATE TABLE " + s + `.dedupe_keys (key text COLLATE "C" PRIMARY KEY, message_id uuid NOT NULL)`,
			},
			lease:   hotLease,
			write:   inPlaceWrite,
			analyze: []string{s + ".messages", s + ".dedupe_keys"},
		}
		from := ""
		if name == "dedupekeys" {
			l.schema, l.setup = 0, nil
			from = "(SELECT set_config('pgstore.dedupe_keys', 'written', true)) w, "
		}
		l.insert = `WITH m AS (` + insertFrom(from) + ` RETURNING id, dedupe_key)
INSERT INTO ` + s + `.dedupe_keys (key, message_id) SELECT dedupe_key, id FROM m WHERE dedupe_key IS NOT NULL`
		return l, nil
	case "split":
		return layout{
			schema: statusLease,
			setup: []string{
				"DROP INDEX " + s + ".messages_pending_by_method", "DROP INDEX " + s + ".messages_retry_by_method",
				"DROP INDEX " + s + ".messages_leased_by_method", "DROP INDEX " + s + ".messages_finished",
				"DROP INDEX " + s + ".messages_canceled", "DROP INDEX " + s + ".messages_status_created",
				`CREATE TABLE ` + s + `.state (id uuid PRIMARY KEY, seq bigint NOT NULL, method text NOT NULL, created_at timestamptz NOT NULL,
	status text NOT NULL DEFAULT 'pending', attempt_count int NOT NULL DEFAULT 0, leased_by uuid, leased_until timestamptz,
	next_retry_after timestamptz, updated_at timestamptz NOT NULL, sent_at timestamptz, last_leased_at timestamptz)`,
				"CREATE INDEX ON " + s + ".state (method, seq) WHERE status = 'pending'",
				"CREATE INDEX ON " + s + ".state (method, next_retry_after) WHERE status = 'temporary_failure'",
				"CREATE INDEX ON " + s + ".state (method, leased_until) WHERE status = 'leased'",
				"CREATE INDEX ON " + s + ".state (updated_at) WHERE status IN ('sent', 'permanent_failure', 'inhibited')",
				"CREATE INDEX ON " + s + ".state (updated_at) WHERE status = 'canceled'",
				"CREATE INDEX ON " + s + ".state (status, created_at, seq)",
			},
			insert: `WITH m AS (` + insert + ` RETURNING id, seq, method, created_at)
INSERT INTO ` + s + `.state (id, seq, method, created_at, updated_at) SELECT id, seq, method, created_at, created_at FROM m`,
			lease: `WITH l AS (UPDATE ` + s + `.state m SET status = 'leased', leased_by = gen_random_uuid(), leased_until = now() + interval '1 minute',
	attempt_count = m.attempt_count + 1, updated_at = now()
WHERE m.id = ANY(ARRAY(` + fmt.Sprintf(pending, "state", "") + `))
RETURNING m.id) SELECT l.id, x.payload::text FROM l JOIN ` + s + `.messages x ON x.id = l.id`,
			write: `UPDATE ` + s + `.state m SET status = 'sent', sent_at = now(), updated_at = now(), leased_by = NULL, leased_until = NULL, last_leased_at = m.updated_at
WHERE m.id = ANY($1) AND m.status = 'leased'`,
			analyze: []string{s + ".messages", s + ".state"},
		}, nil
	}
	return layout{}, fmt.Errorf("unknown layout %q: want status, hot, inplace, lean, dedupetable, dedupekeys or split", name)
}

// inflight is the -inflight flag.
var inflight int

func main() {
	batches := flag.Int("batches", 200, "batches of 1,000 rows to insert and drain")
	rounds := flag.Int("rounds", 1, "rounds; each runs every layout, alternating")
	names := flag.String("layouts", "status,hot,inplace,lean,split", "comma-separated layouts to run")
	flag.IntVar(&inflight, "inflight", 0, "leases whose results are written only after this many later leases (messages in flight, as in a Manager)")
	dedupe := flag.Bool("dedupe", true, "give every row a 64-character dedupe key (otherwise NULL)")
	flag.Parse()
	if *dedupe {
		dedupeExpr = "md5(u::text) || md5(g::text || u::text)"
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("NOTIFICATIONS_TEST_DATABASE_URL"))
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	defer pool.Close()
	for r := 1; r <= *rounds; r++ {
		for _, name := range strings.Split(*names, ",") {
			line, err := run(ctx, pool, name, *batches)
			if err != nil {
				log.Fatalf("round %d, layout %s: %v", r, name, err)
			}
			fmt.Printf("round %d %s\n", r, line)
		}
	}
}

// migrateTo applies pgstore's migrations up to version to schema s, on conn: the
// files of pgstore.Migrations in name order with search_path set to s, a no-transaction
// file one statement at a time.
func migrateTo(ctx context.Context, conn *pgxpool.Conn, s string, version int) error {
	if _, err := conn.Exec(ctx, "SET search_path TO "+s); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "RESET search_path") //nolint:errcheck // best effort
	names, err := fs.Glob(pgstore.Migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0]); err != nil || v > version {
			continue
		}
		b, err := fs.ReadFile(pgstore.Migrations, name)
		if err != nil {
			return err
		}
		sql := string(b)
		statements := []string{sql}
		if strings.HasPrefix(sql, "-- pgstore:no-transaction") {
			statements = strings.SplitAfter(sql, ";\n")
		}
		for _, stmt := range statements {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if err := conn.Conn().PgConn().Exec(ctx, stmt).Close(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

func walPosition(ctx context.Context, conn *pgxpool.Conn) (int64, error) {
	var v int64
	err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn() - '0/0'").Scan(&v)
	return v, err
}

// run measures one layout on one connection of pool, so that the statistics of its
// updates can be flushed (pg_stat_force_next_flush) before they are read.
func run(ctx context.Context, pool *pgxpool.Pool, name string, batches int) (string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	s := "layout_" + name
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE"); err != nil {
		return "", err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+s+" CASCADE") //nolint:errcheck // best effort
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+s); err != nil {
		return "", err
	}
	l, err := layoutFor(name, s)
	if err != nil {
		return "", err
	}
	if l.schema == 0 {
		err = pgstore.Migrate(ctx, pool, pgstore.Config{Schema: s})
	} else {
		err = migrateTo(ctx, conn, s, l.schema)
	}
	if err != nil {
		return "", err
	}
	setup := append([]string{"INSERT INTO " + s + ".templates (id, name, title_template, body_template) VALUES ('" + templateID + "', 'bench', 'x', 'y')"}, l.setup...)
	for _, q := range setup {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
	}
	n := int64(batches) * 1000
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return "", err
	}
	w0, err := walPosition(ctx, conn)
	if err != nil {
		return "", err
	}
	start := time.Now()
	for range batches {
		if _, err := conn.Exec(ctx, l.insert); err != nil {
			return "", fmt.Errorf("insert: %w", err)
		}
	}
	insertTime := time.Since(start)
	w1, err := walPosition(ctx, conn)
	if err != nil {
		return "", err
	}
	for _, t := range l.analyze {
		if _, err := conn.Exec(ctx, "ANALYZE "+t); err != nil {
			return "", err
		}
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return "", err
	}
	w2, err := walPosition(ctx, conn)
	if err != nil {
		return "", err
	}
	start = time.Now()
	var leaseTime, writeTime time.Duration
	var drained int64
	var fifo [][][16]byte
	write := func(ids [][16]byte) error {
		t := time.Now()
		tag, err := conn.Exec(ctx, l.write, ids)
		if err != nil {
			return fmt.Errorf("result write: %w", err)
		}
		if tag.RowsAffected() != int64(len(ids)) {
			return fmt.Errorf("result write updated %d of %d rows", tag.RowsAffected(), len(ids))
		}
		writeTime += time.Since(t)
		drained += int64(len(ids))
		return nil
	}
	for {
		t := time.Now()
		ids, err := lease(ctx, conn, l.lease)
		if err != nil {
			return "", fmt.Errorf("lease: %w", err)
		}
		leaseTime += time.Since(t)
		if len(ids) == 0 && len(fifo) == 0 {
			break
		}
		if len(ids) > 0 {
			fifo = append(fifo, ids)
		}
		for len(fifo) > inflight || (len(ids) == 0 && len(fifo) > 0) {
			if err := write(fifo[0]); err != nil {
				return "", err
			}
			fifo = fifo[1:]
		}
	}
	drainTime := time.Since(start)
	if drained != n {
		return "", fmt.Errorf("drained %d of %d", drained, n)
	}
	w3, err := walPosition(ctx, conn)
	if err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		return "", err
	}
	var heap, idx, hot, upd int64
	if err := conn.QueryRow(ctx, `SELECT sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, s).Scan(&heap, &idx); err != nil {
		return "", err
	}
	if err := conn.QueryRow(ctx, "SELECT sum(n_tup_hot_upd), sum(n_tup_upd) FROM pg_stat_user_tables WHERE schemaname = $1", s).Scan(&hot, &upd); err != nil {
		return "", err
	}
	return fmt.Sprintf("%-8s enqueue %6.0f msgs/s %5d B/msg WAL | drain %6.0f msgs/s (lease %.1fs, result write %.1fs) %5d B/msg WAL | heap %d MB, indexes %d MB | HOT %d of %d updates",
		name, float64(n)/insertTime.Seconds(), (w1-w0)/n, float64(n)/drainTime.Seconds(), leaseTime.Seconds(), writeTime.Seconds(), (w3-w2)/n,
		heap>>20, idx>>20, hot, upd), nil
}

// lease runs one lease in a transaction that commits asynchronously, as pgstore's does,
// and returns the leased IDs.
func lease(ctx context.Context, conn *pgxpool.Conn, sql string) ([][16]byte, error) {
	var ids [][16]byte
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sql)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id [16]byte
			var payload string
			if err := rows.Scan(&id, &payload); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	return ids, err
}
