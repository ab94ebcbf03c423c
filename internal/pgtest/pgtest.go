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

// URL returns the test server URL, or skips (fails under CI) when there is none.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: run the tests with `make test`, which starts PostgreSQL", EnvURL)
		}
		t.Skipf("%s is not set; `make test` starts a throw-away PostgreSQL", EnvURL)
	}
	return url
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
	cfg, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
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
