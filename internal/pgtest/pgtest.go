// Package pgtest gives tests an isolated PostgreSQL schema. The server comes from
// NOTIFICATIONS_TEST_DATABASE_URL, which `make test` sets by starting a throw-away cluster
// (scripts/with-postgres.sh). Without it a test is skipped, except under CI=true, where it
// fails: CI must never pass by skipping the database tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the variable that holds the test server's URL.
const EnvURL = "NOTIFICATIONS_TEST_DATABASE_URL"

// EnvExecMode names the variable that selects the pgx QueryExecMode of every test pool
// (cache_statement, cache_describe, describe_exec, exec, simple_protocol); unset: pgx's
// default. `make test` runs the store tests once per mode.
const EnvExecMode = "NOTIFICATIONS_TEST_EXEC_MODE"

// EnvPgBouncerURL names the variable that holds the URL of a PgBouncer in transaction mode
// in front of the test server (scripts/with-postgres.sh starts one).
const EnvPgBouncerURL = "NOTIFICATIONS_TEST_PGBOUNCER_URL"

// ExecModes are the pgx query exec modes by the names their connection-string parameter
// default_query_exec_mode uses.
var ExecModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// Long reports whether the long tests run: always, unless the run selects a non-default
// exec mode (the matrix repeats only the shorter store tests in the other modes).
func Long() bool {
	m := os.Getenv(EnvExecMode)
	return m == "" || m == "cache_statement"
}

// PgBouncerURL returns the PgBouncer URL, or skips (fails under CI) when there is none.
func PgBouncerURL(t testing.TB) string {
	t.Helper()
	return env(t, EnvPgBouncerURL, "PgBouncer in front of a throw-away PostgreSQL")
}

// URL returns the test server URL, or skips (fails under CI) when there is none.
func URL(t testing.TB) string {
	t.Helper()
	return env(t, EnvURL, "a throw-away PostgreSQL")
}

// env returns the variable name, or skips (fails under CI=true) when it is unset.
func env(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Unavailable(t, "%s is not set; `make test` starts %s", name, what)
	}
	return v
}

// Unavailable skips the test for lack of something it needs from its environment (a
// server, a privilege, a binary), or fails it under CI=true: CI must never pass by
// skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// Schema creates a uniquely named schema, drops it when the test ends, and returns a pool
// and the schema name. The pool's connections have no search_path change: code under test
// must qualify its tables (as pgstore does).
func Schema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool := Pool(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return pool, schema
}

// Pool returns a pool on the test server, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return PoolOn(t, URL(t))
}

// PoolOn returns a pool on url in the exec mode the run selects, closed when the test
// ends.
func PoolOn(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse database URL: %v", err)
	}
	if name := os.Getenv(EnvExecMode); name != "" {
		mode, ok := ExecModes[name]
		if !ok {
			t.Fatalf("%s=%q is not a pgx exec mode", EnvExecMode, name)
		}
		cfg.ConnConfig.DefaultQueryExecMode = mode
	}
	cfg.MaxConns = 8
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("ping test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
