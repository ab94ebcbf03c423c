// Package notifications is an embeddable notification dispatcher: a Go server hands it a
// Store (pgstore on the app's own pgxpool, or the in-memory memstore), registers its
// templates, and gets durable, observable delivery by email, webhook, in-app inbox or any
// method it registers a Handler for.
//
// # Pieces
//
//   - An Enqueuer (NewStoreEnqueuer) turns "tell user U about event T" into stored
//     messages, one per delivery method, atomically, refusing duplicates (ErrDuplicate) and
//     notifications the user disabled (ErrCannotEnqueueDisabledNotification).
//   - A Manager (NewManager) runs one notifier that leases messages from the store, renders
//     each template's title and body (Markdown, with user-controlled values escaped), calls
//     the Handler for the message's method, and writes results back in bulk.
//   - A Store keeps it all; its contract is in store.go and notificationstest checks it.
//   - Handlers deliver. Package dispatch has the built-in ones — SMTP email, signed
//     webhooks, the in-app inbox — and dispatch.DefaultHandlers wires them in one call.
//
// # Lifecycle
//
// NewManager validates the Config and starts nothing. Run starts the Manager's goroutines
// and returns; only the first call does anything. Stop stops leasing, lets in-flight
// deliveries finish, writes every buffered result, and returns; it is idempotent, safe
// before Run, and bounded by its context: if that ends first, Stop cancels deliveries and
// returns the context's error. After Stop, Run does nothing. Cancelling Run's context is a
// hard stop: nothing more is written and leased messages wait for their lease to expire.
//
// # Delivery guarantees
//
// Delivery is at-least-once. Every enqueued message ends in exactly one terminal status:
// sent, permanent_failure (a non-retryable error, or MaxSendAttempts used up) or inhibited
// (the user disabled the template after enqueue). A graceful Stop delivers no message
// twice. A crash, a hard stop or a Stop whose context ends leaves messages leased; they are
// delivered again once LeasePeriod expires, so a handler can see a message ID twice and
// should use it as an idempotency key. Attempts are counted at lease time, so a message
// whose deliveries keep crashing the process still ends permanent_failure after
// MaxSendAttempts. Results are fenced: a notifier whose lease expired cannot overwrite the
// result of the notifier that leased the message next. DispatchTimeout is shorter than
// LeasePeriod, so a lease never expires under a delivery that is still running.
//
// # Throughput and backpressure
//
// Results go into two buffers (success, failure) of StoreSyncBufferSize each, written in
// bulk every StoreSyncInterval and as soon as one fills. A delivery frees its slot only
// once its result is buffered, so when the store is slower than delivery, full buffers
// hold deliveries and the notifier stops leasing: memory stays bounded by LeaseCount and
// the buffer sizes, whatever the backlog.
//
// # Time
//
// Everything reads time from the quartz.Clock given with WithClock, so tests drive the
// Manager with quartz.NewMock and Advance(...).MustWait instead of sleeping.
package notifications
