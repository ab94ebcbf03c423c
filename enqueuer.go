package notifications

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"text/template"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// Enqueuer turns "tell user U about event T" into stored messages. Its method set matches
// the well-known coder Enqueuer, so code written against that interface ports unchanged.
type Enqueuer interface {
	// Enqueue enqueues templateID for userID with labels and returns the IDs of the
	// messages created (one per delivery method).
	Enqueue(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error)
	// EnqueueWithData is Enqueue with structured data for templates and webhooks.
	EnqueueWithData(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, data map[string]any, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error)
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

// EnqueuerOptions configure a StoreEnqueuer. The zero value is usable.
type EnqueuerOptions struct {
	// Lookup resolves recipients for requests without an inline Recipient (and for
	// Enqueue/EnqueueWithData). Default: none; such requests fail.
	Lookup RecipientLookup
	// Clock stamps dedupe days and expires the template cache. Default: the real clock.
	Clock quartz.Clock
	// Helpers are the host functions available to action templates. Default: none.
	Helpers template.FuncMap
	// Inbox also delivers every notification to the in-app inbox (method "inbox") besides
	// its own method. Default: false.
	Inbox bool
	// TemplateCacheTTL is how long a template read from the store is reused. Default: 1m.
	TemplateCacheTTL time.Duration
}

// StoreEnqueuer is the Enqueuer that writes to an EnqueueStore.
type StoreEnqueuer struct {
	store  EnqueueStore
	method Method
	opts   EnqueuerOptions
	render *renderer
	cache  *templateCache
}

var _ Enqueuer = (*StoreEnqueuer)(nil)

// NewStoreEnqueuer returns an Enqueuer writing to store. cfg.Method is the method used for
// templates that do not name one.
func NewStoreEnqueuer(cfg Config, store EnqueueStore, opts EnqueuerOptions) (*StoreEnqueuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, xerrors.Errorf("new enqueuer: %w", err)
	}
	if store == nil {
		return nil, xerrors.New("new enqueuer: store must not be nil")
	}
	if opts.Clock == nil {
		opts.Clock = quartz.NewReal()
	}
	if opts.TemplateCacheTTL <= 0 {
		opts.TemplateCacheTTL = time.Minute
	}
	return &StoreEnqueuer{
		store:  store,
		method: cfg.Method,
		opts:   opts,
		render: newRenderer(opts.Helpers),
		cache:  &templateCache{m: make(map[uuid.UUID]cachedTemplate)},
	}, nil
}

// WithStore returns an enqueuer that shares e's configuration and template cache but writes
// to store: pass a transaction-bound store (pgstore's WithTx) to enqueue inside the
// caller's transaction.
func (e *StoreEnqueuer) WithStore(store EnqueueStore) *StoreEnqueuer {
	c := *e
	c.store = store
	return &c
}

// Enqueue implements Enqueuer.
func (e *StoreEnqueuer) Enqueue(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error) {
	return e.EnqueueWithData(ctx, userID, templateID, labels, nil, createdBy, targets...)
}

// EnqueueWithData implements Enqueuer.
func (e *StoreEnqueuer) EnqueueWithData(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, data map[string]any, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error) {
	return e.Send(ctx, EnqueueRequest{
		TemplateID: templateID, UserID: userID, Labels: labels, Data: data, CreatedBy: createdBy, Targets: targets,
	})
}

// Send enqueues every request atomically: all messages are stored, or none (and the error
// says which request failed). It returns the message IDs in request order, one per
// delivery method of each request.
func (e *StoreEnqueuer) Send(ctx context.Context, reqs ...EnqueueRequest) ([]uuid.UUID, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	now := e.opts.Clock.Now("Enqueuer")
	day := now.UTC().Format(time.DateOnly)
	msgs := make([]NewMessage, 0, len(reqs)*2)
	for i, req := range reqs {
		built, err := e.build(ctx, req, now, day)
		if err != nil {
			if len(reqs) > 1 {
				return nil, xerrors.Errorf("enqueue request %d: %w", i, err)
			}
			return nil, xerrors.Errorf("enqueue: %w", err)
		}
		msgs = append(msgs, built...)
	}
	if err := e.store.EnqueueMessages(ctx, msgs); err != nil {
		return nil, xerrors.Errorf("enqueue: %w", err)
	}
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids, nil
}

func (e *StoreEnqueuer) build(ctx context.Context, req EnqueueRequest, now time.Time, day string) ([]NewMessage, error) {
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
	case e.opts.Lookup != nil:
		rcpt, err = e.opts.Lookup(ctx, req.UserID)
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
	actions, err := e.render.actions(tmpl, payload)
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

	method := e.method
	if tmpl.Method != "" {
		method = tmpl.Method
	}
	methods := []Method{method}
	if e.opts.Inbox && method != MethodInbox {
		methods = append(methods, MethodInbox)
	}
	out := make([]NewMessage, 0, len(methods))
	for _, m := range methods {
		out = append(out, NewMessage{
			ID:         uuid.New(),
			TemplateID: tmpl.ID,
			UserID:     req.UserID,
			Method:     m,
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
	h := sha256.New()
	if req.IdempotencyKey != "" {
		h.Write([]byte("key\x00" + req.IdempotencyKey + "\x00" + string(method)))
	} else {
		h.Write([]byte("content\x00" + req.TemplateID.String() + "\x00" + req.UserID.String() + "\x00" + string(method) + "\x00"))
		h.Write(payload) // carries labels, data and targets
		h.Write([]byte("\x00" + day))
	}
	return hex.EncodeToString(h.Sum(nil))
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
	e.cache.m[id] = cachedTemplate{t: t, expires: now.Add(e.opts.TemplateCacheTTL)}
	e.cache.mu.Unlock()
	return t, nil
}
