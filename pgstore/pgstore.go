// Package pgstore is the PostgreSQL notifications.Store on pgx/v5. The host passes its
// existing *pgxpool.Pool; the store keeps its tables in a schema of their own (default
// "notifications"), created by Migrate.
//
// Leasing is one statement (FOR UPDATE SKIP LOCKED; pending oldest first, retries as they
// fall due); results are written in bulk and fenced on the lessee and attempt; an enqueue
// is one statement that also checks templates and preferences. Notifiers listening on
// another connection are woken by a NOTIFY sent after the enqueue commits, from another
// connection and coalesced (see Wake), never inside the enqueuing transaction. Enqueue
// inside your own transaction with StoreEnqueuer.SendTx, and call Wake after committing
// it.
package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/storecheck"
)

// DefaultSchema is the schema the store uses unless Config.Schema says otherwise.
const DefaultSchema = "notifications"

// dbtx is what both a pool and a transaction offer.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error) // a transaction, or a savepoint in one
}

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	db   dbtx // the pool, or a transaction (WithTx)
	o    options
	q    queries
	err  error  // invalid options: every method fails with it
	w    *waker // shared with the WithTx copies
	inTx bool   // db is the host's transaction
}

var (
	_ notifications.Store          = (*Store)(nil)
	_ notifications.TxEnqueueStore = (*Store)(nil)
)

// Config configures New and Migrate; give both the same one. The zero value is usable.
type Config struct {
	// Schema is the schema the store keeps its tables in. Default (""): DefaultSchema.
	// Bounds: at most MaxSchemaLen bytes.
	Schema string

	// Logger receives the listener's reconnects and failed wake-ups, named "pgstore".
	// Default (the zero Logger): discard everything.
	Logger slog.Logger

	// PollOnly says the pool goes through a transaction pooler (PgBouncer in transaction
	// mode), which cannot hold a LISTEN: without ListenerConn or ListenerDSN, notifiers
	// find new work at their FetchInterval and the inbox broker polls for new items (see
	// BrokerPollInterval). With one of them, wake-ups and live inbox events go through it.
	// Default: false.
	PollOnly bool

	// ListenerConn gives the listener (notifier wake-ups and the inbox broker) its own
	// connection source: it is called for each listening connection, which the store
	// closes when done. Use it behind a transaction pooler, with a connection that reaches
	// PostgreSQL directly (or through a session-mode pool). Default (nil): a connection
	// acquired from the store's pool, through its hooks, and taken out of it. Set at most
	// one of ListenerConn and ListenerDSN.
	ListenerConn func(ctx context.Context) (*pgx.Conn, error)

	// ListenerDSN is ListenerConn with pgx.Connect on this connection string. Default
	// (""): none.
	ListenerDSN string

	// ListenerPingInterval is how long the listener's connection may stay silent before
	// it is pinged (and replaced when the ping fails within the same time). Default (0):
	// DefaultListenerPingInterval. Bounds: not negative.
	ListenerPingInterval time.Duration

	// BrokerPollInterval is how often the inbox broker looks for new items when it cannot
	// listen (PollOnly without a listener connection source). Default (0):
	// DefaultBrokerPollInterval. Bounds: not negative.
	BrokerPollInterval time.Duration

	// WakeInterval is the shortest time between two wake-up NOTIFYs of the store (see
	// Store.Wake). Default (0): DefaultWakeInterval. A negative value turns the pacing off:
	// then the only coalescing is that one NOTIFY is in flight at a time. With pacing, an
	// enqueue outside a transaction on a store that has sent no wake-up for two intervals
	// carries its NOTIFY in its own transaction; with the pacing off none does.
	WakeInterval time.Duration

	// clock, set only by tests (export_test.go), replaces the database's now().
	clock quartz.Clock
}

// options is a Config with its defaults applied.
type options struct {
	schema        string
	clock         quartz.Clock
	pollOnly      bool
	fixedNow      bool // clock injected: pass its time instead of the database's now()
	log           slog.Logger
	listenConnect func(context.Context) (*pgx.Conn, error)
	pingInterval  time.Duration
	brokerPoll    time.Duration
	wakeInterval  time.Duration
	err           error // what is wrong with the Config
}

func newOptions(cfg Config) options {
	o := options{schema: cfg.Schema, clock: cfg.clock, pollOnly: cfg.PollOnly, log: cfg.Logger.Named("pgstore"),
		listenConnect: cfg.ListenerConn, pingInterval: cfg.ListenerPingInterval, brokerPoll: cfg.BrokerPollInterval}
	var errs []string
	if o.schema == "" {
		o.schema = DefaultSchema
	}
	if len(o.schema) > MaxSchemaLen {
		errs = append(errs, fmt.Sprintf("Config.Schema %q is %d bytes; at most %d bytes are allowed, since the NOTIFY channel \"<schema>.inbox\" must fit PostgreSQL's 63-byte identifier limit.",
			o.schema, len(o.schema), MaxSchemaLen))
	}
	if o.clock != nil {
		o.fixedNow = true
	} else {
		o.clock = quartz.NewReal()
	}
	switch {
	case cfg.ListenerConn != nil && cfg.ListenerDSN != "":
		errs = append(errs, "Config.ListenerConn and Config.ListenerDSN are both set; set at most one.")
	case cfg.ListenerDSN != "":
		dsn := cfg.ListenerDSN
		o.listenConnect = func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn) }
	}
	switch {
	case o.pingInterval < 0:
		errs = append(errs, fmt.Sprintf("Config.ListenerPingInterval must not be negative, got %s.", o.pingInterval))
	case o.pingInterval == 0:
		o.pingInterval = DefaultListenerPingInterval
	}
	switch {
	case o.brokerPoll < 0:
		errs = append(errs, fmt.Sprintf("Config.BrokerPollInterval must not be negative, got %s.", o.brokerPoll))
	case o.brokerPoll == 0:
		o.brokerPoll = DefaultBrokerPollInterval
	}
	switch {
	case cfg.WakeInterval > 0:
		o.wakeInterval = cfg.WakeInterval
	case cfg.WakeInterval == 0 && !o.fixedNow:
		// Under a test clock no timer of the store may wait on the mock: no pacing.
		o.wakeInterval = DefaultWakeInterval
	}
	if len(errs) > 0 {
		o.err = xerrors.Errorf("pgstore: %s", strings.Join(errs, " "))
	}
	return o
}

// New returns a store on pool. Run Migrate with the same Config first (once per
// deployment is enough; it is idempotent). A Config that cannot work (a schema name over
// MaxSchemaLen bytes, say) makes every method of the store return an error that names the
// field and says why.
func New(pool *pgxpool.Pool, cfg Config) *Store {
	o := newOptions(cfg)
	if o.err != nil {
		return &Store{db: failDB{o.err}, o: o, err: o.err, w: &waker{}}
	}
	return &Store{pool: pool, db: pool, o: o, q: buildQueries(o.schema), w: &waker{}}
}

// failDB fails every statement with err: the store of New with invalid options.
type failDB struct{ err error }

func (f failDB) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, f.err
}
func (f failDB) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, f.err }
func (f failDB) QueryRow(context.Context, string, ...any) pgx.Row        { return failRow(f) }
func (f failDB) Begin(context.Context) (pgx.Tx, error)                   { return nil, f.err }

type failRow struct{ err error }

func (f failRow) Scan(...any) error { return f.err }

// WithTx returns a store whose reads and writes run in tx, the host's own transaction: a
// preference or an operator action that commits or rolls back with the host's writes.
// To enqueue in tx, use StoreEnqueuer.SendTx (which binds the store through InTx). After
// an enqueue in tx, call Wake once tx commits so that notifiers start on the new messages
// at once (without it they are woken TxWakeDelay after the enqueue, or find the messages
// at their next poll). An enqueue sets the transaction-local setting pgstore.dedupe_keys
// (the enqueue writes its messages' dedupe keys itself, so the trigger for other writers'
// rows skips them); it lasts until tx ends. The returned store must not be used after tx
// ends, and is not for a Manager.
func (s *Store) WithTx(tx pgx.Tx) *Store {
	c := *s
	c.db, c.inTx = tx, true
	return &c
}

// InTx implements notifications.TxEnqueueStore: it binds the store to tx, which must be a
// pgx.Tx. It is how StoreEnqueuer.SendTx and SendAtomicTx enqueue inside the host's
// transaction. See WithTx.
func (s *Store) InTx(tx any) (notifications.EnqueueStore, error) {
	t, ok := tx.(pgx.Tx)
	if !ok || t == nil {
		return nil, xerrors.Errorf("pgstore: the transaction must be a pgx.Tx (from pool.Begin or pgx.BeginFunc), got %T", tx)
	}
	return s.WithTx(t), nil
}

// now is the explicit time to use, or nil for the database's now().
func (s *Store) now() any {
	if s.o.fixedNow {
		return s.o.clock.Now("pgstore")
	}
	return nil
}

// translate turns pgx errors into the package's sentinels where one applies.
func translate(err error) error {
	if err == nil {
		return nil
	}
	// Each sentinel wraps the driver's error too, so callers can still inspect the cause.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			// A refusal a fan-out meets routinely: say what is duplicated, without the
			// driver's text, and keep the driver's error for errors.As.
			what := "a stored row has the same key (" + pgErr.ConstraintName + ")"
			switch pgErr.ConstraintName {
			case "dedupe_keys_pkey", "messages_dedupe_key_c": // the latter before 0013
				what = "a message with the same content today, or the same idempotency key, is already stored"
			case "messages_pkey":
				what = "a message with the same ID is already stored"
			}
			return &refusalError{msg: notifications.ErrDuplicate.Error() + ": " + what, sentinel: notifications.ErrDuplicate, cause: err}
		case pgErr.Code == "23503": // foreign_key_violation
			return fmt.Errorf("%w: %w", notifications.ErrNotFound, err)
		case strings.HasPrefix(pgErr.Code, "22"), pgErr.Code == "23514":
			// Data exceptions (a NUL byte or invalid UTF-8 in text, invalid JSON, a value
			// out of range) and check violations: the input can never be stored as it is.
			return fmt.Errorf("%w: %w", notifications.ErrInvalidMessage, err)
		case pgErr.Code == "3F000", pgErr.Code == "42P01": // invalid_schema_name, undefined_table
			return fmt.Errorf("%s (did you run pgstore.Migrate?): %w", pgErr.Message, err)
		}
	}
	if strings.Contains(err.Error(), "closed pool") {
		return fmt.Errorf("the pgxpool.Pool passed to pgstore is closed: %w", err)
	}
	return err
}

// refusalError is a sentinel error with a message of its own; it wraps both the sentinel
// and the driver's error.
type refusalError struct {
	msg             string
	sentinel, cause error
}

func (e *refusalError) Error() string   { return e.msg }
func (e *refusalError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// LeaseMessages implements notifications.NotifierStore.
func (s *Store) LeaseMessages(ctx context.Context, p driver.LeaseParams) ([]driver.LeasedMessage, error) {
	if err := storecheck.LeaseParams(p); err != nil {
		return nil, xerrors.Errorf("lease messages: %w", err)
	}
	if len(p.Methods) == 0 {
		return nil, nil
	}
	lease := s.q.lease
	if s.inTx {
		lease = s.q.leaseInTx
	}
	rows, done, err := s.queryHot(ctx, s.db, noJITGeneric, lease, s.now(), p.NotifierID, p.Limit, p.LeasePeriod.Microseconds(), p.MaxAttempts, p.Methods)
	if err != nil {
		return nil, xerrors.Errorf("lease messages: %w", translate(err))
	}
	out := make([]driver.LeasedMessage, 0, p.Limit)
	for rows.Next() {
		var m driver.LeasedMessage
		if err := rows.Scan(&m.ID, &m.Method, &m.TemplateID, &m.TemplateName, &m.TitleTemplate, &m.BodyTemplate,
			&m.Payload, &m.Disabled, &m.AttemptCount, &m.CreatedAt, &m.LeasedAt); err != nil {
			rows.Close()
			_ = done()
			return nil, xerrors.Errorf("lease messages: scan: %w", err)
		}
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		_ = done()
		return nil, xerrors.Errorf("lease messages: %w", translate(err))
	}
	if err := done(); err != nil {
		return nil, xerrors.Errorf("lease messages: %w", translate(err))
	}
	return out, nil
}

// Outside a host's transaction, the statements of a drain and of an enqueue run after a
// prelude, sent in the same round trip and run in the same implicit transaction
// (queryHot), or at the start of the store's own transaction (beginHot), whose settings
// last for that transaction only:
//
//   - jit off: PostgreSQL JIT-compiles a statement whose estimated cost is above
//     jit_above_cost, and the lease's generic plan (which cannot know its LIMIT) is
//     estimated above the default threshold on a backlog of about 100,000 messages.
//     Compiling it costs 80–100 ms, more than running it. These statements touch a few
//     rows each; compiling never pays.
//   - plan_cache_mode force_generic_plan (the lease and small enqueues): reuse the prepared
//     statement's generic plan instead of planning the statement for every call's
//     parameters (about 1 ms each, more than running them).
//
// In a host's transaction (InTx, WithTx) the statements run on the host's settings: a
// setting made there would outlive the statement.
var (
	noJIT        = prelude{sql: `SELECT set_config('jit', 'off', true)`}
	noJITGeneric = prelude{sql: `SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)`}
)

// prelude is the settings statement run before a hot-path statement, in its round trip
// and its implicit transaction (queryHot), and optionally a statement run after it (then).
type prelude struct {
	sql      string
	then     string
	thenArgs []any
}

// wakingIfStored is p followed by the store's wake-up NOTIFY if the enqueue statement
// stored the message id (wakeIfStored): delivered when the implicit transaction commits
// (see claimInlineWake).
func (s *Store) wakingIfStored(p prelude, id uuid.UUID) prelude {
	p.then, p.thenArgs = s.q.wakeIfStored, []any{s.channel(), id.String()}
	return p
}

// genericEnqueueMax is the largest enqueue that runs on the statement's generic plan: a
// single enqueue is dominated by planning the statement (about 1 ms, more than its
// execution), a batch of hundreds by its execution, for which the plan made for its
// actual arrays stays.
const genericEnqueueMax = 8

// ownPool reports whether db is the store's pool, where the prelude's settings end with
// the statement's transaction (in a host's transaction, InTx or WithTx, db is the host's
// transaction or a savepoint of it).
func (s *Store) ownPool(db dbtx) bool {
	return s.pool != nil && db == dbtx(s.pool)
}

// beginHot begins a transaction on db and, when db is the store's pool, turns JIT off for
// it (see noJIT).
func (s *Store) beginHot(ctx context.Context, db dbtx) (pgx.Tx, error) {
	tx, err := db.Begin(ctx)
	if err != nil || !s.ownPool(db) {
		return tx, err
	}
	if _, err := tx.Exec(ctx, noJIT.sql); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// queryRowHot is queryHot for a statement that returns one row, scanned into dest.
func (s *Store) queryRowHot(ctx context.Context, db dbtx, pre prelude, query string, args []any, dest ...any) error {
	rows, done, err := s.queryHot(ctx, db, pre, query, args...)
	if err != nil {
		return err
	}
	err = pgx.ErrNoRows
	if rows.Next() {
		err = rows.Scan(dest...)
	}
	rows.Close()
	if rerr := rows.Err(); rerr != nil {
		err = rerr // the statement's own error, not "no rows"
	}
	if derr := done(); err == nil {
		err = derr
	}
	return err
}

// queryHot runs query on db, with pre (noJIT or noJITGeneric) before it in one round
// trip and one implicit transaction (a batch) when db is the store's pool, and returns its
// rows and a function that ends the batch (call it after closing the rows). On any other
// db (the host's transaction, a transaction of the store's own) it runs the query alone:
// the settings would outlive the statement there.
func (s *Store) queryHot(ctx context.Context, db dbtx, pre prelude, query string, args ...any) (pgx.Rows, func() error, error) {
	if !s.ownPool(db) {
		rows, err := db.Query(ctx, query, args...)
		return rows, func() error { return nil }, err
	}
	b := &pgx.Batch{}
	b.Queue(pre.sql)
	b.Queue(query, args...)
	if pre.then != "" {
		b.Queue(pre.then, pre.thenArgs...)
	}
	br := s.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, nil, err
	}
	return rows, br.Close, nil
}

// MarkSent implements notifications.NotifierStore.
func (s *Store) MarkSent(ctx context.Context, notifierID uuid.UUID, results []driver.SentResult) (int, error) {
	if len(results) == 0 {
		return 0, nil
	}
	ids := make([]string, len(results))
	attempts := make([]int32, len(results))
	took := make([]int64, len(results))
	for i, r := range results {
		ids[i], attempts[i], took[i] = r.ID.String(), int32(r.AttemptCount), int64(r.Duration)
	}
	var n int
	if err := s.queryRowHot(ctx, s.db, noJIT, s.q.markSent, []any{s.now(), notifierID, ids, attempts, took}, &n); err != nil {
		return 0, xerrors.Errorf("mark sent: %w", translate(err))
	}
	return n, nil
}

// MarkFailed implements notifications.NotifierStore.
func (s *Store) MarkFailed(ctx context.Context, notifierID uuid.UUID, results []driver.FailedResult) (int, error) {
	if len(results) == 0 {
		return 0, nil
	}
	if err := storecheck.FailedResults(results); err != nil {
		return 0, xerrors.Errorf("mark failed: %w", err)
	}
	ids := make([]string, len(results))
	attempts := make([]int32, len(results))
	statuses := make([]string, len(results))
	reasons := make([]string, len(results))
	delays := make([]int64, len(results))
	took := make([]int64, len(results))
	for i, r := range results {
		ids[i], attempts[i], statuses[i] = r.ID.String(), int32(r.AttemptCount), r.Status
		reasons[i] = strings.ToValidUTF8(strings.ReplaceAll(r.Reason, "\x00", ""), "\uFFFD")
		delays[i], took[i] = r.RetryDelay.Microseconds(), int64(r.Duration)
	}
	var n int
	if err := s.queryRowHot(ctx, s.db, noJIT, s.q.markFailed, []any{s.now(), notifierID, ids, attempts, statuses, reasons, delays, took}, &n); err != nil {
		return 0, xerrors.Errorf("mark failed: %w", translate(err))
	}
	return n, nil
}

// PurgeMessages implements notifications.NotifierStore. Each batch is one short statement
// (its own transaction) that deletes at most BatchSize rows; one replica purges at a time:
// a batch that cannot take the transaction-scoped advisory lock deletes nothing and ends
// the call.
func (s *Store) PurgeMessages(ctx context.Context, p driver.PurgeParams) (int, error) {
	batch := p.BatchSize
	if batch <= 0 {
		batch = defaultPurgeBatch
	}
	total, err := s.purgeBatches(ctx, s.q.purge, p.MessagesOlderThan, batch, true)
	if err != nil {
		return total, xerrors.Errorf("purge messages: %w", err)
	}
	if p.ReadInboxOlderThan > 0 {
		n, err := s.purgeBatches(ctx, s.q.purgeInbox, p.ReadInboxOlderThan, batch, false)
		total += n
		if err != nil {
			return total, xerrors.Errorf("purge read inbox items: %w", err)
		}
	}
	return total, nil
}

// purgeBatches runs batches of a purge statement until one deletes fewer than batch rows.
// The message purge (cursor) also takes and returns the (created_at, seq) position of a
// batch's last row, so that each batch starts where the previous one ended.
func (s *Store) purgeBatches(ctx context.Context, query string, olderThan time.Duration, batch int, cursor bool) (int, error) {
	total := 0
	after := pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	var afterSeq int64
	for {
		var got bool
		var n int
		args := []any{s.now(), olderThan.Microseconds(), "notifications.purge." + s.o.schema, batch}
		dest := []any{&got, &n}
		if cursor {
			args, dest = append(args, after, afterSeq), append(dest, &after, &afterSeq)
		}
		if err := s.queryRowHot(ctx, s.db, noJIT, query, args, dest...); err != nil {
			return total, translate(err)
		}
		total += n
		if !got || n < batch {
			return total, nil
		}
	}
}

// enqueueBatch stores every message or none: one statement on db inserts every row and
// checks templates and preferences (from copyEnqueueMin messages, enqueueCopy). On the
// store's pool, when the store is idle (claimInlineWake) and the batch is smaller than
// copyEnqueueMin, the statement's implicit transaction carries the wake-up NOTIFY itself
// and woke reports it; otherwise the caller wakes the notifiers once the messages are
// committed (wakeAfterEnqueue).
func (s *Store) enqueueBatch(ctx context.Context, db dbtx, msgs []driver.NewMessage) (woke bool, err error) {
	if len(msgs) == 0 {
		return false, nil
	}
	for i := range msgs {
		if err := checkNewMessage(i, &msgs[i]); err != nil {
			return false, err
		}
	}
	n := len(msgs)
	if n >= copyEnqueueMin {
		return false, s.enqueueCopy(ctx, db, msgs)
	}
	// On the store's pool, an enqueue runs without JIT, and a small one on its statement's
	// generic plan (see noJITGeneric); a larger batch keeps the plan made for its arrays.
	pre := noJIT
	if n <= genericEnqueueMax {
		pre = noJITGeneric
	}
	if s.ownPool(db) && s.claimInlineWake() {
		pre, woke = s.wakingIfStored(pre, msgs[0].ID), true
	}
	query := func(sql string, args []any, dest ...any) error {
		return s.queryRowHot(ctx, db, pre, sql, args, dest...)
	}
	if n == 1 {
		m := &msgs[0]
		var missing, disabled bool
		var inserted int
		err := query(s.q.enqueueOne, []any{s.now(), m.ID.String(), m.TemplateID.String(), m.UserID.String(), m.Method,
			string(m.Payload), uuidArrayLiteral(m.Targets), m.CreatedBy, dedupeKeyArg(&m.DedupeKey)}, &missing, &disabled, &inserted)
		switch {
		case err != nil:
			return false, xerrors.Errorf("enqueue messages: %w", translate(err))
		case missing || disabled:
			return false, enqueueRefusal(&m.TemplateID, &m.UserID, &missing)
		case inserted != 1:
			return false, xerrors.Errorf("enqueue messages: inserted %d of 1 rows", inserted)
		}
		return woke, nil
	}
	ids, tmpls, users := make([]string, n), make([]string, n), make([]string, n)
	methods, payloads, targets, createdBy, keys := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	for i := range msgs {
		// PostgreSQL validates the JSON (the column is json); invalid JSON is translated to
		// ErrInvalidMessage and the whole batch is refused.
		m := &msgs[i]
		ids[i], tmpls[i], users[i], methods[i] = m.ID.String(), m.TemplateID.String(), m.UserID.String(), m.Method
		payloads[i], targets[i], createdBy[i], keys[i] = string(m.Payload), uuidArrayLiteral(m.Targets), m.CreatedBy, dedupeKeyArg(&m.DedupeKey)
	}
	var (
		badTemplate, badUser *uuid.UUID
		missing              *bool
		inserted             int
	)
	if err := query(s.q.enqueue, []any{s.now(), ids, tmpls, users, methods, payloads, targets, createdBy, keys},
		&badTemplate, &badUser, &missing, &inserted); err != nil {
		return false, xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	if badTemplate != nil {
		return false, enqueueRefusal(badTemplate, badUser, missing)
	}
	if inserted != n {
		return false, xerrors.Errorf("enqueue messages: inserted %d of %d rows", inserted, n)
	}
	return woke, nil
}

// dedupeKeyArg is a message's dedupe key as the enqueue statements take it: NULL when
// there is none.
func dedupeKeyArg(key *string) *string {
	if *key == "" {
		return nil
	}
	return key
}

// enqueueRefusal is the error of an enqueue refused by the store's check: the template of
// user's message is missing or deleted (missing), or the user disabled it.
func enqueueRefusal(template, user *uuid.UUID, missing *bool) error {
	if missing != nil && *missing {
		return xerrors.Errorf("enqueue messages: template %s: %w", *template, notifications.ErrNotFound)
	}
	return xerrors.Errorf("enqueue messages: template %s for user %s: %w", *template, *user, notifications.ErrCannotEnqueueDisabledNotification)
}

// checkNewMessage refuses message i of a batch when PostgreSQL could not store it or it
// lacks a field; the strings for the error are built only then.
func checkNewMessage(i int, m *driver.NewMessage) error {
	if m.ID == uuid.Nil || m.UserID == uuid.Nil || m.TemplateID == uuid.Nil {
		return xerrors.Errorf("enqueue message %d: ID, UserID and TemplateID must be set: %w", i, notifications.ErrInvalidMessage)
	}
	if m.Method == "" {
		return xerrors.Errorf("enqueue message %s: Method must be set: %w", m.ID, notifications.ErrInvalidMessage)
	}
	if len(m.Payload) == 0 {
		return xerrors.Errorf("enqueue message %s: payload is empty: %w", m.ID, notifications.ErrInvalidMessage)
	}
	if strings.IndexByte(m.Method, 0) >= 0 || strings.IndexByte(m.CreatedBy, 0) >= 0 || strings.IndexByte(m.DedupeKey, 0) >= 0 ||
		bytes.IndexByte(m.Payload, 0) >= 0 {
		return refuseNUL("enqueue message "+m.ID.String(), m.Method, m.CreatedBy, m.DedupeKey, string(m.Payload))
	}
	return nil
}

// wakeAfterEnqueue wakes the notifiers once enqueued messages are committed: at once
// outside a transaction (Wake); inside one (InTx, WithTx), a wake-up TxWakeDelay later.
func (s *Store) wakeAfterEnqueue() {
	if s.inTx {
		s.wakeLater()
	} else {
		s.Wake()
	}
}

func uuidArrayLiteral(ids []uuid.UUID) string { return arrayLiteral(ids, uuid.UUID.String) }

// arrayLiteral is a PostgreSQL array literal of xs, each element written by elem.
func arrayLiteral[T any](xs []T, elem func(T) string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(elem(x))
	}
	b.WriteByte('}')
	return b.String()
}

// channel is the LISTEN/NOTIFY channel of this schema.
func (s *Store) channel() string { return s.o.schema + ".wake" }

// Template implements notifications.EnqueueStore.
func (s *Store) Template(ctx context.Context, id uuid.UUID) (notifications.Template, error) {
	t, err := scanTemplate(s.db.QueryRow(ctx, s.q.template, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, xerrors.Errorf("get template %s: %w", id, notifications.ErrNotFound)
	}
	if err != nil {
		return t, xerrors.Errorf("get template %s: %w", id, translate(err))
	}
	return t, nil
}

// scanTemplate reads the templateColumns of one row.
func scanTemplate(row pgx.Row) (notifications.Template, error) {
	var t notifications.Template
	var actions []byte
	var methods, exclude []string
	err := row.Scan(&t.ID, &t.Name, &t.Group, &t.Kind, &t.TitleTemplate, &t.BodyTemplate,
		&actions, &methods, &exclude, &t.EnabledByDefault)
	if err != nil {
		return t, err
	}
	t.Methods, t.ExcludeMethods = toMethods(methods), toMethods(exclude)
	if err := json.Unmarshal(actions, &t.Actions); err != nil {
		return t, xerrors.Errorf("decode actions: %w", err)
	}
	return t, nil
}

func toMethods(ms []string) []notifications.Method {
	if len(ms) == 0 {
		return nil
	}
	out := make([]notifications.Method, len(ms))
	for i, m := range ms {
		out[i] = notifications.Method(m)
	}
	return out
}

// textArrayLiteral is a text[] literal of ms, each element quoted: arrays of arrays cannot
// be unnested, so each template's methods travel as one text value cast to text[].
func textArrayLiteral(ms []notifications.Method) string {
	return arrayLiteral(ms, func(m notifications.Method) string { return `"` + arrayElemEscaper.Replace(string(m)) + `"` })
}

// arrayElemEscaper escapes a quoted element of an array literal.
var arrayElemEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

type storedAction struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// UpsertTemplates implements notifications.TemplateStore: all templates or none.
func (s *Store) UpsertTemplates(ctx context.Context, templates ...notifications.Template) error {
	if len(templates) == 0 {
		return nil
	}
	if err := storecheck.TemplateBatch(templates); err != nil {
		return xerrors.Errorf("upsert templates: %w", err)
	}
	n := len(templates)
	ids := make([]string, n)
	names, groups, kinds, titles, bodies, actions, methods := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	methodSets, excludeSets := make([]string, n), make([]string, n)
	enabled := make([]bool, n)
	for i, t := range templates {
		// The method column is what replicas of schema version 4 read: a template's only method.
		method := ""
		if len(t.Methods) == 1 {
			method = string(t.Methods[0])
		}
		acts := make([]storedAction, len(t.Actions))
		for j, a := range t.Actions {
			acts[j] = storedAction(a)
		}
		b, err := json.Marshal(acts)
		if err != nil {
			return xerrors.Errorf("upsert templates: encode actions of %q: %w", t.Name, err)
		}
		if err := refuseNUL("upsert template "+t.ID.String(), t.Name, t.Group, t.Kind, t.TitleTemplate, t.BodyTemplate,
			textArrayLiteral(t.Methods), textArrayLiteral(t.ExcludeMethods)); err != nil {
			return err
		}
		methodSets[i], excludeSets[i] = textArrayLiteral(t.Methods), textArrayLiteral(t.ExcludeMethods)
		ids[i], names[i], groups[i], kinds[i] = t.ID.String(), t.Name, t.Group, t.Kind
		titles[i], bodies[i], actions[i], methods[i], enabled[i] = t.TitleTemplate, t.BodyTemplate, string(b), method, t.EnabledByDefault
	}
	if _, err := s.db.Exec(ctx, s.q.upsertTemplates, s.now(), ids, names, groups, kinds, titles, bodies, actions, methods, enabled,
		methodSets, excludeSets); err != nil {
		return xerrors.Errorf("upsert templates: %w", translate(err))
	}
	return nil
}

// messageColumns are the columns scanMessage reads, over a row aliased m, as the API
// reports them: a message leased in place is leased (statusExpr), its UpdatedAt is its
// lease time (leasedAtExpr) and it has no retry time, as when a lease set them.
const messageColumns = `m.id, m.template_id, m.user_id, m.method, ` + statusExpr + `, m.status_reason, m.attempt_count, m.payload::text, m.targets,
	m.created_by, m.created_at, ` + leasedAtExpr + `, m.leased_by, m.leased_until,
	CASE WHEN m.leased_by IS NULL THEN m.next_retry_after END, m.sent_at`

// scanMessage reads the messageColumns of one row, then extra.
func scanMessage(row pgx.Row, extra ...any) (notifications.Message, error) {
	var m notifications.Message
	var method, status, payload string
	var leasedBy *uuid.UUID
	var leasedUntil, retry, sent *time.Time
	err := row.Scan(append([]any{&m.ID, &m.TemplateID, &m.UserID, &method, &status, &m.StatusReason, &m.AttemptCount, &payload, &m.Targets,
		&m.CreatedBy, &m.CreatedAt, &m.UpdatedAt, &leasedBy, &leasedUntil, &retry, &sent}, extra...)...)
	if err != nil {
		return m, err
	}
	m.Method, m.Status, m.Payload = notifications.Method(method), notifications.Status(status), []byte(payload)
	if leasedBy != nil {
		m.LeasedBy = *leasedBy
	}
	m.LeasedUntil, m.NextRetryAfter, m.SentAt = deref(leasedUntil), deref(retry), deref(sent)
	return m, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// Message implements notifications.Store.
func (s *Store) Message(ctx context.Context, id uuid.UUID) (notifications.Message, error) {
	m, err := scanMessage(s.db.QueryRow(ctx, s.q.message, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, xerrors.Errorf("get message %s: %w", id, notifications.ErrNotFound)
	}
	if err != nil {
		return m, xerrors.Errorf("get message %s: %w", id, translate(err))
	}
	return m, nil
}

// CountByStatus implements notifications.Store.
func (s *Store) CountByStatus(ctx context.Context) (map[notifications.Status]int, error) {
	counts, err := countBy[notifications.Status](ctx, s.db, s.q.countByStatus)
	if err != nil {
		return nil, xerrors.Errorf("count messages: %w", err)
	}
	return counts, nil
}

// SetPaused implements notifications.Store.
func (s *Store) SetPaused(ctx context.Context, paused bool) error {
	if _, err := s.db.Exec(ctx, s.q.setPaused, paused); err != nil {
		return xerrors.Errorf("set paused: %w", translate(err))
	}
	return nil
}

// Paused implements notifications.Store.
func (s *Store) Paused(ctx context.Context) (bool, error) {
	var p bool
	if err := s.db.QueryRow(ctx, s.q.paused).Scan(&p); err != nil {
		return false, xerrors.Errorf("get paused: %w", translate(err))
	}
	return p, nil
}

// MaxSchemaLen is the longest schema name, in bytes, that a store accepts: PostgreSQL limits
// identifiers, and so NOTIFY channel names, to 63 bytes, and the longest channel the store
// uses is "<schema>.inbox".
const MaxSchemaLen = 57

// defaultPurgeBatch is the purge batch size when PurgeParams.BatchSize is 0.
const defaultPurgeBatch = 1000

// refuseNUL refuses text with a NUL byte, which PostgreSQL text cannot hold; in the simple
// protocol it would not even reach the server as a data error.
func refuseNUL(what string, values ...string) error {
	for _, v := range values {
		if strings.IndexByte(v, 0) >= 0 {
			return xerrors.Errorf("%s: %q contains a NUL byte, which PostgreSQL text cannot hold: %w", what, v, notifications.ErrInvalidMessage)
		}
	}
	return nil
}

// PendingByMethod counts pending messages by method (notifications.Store), from
// the pending index.
func (s *Store) PendingByMethod(ctx context.Context) (map[notifications.Method]int, error) {
	counts, err := countBy[notifications.Method](ctx, s.db, s.q.pendingByMethod)
	if err != nil {
		return nil, xerrors.Errorf("count pending messages: %w", err)
	}
	return counts, nil
}

// countBy runs a "SELECT key, count(*) ... GROUP BY key" query.
func countBy[K ~string](ctx context.Context, db dbtx, query string) (map[K]int, error) {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := make(map[K]int)
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, xerrors.Errorf("scan: %w", err)
		}
		out[K(key)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}
