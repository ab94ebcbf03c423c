package pgstore

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/xerrors"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations exposes the SQL migrations for hosts that run their own migration tool. The
// files are named NNNN_name.sql, apply in name order, and use unqualified table names: run
// each with search_path set to the schema you want (pgstore defaults to "notifications").
// A file whose first line is "-- pgstore:no-transaction" builds or drops indexes
// CONCURRENTLY: run its statements one at a time, outside a transaction block; every
// statement in it is idempotent, so a file interrupted half-way can be run again.
var Migrations fs.FS = mustSub(migrationFiles, "migrations")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

const noTransactionMarker = "-- pgstore:no-transaction"

type migration struct {
	version    int
	name       string
	sql        string
	statements []string // no-transaction migrations: run one by one
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(Migrations, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	for _, name := range names {
		v, err := strconv.Atoi(strings.SplitN(path.Base(name), "_", 2)[0])
		if err != nil {
			return nil, xerrors.Errorf("migration %s: name must start with a version number: %w", name, err)
		}
		b, err := fs.ReadFile(Migrations, name)
		if err != nil {
			return nil, err
		}
		m := migration{version: v, name: name, sql: string(b)}
		if strings.HasPrefix(m.sql, noTransactionMarker) {
			m.statements = splitStatements(m.sql)
		}
		out = append(out, m)
	}
	return out, nil
}

// splitStatements splits a migration at lines ending in ";", dropping comment lines.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// SchemaVersion is the version Migrate brings a schema to.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

const (
	// migrateLockTimeout bounds how long one DDL statement waits for a lock on a table
	// that live replicas use; it is retried after a pause, so the replicas' statements
	// queued behind it wait at most about this long.
	migrateLockTimeout = 200 * time.Millisecond
	migrateLockRetries = 100
	// claimTTL is how long a migrator's claim lasts without a heartbeat.
	claimTTL = 30 * time.Second
)

// Migrate creates or upgrades the schema (default "notifications"; see Config.Schema) to the
// current version. It is idempotent, safe to call from several replicas at once, and safe
// through a transaction pooler (PgBouncer) and while replicas run:
//
//   - One migrator at a time holds a claim row in the schema (taken and renewed in short
//     transactions, released at the end, expiring 30 s after a crashed migrator's last
//     renewal); the others wait for it and then find the schema up to date. No session
//     state is used: a transaction-scoped advisory lock guards only the creation of the
//     schema and the claim table, so no lock outlives a transaction on a pooled connection.
//   - Each DDL statement waits at most 200 ms for its lock (lock_timeout) and is retried
//     after a pause, so queries of running replicas never queue behind it for long.
//   - Indexes on the messages table are built and dropped CONCURRENTLY, outside a
//     transaction, so enqueues, leases and result writes continue during the build.
func Migrate(ctx context.Context, pool *pgxpool.Pool, cfg Config) error {
	return migrateTo(ctx, pool, 0, cfg)
}

// migrateTo migrates up to version target (0: the latest). Its errors carry PostgreSQL's
// own error, untranslated: a unique violation in a catalog is not a duplicate notification.
func migrateTo(ctx context.Context, pool *pgxpool.Pool, target int, cfg Config) error {
	o := newOptions(cfg)
	if o.err != nil {
		return xerrors.Errorf("migrate: %w", o.err)
	}
	ms, err := loadMigrations()
	if err != nil {
		return xerrors.Errorf("migrate: load migrations: %w", err)
	}
	if target == 0 {
		target = ms[len(ms)-1].version
	}
	mg := &migrator{pool: pool, o: o, schema: pgx.Identifier{o.schema}.Sanitize(), holder: uuid.New(), clock: quartz.NewReal()}
	if err := mg.bootstrap(ctx); err != nil {
		return xerrors.Errorf("migrate: create schema %s: %w", o.schema, err)
	}
	current, err := mg.version(ctx)
	if err != nil {
		return xerrors.Errorf("migrate: read version: %w", err)
	}
	if current >= target {
		return nil
	}
	release, err := mg.claim(ctx)
	if err != nil {
		return xerrors.Errorf("migrate: %w", err)
	}
	defer release()
	// Another migrator may have finished while this one waited.
	if current, err = mg.version(ctx); err != nil {
		return xerrors.Errorf("migrate: read version: %w", err)
	}
	for _, m := range ms {
		if m.version <= current || m.version > target {
			continue
		}
		if err := mg.apply(ctx, m); err != nil {
			return xerrors.Errorf("migrate: apply %s: %w", m.name, err)
		}
	}
	return nil
}

type migrator struct {
	pool   *pgxpool.Pool
	o      options
	schema string // quoted
	holder uuid.UUID
	// clock paces the waits for another migrator, the claim's renewal and the lock
	// retries. It is the real clock even when a test clock is injected (Config.WithTestClock): the claim expires on
	// the database's clock, and a test's mock clock would stall a waiting migrator.
	clock quartz.Clock
}

// bootstrap creates the schema, the version table and the claim table, serialised by a
// transaction-scoped advisory lock (concurrent CREATE ... IF NOT EXISTS can collide).
func (mg *migrator) bootstrap(ctx context.Context) error {
	return pgx.BeginFunc(ctx, mg.pool, func(tx pgx.Tx) error {
		stmts := []string{
			"SELECT pg_advisory_xact_lock(hashtext('notifications.migrate.' || $1::text))",
			"CREATE SCHEMA IF NOT EXISTS " + mg.schema,
			"CREATE TABLE IF NOT EXISTS " + mg.schema + `.schema_version (
				version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
			"CREATE TABLE IF NOT EXISTS " + mg.schema + `.migration_claim (
				id integer PRIMARY KEY CHECK (id = 1), holder uuid NOT NULL, until timestamptz NOT NULL)`,
		}
		for i, s := range stmts {
			var args []any
			if i == 0 {
				args = []any{mg.o.schema}
			}
			if _, err := tx.Exec(ctx, s, args...); err != nil {
				return err
			}
		}
		return nil
	})
}

func (mg *migrator) version(ctx context.Context) (int, error) {
	var v int
	err := mg.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+mg.schema+".schema_version").Scan(&v)
	return v, err
}

// claim waits until this migrator holds the claim row, renews it in the background, and
// returns the function that stops renewing and releases it.
func (mg *migrator) claim(ctx context.Context) (func(), error) {
	take := "INSERT INTO " + mg.schema + `.migration_claim AS c (id, holder, until)
		VALUES (1, $1, now() + $2 * interval '1 microsecond')
		ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE c.until < now() OR c.holder = excluded.holder
		RETURNING holder`
	for {
		var got uuid.UUID
		err := mg.pool.QueryRow(ctx, take, mg.holder, claimTTL.Microseconds()).Scan(&got)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, xerrors.Errorf("claim the schema for migrating: %w", err)
		}
		if err := mg.sleep(ctx, 100*time.Millisecond, "claimWait"); err != nil {
			return nil, xerrors.Errorf("wait for another migrator: %w", err)
		}
	}
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := mg.clock.NewTicker(claimTTL/3, "pgstore", "migrateClaim")
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				_, _ = mg.pool.Exec(renewCtx, "UPDATE "+mg.schema+`.migration_claim
					SET until = now() + $2 * interval '1 microsecond' WHERE holder = $1`, mg.holder, claimTTL.Microseconds())
			}
		}
	}()
	return func() {
		stop()
		<-done
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = mg.pool.Exec(releaseCtx, "DELETE FROM "+mg.schema+".migration_claim WHERE holder = $1", mg.holder)
	}, nil
}

func (mg *migrator) sleep(ctx context.Context, d time.Duration, tag string) error {
	return sleep(ctx, mg.clock, d, tag)
}

// apply runs one migration and records its version.
func (mg *migrator) apply(ctx context.Context, m migration) error {
	record := func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO "+mg.schema+".schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
		return err
	}
	if m.statements == nil {
		return mg.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			return record(tx)
		})
	}
	for _, stmt := range m.statements {
		if err := mg.statement(ctx, stmt); err != nil {
			return xerrors.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return mg.inTx(ctx, record)
}

var (
	createConcurrently = regexp.MustCompile(`(?is)^CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+ON\s+(\w+)(.*)$`)
	dropConcurrently   = regexp.MustCompile(`(?is)^DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+(\w+)\s*;?$`)
)

// statement runs one statement of a no-transaction migration. CONCURRENTLY statements
// cannot run in a transaction block (so they cannot SET LOCAL search_path): their names are
// qualified here. Every other statement runs in a transaction under the lock timeout.
func (mg *migrator) statement(ctx context.Context, stmt string) error {
	if g := createConcurrently.FindStringSubmatch(stmt); g != nil {
		index := g[2]
		// A build that failed earlier (lock timeout, crash) leaves an invalid index that
		// IF NOT EXISTS would keep; this migrator holds the claim, so nobody else is
		// building it.
		var invalid bool
		err := mg.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisvalid)`,
			mg.o.schema, index).Scan(&invalid)
		if err != nil {
			return err
		}
		if invalid {
			if err := mg.retry(ctx, func() error {
				_, err := mg.pool.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+mg.schema+"."+pgx.Identifier{index}.Sanitize())
				return err
			}); err != nil {
				return err
			}
		}
		sql := "CREATE " + g[1] + "INDEX CONCURRENTLY IF NOT EXISTS " + pgx.Identifier{index}.Sanitize() +
			" ON " + mg.schema + "." + pgx.Identifier{g[3]}.Sanitize() + g[4]
		return mg.retry(ctx, func() error { _, err := mg.pool.Exec(ctx, sql); return err })
	}
	if g := dropConcurrently.FindStringSubmatch(stmt); g != nil {
		sql := "DROP INDEX CONCURRENTLY IF EXISTS " + mg.schema + "." + pgx.Identifier{g[1]}.Sanitize()
		return mg.retry(ctx, func() error { _, err := mg.pool.Exec(ctx, sql); return err })
	}
	return mg.inTx(ctx, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, stmt); return err })
}

// inTx runs fn in a transaction with the schema on the search_path and the lock timeout,
// retrying when a lock was not granted in time.
func (mg *migrator) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return mg.retry(ctx, func() error {
		return pgx.BeginFunc(ctx, mg.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true), set_config('lock_timeout', $2, true)",
				mg.schema, strconv.FormatInt(migrateLockTimeout.Milliseconds(), 10)+"ms"); err != nil {
				return err
			}
			return fn(tx)
		})
	})
}

// retry runs fn again after a pause while it fails for a lock it could not get in time
// (lock_timeout) or a deadlock with a running replica.
func (mg *migrator) retry(ctx context.Context, fn func() error) error {
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || (pgErr.Code != "55P03" && pgErr.Code != "40P01") {
			return err
		}
		if attempt == migrateLockRetries {
			return xerrors.Errorf("gave up after %d attempts to take a lock within %s: %w", attempt, migrateLockTimeout, err)
		}
		if err := mg.sleep(ctx, pause, "migrateRetry"); err != nil {
			return err
		}
		pause = min(pause*2, 2*time.Second)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
