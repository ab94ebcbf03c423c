package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
)

// recovery drains n messages that all became due for retry at the same moment (a
// receiver back from an outage), and n pending messages, each from a backlog inserted with
// SQL into a fresh schema, and compares the rates.
func (b *bench) recovery(ctx context.Context) error {
	for _, c := range []struct {
		name  string
		retry bool
	}{{"recovery pending msgs/s", false}, {"recovery due retries msgs/s", true}} {
		if err := b.checkpoint(ctx); err != nil {
			return err
		}
		store, schema, drop, err := b.oursStore(ctx)
		if err != nil {
			return err
		}
		if err := b.insertBacklog(ctx, schema, b.o.n, c.retry); err != nil {
			drop()
			return err
		}
		elapsed, err := drain(ctx, store, 1, b.o.n)
		drop()
		if err != nil {
			return err
		}
		b.record(c.name, float64(b.o.n)/elapsed.Seconds())
	}
	return nil
}

// insertBacklog inserts n messages with SQL: pending, or failed once and due for retry
// since a second ago.
func (b *bench) insertBacklog(ctx context.Context, schema string, n int, dueRetries bool) error {
	payload, _ := json.Marshal(notifications.MessagePayload{
		Version: notifications.PayloadVersion, NotificationName: benchTemplate.Name, NotificationTemplateID: benchTemplate.ID.String(),
		UserEmail: "u@example.com", UserName: "U", Labels: map[string]string{"build": "1"},
	})
	s := pgx.Identifier{schema}.Sanitize()
	status, attempts, retry := "pending", 0, "NULL"
	if dueRetries {
		status, attempts, retry = "temporary_failure", 1, "now() - interval '1 second'"
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO `+s+`.messages (id, template_id, user_id, method, payload, created_at, updated_at, status, attempt_count, next_retry_after, status_reason)
SELECT gen_random_uuid(), $1, gen_random_uuid(), $2, $3::json, now(), now(), $5, $6, `+retry+`, '' FROM generate_series(1, $4)`,
		benchTemplate.ID, string(benchMethod), string(payload), n, status, attempts); err != nil {
		return fmt.Errorf("insert backlog: %w", err)
	}
	if _, err := b.pool.Exec(ctx, "ANALYZE "+s+".messages"); err != nil {
		return err
	}
	return nil
}
