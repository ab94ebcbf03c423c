package pgstore

import (
	"context"
	"embed"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/xerrors"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations exposes the SQL migrations for hosts that run their own migration tool. The
// files are named NNNN_name.sql, apply in name order, and use unqualified table names: run
// each with search_path set to the schema you want (pgstore defaults to "notifications").
var Migrations fs.FS = mustSub(migrationFiles, "migrations")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

type migration struct {
	version int
	name    string
	sql     string
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
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	return out, nil
}

// SchemaVersion is the version Migrate brings a schema to.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate creates or upgrades the schema (default "notifications"; see WithSchema) to the
// current version. It is idempotent and safe to call from several replicas at once: a
// session advisory lock serialises them, and each migration applies in its own transaction
// together with its version row.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	o := newOptions(opts)
	if err := o.validate(); err != nil {
		return xerrors.Errorf("migrate: %w", err)
	}
	ms, err := loadMigrations()
	if err != nil {
		return xerrors.Errorf("migrate: load migrations: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return xerrors.Errorf("migrate: acquire connection: %w", translate(err))
	}
	defer conn.Release()
	lockKey := "notifications.migrate." + o.schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return xerrors.Errorf("migrate: take advisory lock: %w", translate(err))
	}
	defer func() {
		// Unlock on a fresh context: the caller's may have ended.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey)
	}()

	schema := pgx.Identifier{o.schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return xerrors.Errorf("migrate: create schema %s: %w", o.schema, translate(err))
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+schema+`.schema_version (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return xerrors.Errorf("migrate: create version table: %w", translate(err))
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+schema+".schema_version").Scan(&current); err != nil {
		return xerrors.Errorf("migrate: read version: %w", translate(err))
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+schema+".schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return xerrors.Errorf("migrate: apply %s: %w", m.name, translate(err))
		}
	}
	return nil
}
