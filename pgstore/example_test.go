package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/pgstore"
)

// Enqueue inside your own transaction with StoreEnqueuer.SendTx: the notification exists
// if and only if the transaction commits. (This example runs against the test database
// that `make test` starts.)
func Example_sendTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("NOTIFICATIONS_TEST_DATABASE_URL")) // your application's pool (DATABASE_URL)
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	schema := "example_" + uuid.NewString()[:8]                                       // usually the default, "notifications"
	defer pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE") //nolint:errcheck
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		fmt.Println("migrate:", err)
		return
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema})
	invoice := notifications.Template{ID: uuid.New(), Name: "Invoice paid", TitleTemplate: "Invoice {{.Labels.number}} paid",
		Methods: []notifications.Method{notifications.MethodInbox}, EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, invoice); err != nil {
		panic(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		panic(err)
	}
	ada := notifications.Recipient{UserID: uuid.New(), Email: "ada@example.com", Name: "Ada"}

	payInvoice := func(number string, fail bool) error {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			// ... your own writes in tx, e.g. UPDATE invoices SET paid = true ...
			// Send: a refusal (Ada turned receipts off, a duplicate) is reported in the
			// result and does not roll back the payment; err means nothing was stored.
			res, err := enq.SendTx(ctx, tx, notifications.EnqueueRequest{
				TemplateID: invoice.ID, UserID: ada.UserID, Recipient: &ada, Labels: map[string]string{"number": number},
			})
			if err == nil && res[0].Err != nil {
				log.Printf("receipt not sent: %v", res[0].Err)
			}
			if err == nil && fail {
				err = errors.New("payment provider declined") // rolls back the notification too
			}
			return err
		})
		if err == nil {
			store.Wake() // committed: wake the notifiers now (no NOTIFY ran inside tx)
		}
		return err
	}
	fmt.Println("INV-1:", payInvoice("INV-1", false))
	fmt.Println("INV-2:", payInvoice("INV-2", true))
	counts, err := store.CountByStatus(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("pending notifications:", counts[notifications.StatusPending])
	// Output:
	// INV-1: <nil>
	// INV-2: payment provider declined
	// pending notifications: 1
}
