// Package notifications is an embeddable notification dispatcher: a Go server hands it a
// Store (pgstore on the app's own pgxpool, or the in-memory memstore), registers its
// templates, and gets durable, observable delivery by email, webhook, in-app inbox or any
// method it registers a Handler for.
//
// # Pieces
//
//   - A Registry (NewRegistry) holds the host's template helpers. Registry.Register
//     validates templates with them and stores them; give the same Registry to the
//     enqueuer and the Manager, so a template that registers also renders.
//   - An Enqueuer (NewStoreEnqueuer) turns "tell user U about event T" into stored
//     messages, one per delivery method of the template (Template.Methods, or the
//     enqueuer's DefaultMethods less Template.ExcludeMethods) that the user has not
//     disabled. Send reports each request on its own (SendResult: the message IDs, or why
//     it was refused — ErrDuplicate, ErrCannotEnqueueDisabledNotification, ErrNotFound,
//     ErrInvalidMessage — naming the request and user), so one recipient never sinks a
//     fan-out; SendAtomic stores all requests or none. SendTx and SendAtomicTx do the same
//     inside the host's own database transaction.
//   - A Manager (NewManager) runs one notifier that leases messages from the store, renders
//     each template's title and body (Markdown, with user-controlled values escaped), calls
//     the Handler for the message's method, and writes results back in bulk.
//   - A Store keeps it all: messages, templates, preferences per user, template and method
//     (StoreEnqueuer.EffectivePreferences turns them into a settings screen), the inbox (cursor
//     pages, filters, mark all read, archive, delete) and what support tools need (message
//     search, retry, cancel, resend, the attempt history). memstore and pgstore implement
//     it; notificationstest.RunStoreTests checks any implementation, and package driver
//     holds the types only an implementation needs.
//   - Handlers deliver. Package dispatch has the built-in ones — SMTP email, signed
//     webhooks, the in-app inbox — and dispatch.DefaultHandlers wires them in one call.
//
// Every component is configured the same way, with a Config struct that comes last among
// its constructor's arguments: Config (start from DefaultConfig: some of its zero values
// mean something of their own, such as RetryJitter 0 for no jitter), and EnqueuerConfig,
// MetricsConfig, memstore.Config, pgstore.Config, and dispatch's SMTPConfig, WebhookConfig
// and HandlersConfig, whose zero fields take the documented defaults.
//
// # Lifecycle
//
// NewManager validates the Config and starts nothing; the Manager leases the methods it
// has Handlers for. Run starts the Manager's goroutines and returns; the first lease
// happens as soon as the store's listener is ready (at once for memstore and a reachable
// pgstore), or at the first FetchInterval tick if the listener cannot start. A second Run
// returns ErrManagerAlreadyRunning, and Run after Stop returns
// ErrManagerAlreadyClosed. Run's context is the Manager's whole life: cancelling it is a
// hard stop (deliveries are cancelled and their messages stay leased until the lease
// expires; results already buffered are kept for Stop to write).
//
// Stop stops leasing, lets in-flight deliveries finish, waits for a bulk write in
// progress, writes every buffered result, and returns nil when nothing is left. It is
// idempotent, safe before Run and after a hard stop, and bounded by its context: if that
// ends first, Stop cancels the deliveries still running and returns an error wrapping the
// context's error that says how many deliveries it cancelled and how many results are
// still buffered. Buffered results are kept, so a later Stop writes them.
//
// # Delivery guarantees
//
// Delivery is at-least-once. Every enqueued message whose method a running Manager handles
// ends in exactly one terminal status: sent, permanent_failure (a non-retryable error, or
// MaxSendAttempts used up), inhibited (the user disabled the template or its method after
// enqueue) or canceled (an operator canceled it, or its template was deleted, before it
// was delivered); a message of a method no running Manager handles stays pending. A
// graceful Stop delivers no message
// twice. A crash, a hard stop or a Stop whose context ends leaves messages leased; they are
// delivered again once LeasePeriod expires, so a handler can see a message ID twice and
// should use it as an idempotency key. Attempts are counted at lease time, so a message
// whose deliveries keep crashing the process still ends permanent_failure after
// MaxSendAttempts. Results are fenced: a notifier whose lease expired cannot overwrite the
// result of the notifier that leased the message next.
//
// A delivery's context carries the DispatchTimeout deadline and Config.Validate makes
// DispatchTimeout + StoreSyncInterval + a tenth of LeasePeriod shorter than LeasePeriod, so
// while handlers honour their context no two calls for one message overlap and a result is
// written before its lease expires. A handler that ignores its context for longer than
// LeasePeriod can overlap with a redelivery by another notifier; only one result is
// recorded.
//
// A Manager leases only the methods it has Handlers for: replicas with different handler
// sets (a rolling deploy that adds a method) share a store without failing each other's
// messages. A panic anywhere in a delivery (rendering, a Handler's Dispatcher, a host
// helper, the DeliveryFunc) or a runtime.Goexit in a handler ends that message
// permanent_failure with the reason and frees its slot. Every retry delay, jitter and
// RetryAfter included, is at most MaxRetryInterval.
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
// Every component that reads the time takes it from the Clock field of its Config
// (Config.Clock, EnqueuerConfig.Clock, memstore.Config.Clock, and dispatch's SMTPConfig and
// WebhookConfig); nil is the real clock. Tests give them one quartz.NewMock and drive it
// with Advance(...).MustWait instead of sleeping. pgstore reads the database's clock, the
// one every replica shares.
package notifications
