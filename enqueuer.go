package notifications

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/notifykit/notifications/driver"
	"golang.org/x/xerrors"
)

// Enqueuer turns "tell user U about event T" into stored messages. StoreEnqueuer is the
// implementation and notificationstest.FakeEnqueuer the fake for tests. Its Enqueue and
// EnqueueWithData match the well-known coder Enqueuer, so code written against that
// interface ports unchanged.
type Enqueuer interface {
	// Enqueue enqueues templateID for userID with labels and returns the IDs of the
	// messages created (one per delivery method).
	Enqueue(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error)
	// EnqueueWithData is Enqueue with structured data for templates and webhooks.
	EnqueueWithData(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, data map[string]any, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error)
	// Send enqueues each request on its own: one recipient's refusal does not stop the
	// others. It returns one SendResult per request, in request order; the error is for
	// the call as a whole (nothing stored).
	Send(ctx context.Context, reqs ...EnqueueRequest) ([]SendResult, error)
	// SendAtomic enqueues every request or none, and returns the message IDs in request
	// order.
	SendAtomic(ctx context.Context, reqs ...EnqueueRequest) ([]uuid.UUID, error)
	// SendTx is Send inside the host's database transaction tx (pgstore: a pgx.Tx).
	SendTx(ctx context.Context, tx any, reqs ...EnqueueRequest) ([]SendResult, error)
	// SendAtomicTx is SendAtomic inside the host's database transaction tx.
	SendAtomicTx(ctx context.Context, tx any, reqs ...EnqueueRequest) ([]uuid.UUID, error)
}

// SendResult is the outcome of one EnqueueRequest in Send.
type SendResult struct {
	// MessageIDs are the messages stored for the request, one per delivery method that
	// the recipient has enabled. They are UUIDv7 (RFC 9562) stamped with the enqueuer's
	// clock, so IDs from a later millisecond of that clock sort after earlier ones.
	MessageIDs []uuid.UUID
	// Err is why the request stored nothing, or why a method was refused for a reason
	// other than the recipient's preference (a duplicate, say). It names the request's
	// index and user and wraps ErrDuplicate, ErrCannotEnqueueDisabledNotification,
	// ErrNotFound, ErrInvalidMessage or ErrInvalidTemplate, or the RecipientLookup's
	// error.
	Err error
}

// RecipientLookup returns the recipient for a user ID, for enqueues that do not carry the
// recipient inline. Return an error wrapping ErrNotFound for an unknown user.
type RecipientLookup func(ctx context.Context, userID uuid.UUID) (Recipient, error)

// EnqueueRequest is one notification for one recipient.
type EnqueueRequest struct {
	TemplateID uuid.UUID
	// UserID identifies the recipient. Required.
	UserID uuid.UUID
	// Recipient, when set, is used as is; otherwise the enqueuer's RecipientLookup is asked.
	Recipient *Recipient
	Labels    map[string]string
	Data      map[string]any
	Targets   []uuid.UUID
	CreatedBy string
	// IdempotencyKey, when set, replaces the content-based dedupe: a second request with
	// the same key (and method) is refused with ErrDuplicate, whatever its content and day.
	IdempotencyKey string
}

// EnqueuerConfig configures a StoreEnqueuer. The zero value is usable.
type EnqueuerConfig struct {
	// Lookup resolves recipients for requests without an inline Recipient (and for
	// Enqueue/EnqueueWithData). Default: none; such requests fail.
	Lookup RecipientLookup
	// Clock stamps dedupe days and expires the template cache. Default (nil): the real
	// clock.
	Clock quartz.Clock
	// Registry holds the helpers action templates call: the one the templates were
	// registered with, and the Manager's. Default (nil): no helpers.
	Registry *Registry
	// DefaultMethods deliver templates that list no Methods (less their ExcludeMethods):
	// {MethodSMTP, MethodInbox} is email plus the in-app inbox. Empty is valid: then every
	// template must list its Methods, and one that does not is refused at enqueue with an
	// error naming it. Default: none.
	DefaultMethods []Method
	// TemplateCacheTTL is how long a template read from the store is reused. Default: 1m.
	TemplateCacheTTL time.Duration
}

// StoreEnqueuer is the Enqueuer that writes to an EnqueueStore.
type StoreEnqueuer struct {
	store EnqueueStore
	cfg   EnqueuerConfig
	cache *templateCache
}

var _ Enqueuer = (*StoreEnqueuer)(nil)

// NewStoreEnqueuer returns an Enqueuer writing to store.
func NewStoreEnqueuer(store EnqueueStore, cfg EnqueuerConfig) (*StoreEnqueuer, error) {
	if store == nil {
		return nil, xerrors.New("new enqueuer: store must not be nil")
	}
	seen := make(map[Method]bool, len(cfg.DefaultMethods))
	for i, m := range cfg.DefaultMethods {
		if m == "" || seen[m] {
			return nil, xerrors.Errorf("new enqueuer: EnqueuerConfig.DefaultMethods[%d] %q is empty or repeated: %w", i, m, ErrInvalidConfig)
		}
		seen[m] = true
	}
	cfg.DefaultMethods = slices.Clone(cfg.DefaultMethods)
	if cfg.Clock == nil {
		cfg.Clock = quartz.NewReal()
	}
	if cfg.TemplateCacheTTL <= 0 {
		cfg.TemplateCacheTTL = time.Minute
	}
	cfg.Registry = cfg.Registry.orDefault()
	return &StoreEnqueuer{
		store: store,
		cfg:   cfg,
		cache: &templateCache{m: make(map[uuid.UUID]cachedTemplate)},
	}, nil
}

// TxEnqueueStore is an EnqueueStore that can enqueue inside the host's own database
// transaction: what SendTx and SendAtomicTx need of the enqueuer's store. pgstore's Store
// is one (tx: a pgx.Tx); memstore's is not.
type TxEnqueueStore interface {
	EnqueueStore
	// InTx returns the store bound to tx, for the enqueues of one call, or an error that
	// names what tx is when the store cannot use it. The store it returns reads templates
	// and preferences in tx too, and must not be used after tx ends.
	InTx(tx any) (EnqueueStore, error)
}

// inTx returns an enqueuer sharing e's configuration and template cache that writes
// through e's store bound to tx.
func (e *StoreEnqueuer) inTx(tx any) (*StoreEnqueuer, error) {
	ts, ok := e.store.(TxEnqueueStore)
	if !ok {
		return nil, xerrors.Errorf("enqueue in a transaction: the store (%T) is not a TxEnqueueStore (it has no InTx method), so it cannot enqueue in the host's transaction", e.store)
	}
	store, err := ts.InTx(tx)
	if err != nil {
		return nil, xerrors.Errorf("enqueue in a transaction: %w", err)
	}
	c := *e
	c.store = store
	return &c, nil
}

// SendTx is Send inside the host's own database transaction tx (pgstore: a pgx.Tx), so
// that the messages commit or roll back with the host's writes. It reads templates and
// preferences in tx too. The store cannot see the commit, so it wakes notifiers a little
// later on its own (pgstore: TxWakeDelay); call the store's Wake after committing for the
// lowest latency. The store must be a TxEnqueueStore (pgstore's Store is); otherwise, or
// when tx is not a transaction the store can use, SendTx returns an error and stores
// nothing.
func (e *StoreEnqueuer) SendTx(ctx context.Context, tx any, reqs ...EnqueueRequest) ([]SendResult, error) {
	c, err := e.inTx(tx)
	if err != nil {
		return nil, err
	}
	return c.Send(ctx, reqs...)
}

// SendAtomicTx is SendAtomic inside the host's transaction tx, as SendTx.
func (e *StoreEnqueuer) SendAtomicTx(ctx context.Context, tx any, reqs ...EnqueueRequest) ([]uuid.UUID, error) {
	c, err := e.inTx(tx)
	if err != nil {
		return nil, err
	}
	return c.SendAtomic(ctx, reqs...)
}

// Enqueue implements Enqueuer. It returns the IDs of the messages stored, one per method
// the recipient has enabled, or the error that stored nothing (see SendResult.Err).
func (e *StoreEnqueuer) Enqueue(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error) {
	return e.EnqueueWithData(ctx, userID, templateID, labels, nil, createdBy, targets...)
}

// EnqueueWithData implements Enqueuer.
func (e *StoreEnqueuer) EnqueueWithData(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, data map[string]any, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error) {
	res, err := e.send(ctx, []EnqueueRequest{{
		TemplateID: templateID, UserID: userID, Labels: labels, Data: data, CreatedBy: createdBy, Targets: targets,
	}}, func(_ int, req EnqueueRequest, err error) error {
		return xerrors.Errorf("enqueue for user %s: %w", req.UserID, err)
	})
	if err != nil {
		return nil, err
	}
	return res[0].MessageIDs, res[0].Err
}

// Send implements Enqueuer: every request is enqueued on its own, so in a fan-out one
// recipient who disabled the template or already got it does not stop the others. A
// request stores one message per method the recipient has enabled; its SendResult.Err is
// set when it stored nothing, or when a method was refused for a reason other than the
// recipient's preference. The error is for the call as a whole (the store failed, the
// context ended): then nothing was stored.
func (e *StoreEnqueuer) Send(ctx context.Context, reqs ...EnqueueRequest) ([]SendResult, error) {
	return e.send(ctx, reqs, requestError)
}

// send is Send with wrap naming a request in its error.
func (e *StoreEnqueuer) send(ctx context.Context, reqs []EnqueueRequest, wrap func(i int, req EnqueueRequest, err error) error) ([]SendResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	results := make([]SendResult, len(reqs))
	msgs, owner := e.buildAll(ctx, reqs, results, wrap)
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("enqueue: %w", err)
	}
	if len(msgs) == 0 {
		return results, nil
	}
	refused, err := e.store.EnqueueMessages(ctx, msgs, false)
	if err != nil {
		return nil, xerrors.Errorf("enqueue: %w", err)
	}
	// Per request: what was stored, the first refusal that is not a preference, else the
	// first refusal when nothing was stored.
	firstOther := make([]error, len(reqs))
	firstAny := make([]error, len(reqs))
	for i, m := range msgs {
		r := owner[i]
		var rerr error
		if i < len(refused) {
			rerr = refused[i]
		}
		if rerr == nil {
			results[r].MessageIDs = append(results[r].MessageIDs, m.ID)
			continue
		}
		if firstAny[r] == nil {
			firstAny[r] = rerr
		}
		if firstOther[r] == nil && !errors.Is(rerr, ErrCannotEnqueueDisabledNotification) {
			firstOther[r] = rerr
		}
	}
	for r := range results {
		switch {
		case results[r].Err != nil:
		case firstOther[r] != nil:
			results[r].Err = wrap(r, reqs[r], firstOther[r])
		case len(results[r].MessageIDs) == 0 && firstAny[r] != nil:
			results[r].Err = wrap(r, reqs[r], firstAny[r])
		}
	}
	return results, nil
}

// SendAtomic enqueues every request or none: any refusal (a duplicate, a recipient who
// disabled the template for one of its methods, an invalid request) stores nothing and
// returns an error naming the first refused request. It returns the message IDs in request
// order, one per delivery method of each request. Use it where a partial enqueue would be
// wrong; use Send for fan-out, and inside a host transaction whose work must not be
// undone because a recipient turned a method off.
func (e *StoreEnqueuer) SendAtomic(ctx context.Context, reqs ...EnqueueRequest) ([]uuid.UUID, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	results := make([]SendResult, len(reqs))
	msgs, owner := e.buildAll(ctx, reqs, results, requestError)
	for _, r := range results {
		if r.Err != nil {
			return nil, xerrors.Errorf("enqueue: %w", r.Err)
		}
	}
	refused, err := e.store.EnqueueMessages(ctx, msgs, true)
	if err != nil {
		for i, rerr := range refused {
			if rerr != nil {
				return nil, xerrors.Errorf("enqueue: %w", requestError(owner[i], reqs[owner[i]], rerr))
			}
		}
		return nil, xerrors.Errorf("enqueue: %w", err)
	}
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids, nil
}

// buildAll builds the messages of every request, recording a request's build error in
// results, and returns the messages with the index of the request each belongs to.
func (e *StoreEnqueuer) buildAll(ctx context.Context, reqs []EnqueueRequest, results []SendResult, wrap func(int, EnqueueRequest, error) error) ([]driver.NewMessage, []int) {
	now := e.cfg.Clock.Now("Enqueuer")
	day := now.UTC().Format(time.DateOnly)
	msgs := make([]driver.NewMessage, 0, len(reqs)*2)
	owner := make([]int, 0, len(reqs)*2)
	for i, req := range reqs {
		built, err := e.build(ctx, req, now, day)
		if err != nil {
			results[i].Err = wrap(i, req, err)
			continue
		}
		for range built {
			owner = append(owner, i)
		}
		msgs = append(msgs, built...)
	}
	return msgs, owner
}

func requestError(i int, req EnqueueRequest, err error) error {
	return xerrors.Errorf("request %d (user %s): %w", i, req.UserID, err)
}

// Methods returns the methods t is delivered by with this enqueuer's DefaultMethods, or
// an error naming the template when there are none.
func (e *StoreEnqueuer) Methods(t Template) ([]Method, error) {
	if len(t.Methods) > 0 {
		return slices.Clone(t.Methods), nil
	}
	var out []Method
	for _, m := range e.cfg.DefaultMethods {
		if !slices.Contains(t.ExcludeMethods, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, xerrors.Errorf("template %q lists no Methods and EnqueuerConfig.DefaultMethods %v (less ExcludeMethods %v) leave none: %w",
			t.Name, e.cfg.DefaultMethods, t.ExcludeMethods, ErrInvalidTemplate)
	}
	return out, nil
}

func (e *StoreEnqueuer) build(ctx context.Context, req EnqueueRequest, now time.Time, day string) ([]driver.NewMessage, error) {
	if req.TemplateID == uuid.Nil {
		return nil, xerrors.Errorf("TemplateID must be set: %w", ErrInvalidMessage)
	}
	if req.UserID == uuid.Nil {
		return nil, xerrors.Errorf("UserID must be set: %w", ErrInvalidMessage)
	}
	tmpl, err := e.template(ctx, req.TemplateID, now)
	if err != nil {
		return nil, err
	}
	var rcpt Recipient
	switch {
	case req.Recipient != nil:
		rcpt = *req.Recipient
		if rcpt.UserID != uuid.Nil && rcpt.UserID != req.UserID {
			return nil, xerrors.Errorf("Recipient.UserID %s differs from UserID %s: %w", rcpt.UserID, req.UserID, ErrInvalidMessage)
		}
		rcpt.UserID = req.UserID
	case e.cfg.Lookup != nil:
		rcpt, err = e.cfg.Lookup(ctx, req.UserID)
		if err != nil {
			return nil, xerrors.Errorf("look up recipient %s: %w", req.UserID, err)
		}
		rcpt.UserID = req.UserID
	default:
		return nil, xerrors.Errorf("request for user %s has no Recipient and the enqueuer has no Lookup: %w", req.UserID, ErrInvalidMessage)
	}

	if err := checkUserValues(req, rcpt); err != nil {
		return nil, err
	}
	name := rcpt.Name
	if name == "" {
		name = rcpt.Username
	}
	payload := MessagePayload{
		Version:                PayloadVersion,
		NotificationName:       tmpl.Name,
		NotificationTemplateID: tmpl.ID.String(),
		UserID:                 rcpt.UserID.String(),
		UserEmail:              rcpt.Email,
		UserName:               name,
		UserUsername:           rcpt.Username,
		Labels:                 req.Labels,
		Data:                   req.Data,
		Targets:                req.Targets,
	}
	actions, err := e.cfg.Registry.render.actions(tmpl, payload)
	if err != nil {
		return nil, err
	}
	payload.Actions = actions
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, xerrors.Errorf("encode payload: %v: %w", err, ErrInvalidMessage)
	}
	if len(raw) > MaxPayloadBytes {
		return nil, xerrors.Errorf("payload is %d bytes, over the limit of %d (MaxPayloadBytes): %w", len(raw), MaxPayloadBytes, ErrInvalidMessage)
	}

	methods, err := e.Methods(tmpl)
	if err != nil {
		return nil, err
	}
	out := make([]driver.NewMessage, 0, len(methods))
	for _, m := range methods {
		out = append(out, driver.NewMessage{
			ID:         driver.NewMessageID(now),
			TemplateID: tmpl.ID,
			UserID:     req.UserID,
			Method:     string(m),
			Payload:    raw,
			Targets:    req.Targets,
			CreatedBy:  req.CreatedBy,
			DedupeKey:  dedupeKey(req, m, raw, day),
		})
	}
	return out, nil
}

// dedupeKey identifies a message for deduplication: the idempotency key and method when
// given, otherwise the content (template, user, method, payload, targets) and UTC day.
func dedupeKey(req EnqueueRequest, method Method, payload []byte, day string) string {
	// The same bytes as before, hashed without building strings: one allocation, the key.
	var buf [160]byte
	b := buf[:0]
	var sum [sha256.Size]byte
	if req.IdempotencyKey != "" {
		b = append(append(append(append(b, "key\x00"...), req.IdempotencyKey...), 0), method...)
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		b = append(b, "content\x00"...)
		b = appendUUID(b, req.TemplateID)
		b = append(b, 0)
		b = appendUUID(b, req.UserID)
		b = append(append(append(b, 0), method...), 0)
		h.Write(b)
		h.Write(payload) // carries labels, data and targets
		h.Write(append(append(b[:0], 0), day...))
		h.Sum(sum[:0])
	}
	var key [2 * sha256.Size]byte
	hex.Encode(key[:], sum[:])
	return string(key[:])
}

// appendUUID appends id's canonical text (as uuid.UUID.String writes it) to b.
func appendUUID(b []byte, id uuid.UUID) []byte {
	var s [36]byte
	hex.Encode(s[0:8], id[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], id[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], id[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], id[8:10])
	s[23] = '-'
	hex.Encode(s[24:], id[10:])
	return append(b, s[:]...)
}

type cachedTemplate struct {
	t       Template
	expires time.Time
}

type templateCache struct {
	mu sync.Mutex
	m  map[uuid.UUID]cachedTemplate
}

func (e *StoreEnqueuer) template(ctx context.Context, id uuid.UUID, now time.Time) (Template, error) {
	e.cache.mu.Lock()
	c, ok := e.cache.m[id]
	e.cache.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.t, nil
	}
	t, err := e.store.Template(ctx, id)
	if err != nil {
		return Template{}, xerrors.Errorf("get template %s: %w", id, err)
	}
	e.cache.mu.Lock()
	e.cache.m[id] = cachedTemplate{t: t, expires: now.Add(e.cfg.TemplateCacheTTL)}
	e.cache.mu.Unlock()
	return t, nil
}
