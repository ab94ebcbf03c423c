// Package notificationstest helps test code that uses notifications: a fake Enqueuer that
// records calls, a recording Handler with programmable outcomes, and the Store conformance
// suite that every Store implementation runs.
package notificationstest

import (
	"context"
	"fmt"
	"sync"
	"text/template"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/signal"
)

// Delivery is one call of a RecordingHandler's DeliveryFunc.
type Delivery struct {
	MsgID   uuid.UUID
	Payload notifications.MessagePayload
	Title   string
	Body    string
}

// RecordingHandler is a notifications.Handler that records every delivery and answers with
// Outcome (success when Outcome is nil). Safe for concurrent use.
type RecordingHandler struct {
	// Outcome decides each delivery's result. It runs inside the DeliveryFunc with its
	// context, so it may block on ctx to simulate a slow receiver.
	Outcome func(ctx context.Context, d Delivery) (retryable bool, err error)

	mu sync.Mutex
	// deliveries holds every delivery in call order, in chunks that each double the last
	// (up to maxDeliveryChunk), so that recording never copies earlier deliveries.
	deliveries [][]Delivery
	total      int
	changed    signal.Signal
}

const maxDeliveryChunk = 4096

// NewRecordingHandler returns a handler whose deliveries succeed unless outcome says
// otherwise (outcome may be nil).
func NewRecordingHandler(outcome func(ctx context.Context, d Delivery) (retryable bool, err error)) *RecordingHandler {
	return &RecordingHandler{Outcome: outcome}
}

var _ notifications.Handler = (*RecordingHandler)(nil)

// Dispatcher implements notifications.Handler.
func (h *RecordingHandler) Dispatcher(payload notifications.MessagePayload, title, body string, _ template.FuncMap) (notifications.DeliveryFunc, error) {
	return func(ctx context.Context, msgID uuid.UUID) (bool, error) {
		d := Delivery{MsgID: msgID, Payload: payload, Title: title, Body: body}
		h.mu.Lock()
		h.record(d)
		h.mu.Unlock()
		h.changed.Broadcast()
		if h.Outcome == nil {
			return false, nil
		}
		return h.Outcome(ctx, d)
	}, nil
}

// Deliveries returns every delivery so far, in call order.
func (h *RecordingHandler) Deliveries() []Delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Delivery
	if h.total > 0 {
		out = make([]Delivery, 0, h.total)
	}
	for _, chunk := range h.deliveries {
		out = append(out, chunk...)
	}
	return out
}

// record appends d; callers hold h.mu.
func (h *RecordingHandler) record(d Delivery) {
	last := len(h.deliveries) - 1
	if last < 0 || len(h.deliveries[last]) == cap(h.deliveries[last]) {
		size := 16
		if last >= 0 {
			size = min(2*cap(h.deliveries[last]), maxDeliveryChunk)
		}
		h.deliveries = append(h.deliveries, make([]Delivery, 0, size))
		last++
	}
	h.deliveries[last] = append(h.deliveries[last], d)
	h.total++
}

// Count returns how many deliveries were made for msgID.
func (h *RecordingHandler) Count(msgID uuid.UUID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, chunk := range h.deliveries {
		for _, d := range chunk {
			if d.MsgID == msgID {
				n++
			}
		}
	}
	return n
}

// WaitForDeliveries blocks until at least n deliveries were made or ctx ends.
func (h *RecordingHandler) WaitForDeliveries(ctx context.Context, n int) error {
	if err := h.changed.Wait(ctx, func() bool { return h.count() >= n }); err != nil {
		return xerrors.Errorf("wait for %d deliveries (have %d): %w", n, h.count(), err)
	}
	return nil
}

func (h *RecordingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Notification is one request recorded by FakeEnqueuer: a call records one per request it
// accepts.
type Notification struct {
	UserID, TemplateID uuid.UUID
	Labels             map[string]string
	Data               map[string]any
	CreatedBy          string
	Targets            []uuid.UUID
	// Request is the whole request (its IdempotencyKey, its inline Recipient).
	Request notifications.EnqueueRequest
	// Tx is the transaction passed to SendTx or SendAtomicTx, nil outside one.
	Tx any
}

// FakeEnqueuer is a notifications.Enqueuer that records calls instead of storing messages.
// Set Err to make every call fail, Refuse to refuse some requests. Safe for concurrent use.
type FakeEnqueuer struct {
	Err error
	// Refuse, when set, is asked about every request; an error refuses it (Send reports
	// it in the request's SendResult, Enqueue returns it) and it is not recorded.
	Refuse func(notifications.EnqueueRequest) error

	mu   sync.Mutex
	sent []Notification
}

var _ notifications.Enqueuer = (*FakeEnqueuer)(nil)

// Enqueue implements notifications.Enqueuer.
func (f *FakeEnqueuer) Enqueue(ctx context.Context, userID, templateID uuid.UUID, labels map[string]string, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error) {
	return f.EnqueueWithData(ctx, userID, templateID, labels, nil, createdBy, targets...)
}

// EnqueueWithData implements notifications.Enqueuer.
func (f *FakeEnqueuer) EnqueueWithData(_ context.Context, userID, templateID uuid.UUID, labels map[string]string, data map[string]any, createdBy string, targets ...uuid.UUID) ([]uuid.UUID, error) {
	res, err := f.Send(context.Background(), notifications.EnqueueRequest{
		UserID: userID, TemplateID: templateID, Labels: labels, Data: data, CreatedBy: createdBy, Targets: targets,
	})
	if err != nil {
		return nil, err
	}
	return res[0].MessageIDs, res[0].Err
}

// Send implements notifications.Enqueuer: it records each request that Refuse accepts and
// returns one message ID for it (or Err for the call).
func (f *FakeEnqueuer) Send(_ context.Context, reqs ...notifications.EnqueueRequest) ([]notifications.SendResult, error) {
	return f.send(nil, reqs)
}

// SendTx implements notifications.Enqueuer like Send, recording tx.
func (f *FakeEnqueuer) SendTx(_ context.Context, tx any, reqs ...notifications.EnqueueRequest) ([]notifications.SendResult, error) {
	return f.send(tx, reqs)
}

// SendAtomic implements notifications.Enqueuer: it records every request, or none when
// Refuse refuses one (then it returns that refusal, naming the request).
func (f *FakeEnqueuer) SendAtomic(_ context.Context, reqs ...notifications.EnqueueRequest) ([]uuid.UUID, error) {
	return f.sendAtomic(nil, reqs)
}

// SendAtomicTx implements notifications.Enqueuer like SendAtomic, recording tx.
func (f *FakeEnqueuer) SendAtomicTx(_ context.Context, tx any, reqs ...notifications.EnqueueRequest) ([]uuid.UUID, error) {
	return f.sendAtomic(tx, reqs)
}

func (f *FakeEnqueuer) send(tx any, reqs []notifications.EnqueueRequest) ([]notifications.SendResult, error) {
	if f.Err != nil {
		return nil, f.Err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]notifications.SendResult, len(reqs))
	for i, r := range reqs {
		if f.Refuse != nil {
			if err := f.Refuse(r); err != nil {
				out[i].Err = err
				continue
			}
		}
		f.record(tx, r)
		out[i].MessageIDs = []uuid.UUID{uuid.New()}
	}
	return out, nil
}

func (f *FakeEnqueuer) sendAtomic(tx any, reqs []notifications.EnqueueRequest) ([]uuid.UUID, error) {
	if f.Err != nil {
		return nil, f.Err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Refuse != nil {
		for i, r := range reqs {
			if err := f.Refuse(r); err != nil {
				return nil, fmt.Errorf("enqueue: request %d (user %s): %w", i, r.UserID, err)
			}
		}
	}
	ids := make([]uuid.UUID, len(reqs))
	for i, r := range reqs {
		f.record(tx, r)
		ids[i] = uuid.New()
	}
	return ids, nil
}

// record appends r; f.mu is held.
func (f *FakeEnqueuer) record(tx any, r notifications.EnqueueRequest) {
	f.sent = append(f.sent, Notification{UserID: r.UserID, TemplateID: r.TemplateID, Labels: r.Labels, Data: r.Data,
		CreatedBy: r.CreatedBy, Targets: r.Targets, Request: r, Tx: tx})
}

// Sent returns the recorded requests in order.
func (f *FakeEnqueuer) Sent() []Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Notification(nil), f.sent...)
}
