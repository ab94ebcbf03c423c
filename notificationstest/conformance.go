package notificationstest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// NewStoreFunc returns a new, empty store whose notion of "now" comes from clk.
type NewStoreFunc func(t *testing.T, clk quartz.Clock) notifications.Store

const (
	suiteLease    = 2 * time.Minute
	suiteAttempts = 3
)

// suiteMethods are the methods the suite's notifiers lease: its messages are webhooks.
var suiteMethods = []notifications.Method{notifications.MethodWebhook}

// leaseMethods are suiteMethods as a lease names them.
var leaseMethods = []string{string(notifications.MethodWebhook)}

// RunStoreTests runs the Store conformance suite: the semantics every method of Store
// must have, from leasing and fencing to preferences, the inbox view and the operators'
// actions. Run it from your store's tests:
//
//	func TestConformance(t *testing.T) {
//		notificationstest.RunStoreTests(t, func(t *testing.T, clk quartz.Clock) notifications.Store {
//			return mystore.New(mystore.Config{Clock: clk})
//		})
//	}
func RunStoreTests(t *testing.T, newStore NewStoreFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *suite)
	}{
		{"LeaseOldestFirst", testLeaseOldestFirst},
		{"LeaseOnlyTheGivenMethods", testLeaseMethods},
		{"PendingByMethod", testPendingByMethod},
		{"ConcurrentLesseesNeverShare", testConcurrentLessees},
		{"ExpiredLeaseIsReleased", testExpiredLease},
		{"RetryNotLeasedBeforeItsTime", testRetryDelay},
		{"AttemptsExhaustedAcrossCrashes", testAttemptsExhausted},
		{"StaleFlushChangesNothing", testStaleFlush},
		{"MarkFailedStatuses", testMarkFailedStatuses},
		{"DedupeSameUTCDay", testDedupe},
		{"IdempotencyKey", testIdempotencyKey},
		{"DisabledPreference", testDisabledPreference},
		{"OptInTemplate", testOptIn},
		{"EnqueueIsAtomic", testEnqueueAtomic},
		{"EnqueueStoresWhatItCan", testEnqueuePerMessage},
		{"EnqueueRefusesBadInput", testEnqueueBadInput},
		{"Purge", testPurge},
		{"PurgeInBatches", testPurgeBatches},
		{"PurgeCountsFromTheFinish", testPurgeFromTheFinish},
		{"PurgeReadInbox", testPurgeInbox},
		{"Pause", testPause},
		{"ListenWakesOnEnqueue", testListen},
		{"Templates", testTemplates},
		{"AdminQueries", testAdminQueries},
		{"Inbox", testInbox},
		// The methods hosts call for their screens and tools.
		{"PreferencesPerMethod", testPreferencesPerMethod},
		{"TemplatesListed", testTemplatesListed},
		{"DeleteTemplateCancelsItsMessages", testDeleteTemplate},
		{"InboxPagesAreStable", testInboxPaging},
		{"InboxFilters", testInboxFilters},
		{"InboxReadArchiveDelete", testInboxStates},
		{"MessageQuery", testMessageQuery},
		{"MessageQueryPages", testMessageQueryPages},
		{"MessageQueryByStatus", testMessageQueryByStatus},
		{"RetryMessage", testRetryMessage},
		{"CancelMessage", testCancelMessage},
		{"ResendMessage", testResendMessage},
		{"AttemptHistory", testAttemptHistory},
		{"AttemptHistoryIsBounded", testAttemptHistoryBounded},
		{"CanceledIsPurged", testCanceledPurged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := suiteClock(t)
			store := newStore(t, clk)
			h := &suite{t: t, clk: clk, store: store, ctx: testContext(t)}
			h.tmpl = h.template(true)
			tc.fn(t, h)
		})
	}
}

// suiteClock is a mock clock at a fixed midday start, which keeps "same UTC day" tests
// away from midnight.
func suiteClock(t *testing.T) *quartz.Mock {
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	clk.Set(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)).MustWait(context.Background())
	return clk
}

type suite struct {
	t     *testing.T
	ctx   context.Context
	clk   *quartz.Mock
	store notifications.Store
	tmpl  notifications.Template
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (h *suite) template(enabledByDefault bool) notifications.Template {
	h.t.Helper()
	tmpl := notifications.Template{
		ID: uuid.New(), Name: "suite " + uuid.NewString(), Group: "Suite", Kind: "test",
		TitleTemplate: "Hello {{.UserName}}", BodyTemplate: "Body {{.Labels.k}}",
		Actions:          []notifications.TemplateAction{{Label: "Open", URL: "https://example.com/{{.Labels.k}}"}},
		EnabledByDefault: enabledByDefault,
	}
	if err := h.store.UpsertTemplates(h.ctx, tmpl); err != nil {
		h.t.Fatalf("upsert template: %v", err)
	}
	return tmpl
}

func (h *suite) enqueuer() *notifications.StoreEnqueuer {
	h.t.Helper()
	e, err := notifications.NewStoreEnqueuer(h.store, notifications.EnqueuerConfig{
		Clock: h.clk, DefaultMethods: suiteMethods,
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			return notifications.Recipient{UserID: id, Email: "u@example.com", Username: "user"}, nil
		},
	})
	if err != nil {
		h.t.Fatalf("new enqueuer: %v", err)
	}
	return e
}

// enqueue stores n messages for distinct users, one per clock step so that creation order
// is unambiguous, and returns their IDs in order.
func (h *suite) enqueue(n int) []uuid.UUID {
	h.t.Helper()
	ids := make([]uuid.UUID, 0, n)
	for i := 0; i < n; i++ {
		ids = append(ids, h.newMessage(h.tmpl.ID, uuid.New()))
		h.clk.Advance(time.Millisecond).MustWait(h.ctx)
	}
	return ids
}

func (h *suite) newMessage(templateID, userID uuid.UUID) uuid.UUID {
	h.t.Helper()
	return h.newMessageFor(templateID, userID, notifications.MethodWebhook)
}

func (h *suite) newMessageFor(templateID, userID uuid.UUID, method notifications.Method) uuid.UUID {
	h.t.Helper()
	payload, _ := json.Marshal(notifications.MessagePayload{Version: notifications.PayloadVersion, UserID: userID.String()})
	msg := driver.NewMessage{
		ID: uuid.New(), TemplateID: templateID, UserID: userID, Method: string(method),
		Payload: payload, DedupeKey: uuid.NewString(),
	}
	if refused, err := h.store.EnqueueMessages(h.ctx, []driver.NewMessage{msg}, true); err != nil || refused != nil && refused[0] != nil {
		h.t.Fatalf("enqueue: %v, %v", refused, err)
	}
	return msg.ID
}

// setPreference disables (or enables) a template for every method, through
// Store.SetPreference.
func (h *suite) setPreference(user, template uuid.UUID, disabled bool) {
	h.t.Helper()
	if err := h.store.SetPreference(h.ctx, user, notifications.Preference{TemplateID: template, Disabled: disabled}); err != nil {
		h.t.Fatalf("set preference: %v", err)
	}
}

// inboxIDs lists a user's inbox items newest first.
func (h *suite) inboxIDs(user uuid.UUID, unreadOnly bool) []notifications.InboxItem {
	h.t.Helper()
	page, err := h.store.InboxItems(h.ctx, user, notifications.InboxQuery{UnreadOnly: unreadOnly})
	if err != nil {
		h.t.Fatalf("list inbox: %v", err)
	}
	return page.Items
}

func (h *suite) lease(notifier uuid.UUID, limit int) []driver.LeasedMessage {
	h.t.Helper()
	msgs, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{
		NotifierID: notifier, Methods: leaseMethods, Limit: limit, LeasePeriod: suiteLease, MaxAttempts: suiteAttempts,
	})
	if err != nil {
		h.t.Fatalf("lease: %v", err)
	}
	return msgs
}

func (h *suite) message(id uuid.UUID) notifications.Message {
	h.t.Helper()
	m, err := h.store.Message(h.ctx, id)
	if err != nil {
		h.t.Fatalf("get message %s: %v", id, err)
	}
	return m
}

func (h *suite) wantStatus(id uuid.UUID, want notifications.Status) notifications.Message {
	h.t.Helper()
	m := h.message(id)
	if m.Status != want {
		h.t.Fatalf("message %s: status %s (reason %q), want %s", id, m.Status, m.StatusReason, want)
	}
	return m
}

func (h *suite) markSent(notifier uuid.UUID, msgs ...driver.LeasedMessage) int {
	h.t.Helper()
	rs := make([]driver.SentResult, len(msgs))
	for i, m := range msgs {
		rs[i] = driver.SentResult{ID: m.ID, AttemptCount: m.AttemptCount}
	}
	n, err := h.store.MarkSent(h.ctx, notifier, rs)
	if err != nil {
		h.t.Fatalf("mark sent: %v", err)
	}
	return n
}

func (h *suite) markFailed(notifier uuid.UUID, status notifications.Status, delay time.Duration, msgs ...driver.LeasedMessage) int {
	h.t.Helper()
	rs := make([]driver.FailedResult, len(msgs))
	for i, m := range msgs {
		rs[i] = driver.FailedResult{ID: m.ID, AttemptCount: m.AttemptCount, Status: string(status), Reason: "boom " + string(status), RetryDelay: delay}
	}
	n, err := h.store.MarkFailed(h.ctx, notifier, rs)
	if err != nil {
		h.t.Fatalf("mark failed: %v", err)
	}
	return n
}

func ids(msgs []driver.LeasedMessage) []uuid.UUID {
	return idsOf(msgs, func(m driver.LeasedMessage) uuid.UUID { return m.ID })
}

func idsOf[T any](xs []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func testLeaseOldestFirst(t *testing.T, h *suite) {
	want := h.enqueue(5)
	a := uuid.New()
	got := h.lease(a, 3)
	if len(got) != 3 {
		t.Fatalf("leased %d, want 3", len(got))
	}
	for i, m := range got {
		if m.ID != want[i] {
			t.Fatalf("lease %d: got %s, want %s (oldest first)", i, m.ID, want[i])
		}
		if m.AttemptCount != 1 || m.Method != string(notifications.MethodWebhook) || m.TemplateID != h.tmpl.ID ||
			m.TemplateName != h.tmpl.Name || m.TitleTemplate != h.tmpl.TitleTemplate || m.BodyTemplate != h.tmpl.BodyTemplate ||
			m.Disabled || len(m.Payload) == 0 || m.CreatedAt.IsZero() || m.LeasedAt.Before(m.CreatedAt) {
			t.Fatalf("leased message lacks what rendering needs: %+v", m)
		}
		stored := h.wantStatus(m.ID, notifications.StatusLeased)
		if stored.LeasedBy != a || !stored.LeasedUntil.Equal(h.clk.Now().Add(suiteLease)) {
			t.Fatalf("stored lease: by %s until %s, want %s until %s", stored.LeasedBy, stored.LeasedUntil, a, h.clk.Now().Add(suiteLease))
		}
	}
	rest := h.lease(uuid.New(), 10)
	if len(rest) != 2 || rest[0].ID != want[3] || rest[1].ID != want[4] {
		t.Fatalf("second lease got %v, want the remaining two %v", ids(rest), want[3:])
	}
}

// testLeaseMethods: a notifier leases only the methods it handles. Messages of another
// method stay as they are — pending, or leased by the notifier that handles them even when
// that lease expired with its attempts used up — and an empty method list leases nothing.
func testLeaseMethods(t *testing.T, h *suite) {
	const sms = notifications.Method("sms")
	webhook := h.enqueue(1)[0]
	smsPending := h.newMessageFor(h.tmpl.ID, uuid.New(), sms)
	smsLeased := h.newMessageFor(h.tmpl.ID, uuid.New(), sms)
	h.clk.Advance(time.Millisecond).MustWait(h.ctx)

	// An sms notifier takes smsPending (the oldest sms message) up to the last attempt, then
	// "crashes": its lease expires with no attempts left.
	smsNotifier := uuid.New()
	for attempt := 1; attempt <= suiteAttempts; attempt++ {
		got, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: smsNotifier,
			Methods: []string{string(sms)}, Limit: 1, LeasePeriod: suiteLease, MaxAttempts: suiteAttempts})
		if err != nil || len(got) != 1 || got[0].ID != smsPending || got[0].Method != string(sms) {
			t.Fatalf("sms lease %d: %+v, %v; want %s", attempt, got, err, smsPending)
		}
		if attempt < suiteAttempts {
			h.clk.Advance(suiteLease).MustWait(h.ctx)
		}
	}
	h.clk.Advance(suiteLease).MustWait(h.ctx)
	smsExpired := smsPending
	smsPending = smsLeased
	before := h.message(smsPending)

	none, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: uuid.New(),
		Limit: 10, LeasePeriod: suiteLease, MaxAttempts: suiteAttempts})
	if err != nil || len(none) != 0 {
		t.Fatalf("lease with no methods: %+v, %v; want nothing", ids(none), err)
	}
	got := h.lease(uuid.New(), 10)
	if len(got) != 1 || got[0].ID != webhook {
		t.Fatalf("webhook notifier leased %v, want only the webhook message %s", ids(got), webhook)
	}
	if m := h.wantStatus(smsPending, notifications.StatusPending); m.AttemptCount != 0 || !m.UpdatedAt.Equal(before.UpdatedAt) || m.LeasedBy != uuid.Nil {
		t.Fatalf("pending sms message touched by a webhook lease: %+v", m)
	}
	if m := h.wantStatus(smsExpired, notifications.StatusLeased); m.LeasedBy != smsNotifier || m.AttemptCount != suiteAttempts {
		t.Fatalf("expired sms lease touched by a webhook lease: %+v", m)
	}
	// Both methods at once: the sms notifier's successor finishes the exhausted one and
	// takes the pending one.
	got, err = h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: uuid.New(),
		Methods: []string{string(notifications.MethodSMTP), string(sms)}, Limit: 10, LeasePeriod: suiteLease, MaxAttempts: suiteAttempts})
	if err != nil || len(got) != 1 || got[0].ID != smsPending {
		t.Fatalf("sms lease: %+v, %v; want %s", ids(got), err, smsPending)
	}
	h.wantStatus(smsExpired, notifications.StatusPermanentFailure)
}

// testPendingByMethod: stores that count pending messages by method (for the Manager's
// gauge and its log of methods nobody handles) count exactly the pending ones.
func testPendingByMethod(t *testing.T, h *suite) {
	h.enqueue(3)
	h.newMessageFor(h.tmpl.ID, uuid.New(), "sms")
	h.lease(uuid.New(), 1)
	got, err := h.store.PendingByMethod(h.ctx)
	if err != nil || len(got) != 2 || got[notifications.MethodWebhook] != 2 || got["sms"] != 1 {
		t.Fatalf("pending by method: %v, %v; want webhook 2, sms 1", got, err)
	}
}

func testConcurrentLessees(t *testing.T, h *suite) {
	const total, workers = 300, 6
	// Enqueue in batches: fast and still ordered enough.
	var batch []driver.NewMessage
	for i := 0; i < total; i++ {
		batch = append(batch, driver.NewMessage{
			ID: uuid.New(), TemplateID: h.tmpl.ID, UserID: uuid.New(), Method: string(notifications.MethodWebhook),
			Payload: []byte(`{}`), DedupeKey: uuid.NewString(),
		})
	}
	if _, err := h.store.EnqueueMessages(h.ctx, batch, true); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	var (
		mu   sync.Mutex
		seen = make(map[uuid.UUID]uuid.UUID)
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		notifier := uuid.New()
		wg.Go(func() {
			for {
				msgs, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{
					NotifierID: notifier, Methods: leaseMethods, Limit: 7, LeasePeriod: suiteLease, MaxAttempts: suiteAttempts,
				})
				if err != nil {
					errs <- err
					return
				}
				if len(msgs) == 0 {
					return
				}
				mu.Lock()
				for _, m := range msgs {
					if other, dup := seen[m.ID]; dup {
						mu.Unlock()
						errs <- xerrors.Errorf("message %s leased by %s and %s", m.ID, other, notifier)
						return
					}
					seen[m.ID] = notifier
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != total {
		t.Fatalf("leased %d distinct messages, want %d", len(seen), total)
	}
}

func testExpiredLease(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	a, b := uuid.New(), uuid.New()
	if got := h.lease(a, 10); len(got) != 1 {
		t.Fatalf("first lease got %d", len(got))
	}
	h.clk.Advance(suiteLease - time.Millisecond).MustWait(h.ctx)
	if got := h.lease(b, 10); len(got) != 0 {
		t.Fatalf("a live lease was leased again: %v", ids(got))
	}
	h.clk.Advance(time.Millisecond).MustWait(h.ctx)
	got := h.lease(b, 10)
	if len(got) != 1 || got[0].ID != id || got[0].AttemptCount != 2 {
		t.Fatalf("expired lease: got %+v, want %s at attempt 2", got, id)
	}
	if m := h.wantStatus(id, notifications.StatusLeased); m.LeasedBy != b {
		t.Fatalf("leased by %s, want %s", m.LeasedBy, b)
	}
}

func testRetryDelay(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	a := uuid.New()
	msgs := h.lease(a, 1)
	const delay = 1500 * time.Millisecond // sub-second precision is kept
	if n := h.markFailed(a, notifications.StatusTemporaryFailure, delay, msgs...); n != 1 {
		t.Fatalf("mark failed changed %d rows, want 1", n)
	}
	m := h.wantStatus(id, notifications.StatusTemporaryFailure)
	if !m.NextRetryAfter.Equal(h.clk.Now().Add(delay)) || m.StatusReason != "boom temporary_failure" {
		t.Fatalf("retry after %s reason %q, want %s", m.NextRetryAfter, m.StatusReason, h.clk.Now().Add(delay))
	}
	h.clk.Advance(delay - time.Millisecond).MustWait(h.ctx)
	if got := h.lease(a, 1); len(got) != 0 {
		t.Fatalf("retry leased %s before its time", delay-time.Millisecond)
	}
	h.clk.Advance(time.Millisecond).MustWait(h.ctx)
	if got := h.lease(a, 1); len(got) != 1 || got[0].ID != id || got[0].AttemptCount != 2 {
		t.Fatalf("retry not leased at its time: %+v", got)
	}
}

func testAttemptsExhausted(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	for attempt := 1; attempt <= suiteAttempts; attempt++ {
		got := h.lease(uuid.New(), 1)
		if len(got) != 1 || got[0].AttemptCount != attempt {
			t.Fatalf("lease %d: got %+v", attempt, got)
		}
		// The process "crashes": no result, the lease expires.
		h.clk.Advance(suiteLease).MustWait(h.ctx)
	}
	if got := h.lease(uuid.New(), 1); len(got) != 0 {
		t.Fatalf("leased after %d attempts: %+v", suiteAttempts, got)
	}
	m := h.wantStatus(id, notifications.StatusPermanentFailure)
	if m.AttemptCount != suiteAttempts || m.StatusReason == "" {
		t.Fatalf("attempts %d reason %q", m.AttemptCount, m.StatusReason)
	}
	h.clk.Advance(time.Hour).MustWait(h.ctx)
	if got := h.lease(uuid.New(), 1); len(got) != 0 {
		t.Fatalf("a permanently failed message was leased again")
	}
}

func testStaleFlush(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	a, b := uuid.New(), uuid.New()
	stale := h.lease(a, 1)
	h.clk.Advance(suiteLease).MustWait(h.ctx)
	fresh := h.lease(b, 1)
	if len(fresh) != 1 {
		t.Fatalf("expired lease not re-leased")
	}
	if n := h.markSent(a, stale...); n != 0 {
		t.Fatalf("stale MarkSent changed %d rows", n)
	}
	if n := h.markFailed(a, notifications.StatusPermanentFailure, 0, stale...); n != 0 {
		t.Fatalf("stale MarkFailed changed %d rows", n)
	}
	if m := h.wantStatus(id, notifications.StatusLeased); m.LeasedBy != b {
		t.Fatalf("stale flush changed the lessee to %s", m.LeasedBy)
	}
	// The same notifier with the old attempt number is fenced too.
	if n := h.markSent(b, stale...); n != 0 {
		t.Fatalf("MarkSent with an old attempt count changed %d rows", n)
	}
	if n := h.markSent(b, fresh...); n != 1 {
		t.Fatalf("MarkSent by the lessee changed %d rows, want 1", n)
	}
	if m := h.wantStatus(id, notifications.StatusSent); m.SentAt.IsZero() {
		t.Fatalf("sent without SentAt")
	}
	if n := h.markSent(b, fresh...); n != 0 {
		t.Fatalf("second MarkSent changed %d rows", n)
	}
}

func testMarkFailedStatuses(t *testing.T, h *suite) {
	ids := h.enqueue(3)
	a := uuid.New()
	msgs := h.lease(a, 3)
	if n := h.markFailed(a, notifications.StatusPermanentFailure, 0, msgs[0]); n != 1 {
		t.Fatalf("permanent: %d", n)
	}
	if n := h.markFailed(a, notifications.StatusInhibited, 0, msgs[1]); n != 1 {
		t.Fatalf("inhibited: %d", n)
	}
	_, err := h.store.MarkFailed(h.ctx, a, []driver.FailedResult{{ID: msgs[2].ID, AttemptCount: 1, Status: string(notifications.StatusSent)}})
	if !errors.Is(err, notifications.ErrInvalidMessage) {
		t.Fatalf("MarkFailed with status sent: err %v, want ErrInvalidMessage", err)
	}
	h.wantStatus(ids[0], notifications.StatusPermanentFailure)
	h.wantStatus(ids[1], notifications.StatusInhibited)
	h.wantStatus(ids[2], notifications.StatusLeased)
}

func testDedupe(t *testing.T, h *suite) {
	e := h.enqueuer()
	user := uuid.New()
	labels := map[string]string{"k": "v"}
	if _, err := e.Enqueue(h.ctx, user, h.tmpl.ID, labels, "test"); err != nil {
		t.Fatalf("first enqueue: %v", err)
	}
	_, err := e.Enqueue(h.ctx, user, h.tmpl.ID, map[string]string{"k": "v"}, "test")
	if !errors.Is(err, notifications.ErrDuplicate) {
		t.Fatalf("identical enqueue the same day: err %v, want ErrDuplicate", err)
	}
	if _, err := e.Enqueue(h.ctx, user, h.tmpl.ID, map[string]string{"k": "other"}, "test"); err != nil {
		t.Fatalf("different labels: %v", err)
	}
	h.clk.Advance(24 * time.Hour).MustWait(h.ctx)
	if _, err := e.Enqueue(h.ctx, user, h.tmpl.ID, labels, "test"); err != nil {
		t.Fatalf("identical enqueue the next day: %v", err)
	}
	if n := countMessages(t, h); n != 3 {
		t.Fatalf("stored %d messages, want 3", n)
	}
}

func testIdempotencyKey(t *testing.T, h *suite) {
	e := h.enqueuer()
	rcpt := &notifications.Recipient{Email: "x@example.com"}
	req := notifications.EnqueueRequest{TemplateID: h.tmpl.ID, UserID: uuid.New(), Recipient: rcpt, IdempotencyKey: "order-42", Labels: map[string]string{"k": "1"}}
	if res, err := e.Send(h.ctx, req); err != nil || res[0].Err != nil {
		t.Fatalf("first: %+v, %v", res, err)
	}
	req.Labels = map[string]string{"k": "2"}
	h.clk.Advance(48 * time.Hour).MustWait(h.ctx)
	res, err := e.Send(h.ctx, req)
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, notifications.ErrDuplicate) || len(res[0].MessageIDs) != 0 {
		t.Fatalf("same idempotency key: %+v, %v; want ErrDuplicate", res, err)
	}
}

func testDisabledPreference(t *testing.T, h *suite) {
	e := h.enqueuer()
	user := uuid.New()
	h.setPreference(user, h.tmpl.ID, true)
	_, err := e.Enqueue(h.ctx, user, h.tmpl.ID, nil, "test")
	if !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) {
		t.Fatalf("enqueue disabled: err %v, want ErrCannotEnqueueDisabledNotification", err)
	}
	if n := countMessages(t, h); n != 0 {
		t.Fatalf("a refused enqueue stored %d messages", n)
	}
	h.setPreference(user, h.tmpl.ID, false)
	msgIDs, err := e.Enqueue(h.ctx, user, h.tmpl.ID, nil, "test")
	if err != nil {
		t.Fatalf("enqueue enabled: %v", err)
	}
	// Disabled after enqueue: leased with Disabled set, for the Manager to inhibit.
	h.setPreference(user, h.tmpl.ID, true)
	got := h.lease(uuid.New(), 10)
	if len(got) != 1 || got[0].ID != msgIDs[0] || !got[0].Disabled {
		t.Fatalf("lease after disabling: %+v, want %s with Disabled", got, msgIDs[0])
	}
}

func testOptIn(t *testing.T, h *suite) {
	optIn := h.template(false)
	e := h.enqueuer()
	user := uuid.New()
	if _, err := e.Enqueue(h.ctx, user, optIn.ID, nil, "test"); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) {
		t.Fatalf("opt-in template without opting in: err %v", err)
	}
	h.setPreference(user, optIn.ID, false)
	if _, err := e.Enqueue(h.ctx, user, optIn.ID, nil, "test"); err != nil {
		t.Fatalf("opt-in template after opting in: %v", err)
	}
}

func testEnqueueAtomic(t *testing.T, h *suite) {
	good := driver.NewMessage{ID: uuid.New(), TemplateID: h.tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`), DedupeKey: "a"}
	unknownTemplate := driver.NewMessage{ID: uuid.New(), TemplateID: uuid.New(), UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`), DedupeKey: "b"}
	refused, err := h.store.EnqueueMessages(h.ctx, []driver.NewMessage{good, unknownTemplate}, true)
	if !errors.Is(err, notifications.ErrNotFound) || len(refused) != 2 || refused[0] != nil || !errors.Is(refused[1], notifications.ErrNotFound) {
		t.Fatalf("unknown template: refused %v, err %v; want the second refused with ErrNotFound", refused, err)
	}
	dupInBatch := good
	dupInBatch.ID = uuid.New()
	refused, err = h.store.EnqueueMessages(h.ctx, []driver.NewMessage{good, dupInBatch}, true)
	if !errors.Is(err, notifications.ErrDuplicate) || len(refused) != 2 || !errors.Is(refused[1], notifications.ErrDuplicate) {
		t.Fatalf("duplicate key within one call: refused %v, err %v; want ErrDuplicate", refused, err)
	}
	sameID := good
	sameID.DedupeKey = "c"
	refused, err = h.store.EnqueueMessages(h.ctx, []driver.NewMessage{good, sameID}, true)
	if !errors.Is(err, notifications.ErrDuplicate) || len(refused) != 2 || !errors.Is(refused[1], notifications.ErrDuplicate) {
		t.Fatalf("duplicate message ID within one call: refused %v, err %v; want ErrDuplicate", refused, err)
	}
	if n := countMessages(t, h); n != 0 {
		t.Fatalf("failed enqueues stored %d messages", n)
	}
}

// testEnqueuePerMessage: without atomic, every acceptable message is stored and each
// refusal is reported against its own message.
func testEnqueuePerMessage(t *testing.T, h *suite) {
	disabledUser := uuid.New()
	h.setPreference(disabledUser, h.tmpl.ID, true)
	msg := func(user uuid.UUID, key string) driver.NewMessage {
		return driver.NewMessage{ID: uuid.New(), TemplateID: h.tmpl.ID, UserID: user, Method: string(notifications.MethodWebhook), Payload: []byte(`{}`), DedupeKey: key}
	}
	existing := msg(uuid.New(), "existing")
	if _, err := h.store.EnqueueMessages(h.ctx, []driver.NewMessage{existing}, true); err != nil {
		t.Fatal(err)
	}
	unknown := msg(uuid.New(), "unknown")
	unknown.TemplateID = uuid.New()
	batch := []driver.NewMessage{
		msg(uuid.New(), "ok1"),
		msg(disabledUser, "disabled"),
		msg(uuid.New(), "existing"), // duplicate of a stored key
		unknown,
		msg(uuid.New(), "ok2"),
		msg(uuid.New(), "ok2"), // duplicate within the call
	}
	refused, err := h.store.EnqueueMessages(h.ctx, batch, false)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	want := []error{nil, notifications.ErrCannotEnqueueDisabledNotification, notifications.ErrDuplicate, notifications.ErrNotFound, nil, notifications.ErrDuplicate}
	if len(refused) != len(batch) {
		t.Fatalf("refused has %d entries, want %d: %v", len(refused), len(batch), refused)
	}
	for i, w := range want {
		if (w == nil) != (refused[i] == nil) || w != nil && !errors.Is(refused[i], w) {
			t.Errorf("message %d: refused %v, want %v", i, refused[i], w)
		}
	}
	for _, i := range []int{0, 4} {
		h.wantStatus(batch[i].ID, notifications.StatusPending)
	}
	for _, i := range []int{1, 3, 5} {
		if _, err := h.store.Message(h.ctx, batch[i].ID); !errors.Is(err, notifications.ErrNotFound) {
			t.Errorf("refused message %d stored: %v", i, err)
		}
	}
	if n := countMessages(t, h); n != 3 {
		t.Fatalf("stored %d messages, want 3 (the existing one and two of the batch)", n)
	}
}

func testEnqueueBadInput(t *testing.T, h *suite) {
	base := driver.NewMessage{TemplateID: h.tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
	cases := map[string]func(m *driver.NewMessage){
		"payload not JSON": func(m *driver.NewMessage) { m.Payload = []byte(`{"a":`) },
		"empty payload":    func(m *driver.NewMessage) { m.Payload = nil },
		"no method":        func(m *driver.NewMessage) { m.Method = "" },
		"nil user":         func(m *driver.NewMessage) { m.UserID = uuid.Nil },
		"nil ID":           func(m *driver.NewMessage) { m.ID = uuid.Nil },
	}
	for name, mutate := range cases {
		m := base
		m.ID = uuid.New()
		m.DedupeKey = name
		mutate(&m)
		refused, err := h.store.EnqueueMessages(h.ctx, []driver.NewMessage{m}, true)
		if !errors.Is(err, notifications.ErrInvalidMessage) || len(refused) != 1 || !errors.Is(refused[0], notifications.ErrInvalidMessage) {
			t.Errorf("%s: refused %v, err %v; want ErrInvalidMessage", name, refused, err)
		}
	}
	if n := countMessages(t, h); n != 0 {
		t.Fatalf("bad input stored %d messages", n)
	}
}

func testPurge(t *testing.T, h *suite) {
	const retention = 24 * time.Hour
	ids := h.enqueue(4)
	a := uuid.New()
	msgs := h.lease(a, 3)
	h.markSent(a, msgs[0])
	h.markFailed(a, notifications.StatusPermanentFailure, 0, msgs[1])
	h.markFailed(a, notifications.StatusInhibited, 0, msgs[2])
	// ids[3] is never leased: pending and old, but unfinished, so it stays.
	h.clk.Advance(retention - time.Second).MustWait(h.ctx)
	if n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: retention}); err != nil || n != 0 {
		t.Fatalf("purge before the retention: %d, %v", n, err)
	}
	h.clk.Advance(time.Second).MustWait(h.ctx)
	n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: retention})
	if err != nil || n != 3 {
		t.Fatalf("purge: %d, %v; want 3", n, err)
	}
	for _, id := range ids[:3] {
		if _, err := h.store.Message(h.ctx, id); !errors.Is(err, notifications.ErrNotFound) {
			t.Fatalf("purged message %s: err %v, want ErrNotFound", id, err)
		}
	}
	h.wantStatus(ids[3], notifications.StatusPending)

	// Messages that end permanent_failure inside the lease (attempts exhausted by crashes,
	// never reaching a MarkFailed) are purged too: the old pending one and a new one.
	crashed := h.enqueue(1)[0]
	for i := 0; i <= suiteAttempts; i++ {
		h.lease(uuid.New(), 10)
		h.clk.Advance(suiteLease).MustWait(h.ctx)
	}
	h.wantStatus(crashed, notifications.StatusPermanentFailure)
	h.wantStatus(ids[3], notifications.StatusPermanentFailure)
	h.clk.Advance(retention).MustWait(h.ctx)
	if n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: retention}); err != nil || n != 2 {
		t.Fatalf("purge of a crash-exhausted message: %d, %v", n, err)
	}
}

// testPurgeBatches: a batch size smaller than the backlog still purges all of it.
func testPurgeBatches(t *testing.T, h *suite) {
	const retention = time.Hour
	h.enqueue(7)
	a := uuid.New()
	h.markSent(a, h.lease(a, 7)...)
	h.clk.Advance(retention).MustWait(h.ctx)
	n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: retention, BatchSize: 2})
	if err != nil || n != 7 {
		t.Fatalf("purge in batches of 2: %d, %v; want 7", n, err)
	}
	if n := countMessages(t, h); n != 0 {
		t.Fatalf("%d messages left after the purge", n)
	}
}

// testPurgeFromTheFinish: the retention counts from when a message finished, not from
// when it was created. A message created first and finished last outlives one created
// after it and finished before it, and does not hold up the purge of that one, even one
// message per batch.
func testPurgeFromTheFinish(t *testing.T, h *suite) {
	const retention = time.Hour
	first := h.enqueue(1)[0]
	h.clk.Advance(time.Minute).MustWait(h.ctx)
	second := h.enqueue(1)[0]
	a := uuid.New()
	msgs := h.lease(a, 2)
	if len(msgs) != 2 || msgs[0].ID != first || msgs[1].ID != second {
		t.Fatalf("leased %v; want %s then %s", msgs, first, second)
	}
	h.markSent(a, msgs[1])
	h.markFailed(a, notifications.StatusTemporaryFailure, 2*time.Hour, msgs[0])
	h.clk.Advance(2 * time.Hour).MustWait(h.ctx)
	b := uuid.New()
	retried := h.lease(b, 2)
	if len(retried) != 1 || retried[0].ID != first {
		t.Fatalf("leased %v after the retry delay; want %s", retried, first)
	}
	h.markSent(b, retried...)
	h.clk.Advance(retention - time.Minute).MustWait(h.ctx)
	if n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: retention, BatchSize: 1}); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1 (the message finished first)", n, err)
	}
	if _, err := h.store.Message(h.ctx, second); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("message finished %v ago: err %v, want ErrNotFound", 3*time.Hour-time.Minute, err)
	}
	h.wantStatus(first, notifications.StatusSent)
	h.clk.Advance(time.Minute).MustWait(h.ctx)
	if n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: retention, BatchSize: 1}); err != nil || n != 1 {
		t.Fatalf("purge a retention after the later finish: %d, %v; want 1", n, err)
	}
	if n := countMessages(t, h); n != 0 {
		t.Fatalf("%d messages left after the purge", n)
	}
}

// testPurgeInbox: read inbox items older than ReadInboxOlderThan are purged (with the
// messages, in one count); unread items and recently read ones stay; 0 keeps them all.
func testPurgeInbox(t *testing.T, h *suite) {
	const readRetention = 30 * 24 * time.Hour
	user := uuid.New()
	insert := func() uuid.UUID {
		item := notifications.InboxItem{ID: uuid.New(), UserID: user, TemplateID: h.tmpl.ID, Title: "T"}
		if _, err := h.store.InsertInboxItem(h.ctx, item); err != nil {
			t.Fatalf("insert: %v", err)
		}
		return item.ID
	}
	read := func(id uuid.UUID) {
		if err := h.store.MarkInboxRead(h.ctx, user, id); err != nil {
			t.Fatalf("mark read: %v", err)
		}
	}
	oldRead, oldRead2, unread, recent := insert(), insert(), insert(), insert()
	read(oldRead)
	read(oldRead2)
	h.clk.Advance(readRetention - time.Hour).MustWait(h.ctx)
	read(recent)
	h.enqueue(1)
	a := uuid.New()
	h.markSent(a, h.lease(a, 1)...)
	h.clk.Advance(time.Hour).MustWait(h.ctx)

	if n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: 365 * 24 * time.Hour}); err != nil || n != 0 {
		t.Fatalf("purge without inbox retention: %d, %v; want 0", n, err)
	}
	n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: time.Hour, ReadInboxOlderThan: readRetention, BatchSize: 1})
	if err != nil || n != 3 {
		t.Fatalf("purge: %d, %v; want 3 (one message, two read items)", n, err)
	}
	items := h.inboxIDs(user, false)
	left := map[uuid.UUID]bool{}
	for _, it := range items {
		left[it.ID] = true
	}
	if len(left) != 2 || !left[unread] || !left[recent] {
		t.Fatalf("inbox after purge: %+v; want the unread and the recently read item", items)
	}
	if err := h.store.MarkInboxRead(h.ctx, user, oldRead); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("purged item: err %v, want ErrNotFound", err)
	}
}

func testPause(t *testing.T, h *suite) {
	h.enqueue(2)
	if err := h.store.SetPaused(h.ctx, true); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if p, err := h.store.Paused(h.ctx); err != nil || !p {
		t.Fatalf("paused: %v, %v", p, err)
	}
	if got := h.lease(uuid.New(), 10); len(got) != 0 {
		t.Fatalf("leased %d while paused", len(got))
	}
	if err := h.store.SetPaused(h.ctx, false); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := h.lease(uuid.New(), 10); len(got) != 2 {
		t.Fatalf("leased %d after resume, want 2", len(got))
	}
}

func testListen(t *testing.T, h *suite) {
	ctx, cancel := context.WithCancel(h.ctx)
	woken := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- h.store.Listen(ctx, func() { woken <- struct{}{} }) }()
	returned := false
	defer func() {
		cancel()
		if !returned {
			if err := <-done; err != nil {
				t.Errorf("Listen returned %v after its context ended", err)
			}
		}
	}()
	// The contract: wake once listening, or return nil at once for a poll-only store.
	select {
	case <-woken:
	case err := <-done:
		returned = true
		if err != nil {
			t.Fatalf("Listen failed: %v", err)
		}
		t.Log("Listen returned at once: a poll-only store, nothing more to check")
		return
	case <-h.ctx.Done():
		t.Fatal("Listen neither called wake once listening nor returned")
	}
	h.newMessage(h.tmpl.ID, uuid.New())
	select {
	case <-woken:
	case err := <-done:
		returned = true
		t.Fatalf("Listen returned (%v) while its context was live", err)
	case <-h.ctx.Done():
		t.Fatal("no wake-up after an enqueue")
	}
}

func testTemplates(t *testing.T, h *suite) {
	got, err := h.store.Template(h.ctx, h.tmpl.ID)
	if err != nil {
		t.Fatalf("get template: %v", err)
	}
	if got.Name != h.tmpl.Name || got.TitleTemplate != h.tmpl.TitleTemplate || got.BodyTemplate != h.tmpl.BodyTemplate ||
		len(got.Actions) != 1 || got.Actions[0] != h.tmpl.Actions[0] || got.EnabledByDefault != h.tmpl.EnabledByDefault ||
		got.Group != h.tmpl.Group || got.Kind != h.tmpl.Kind {
		t.Fatalf("template round trip: got %+v, want %+v", got, h.tmpl)
	}
	upd := h.tmpl
	upd.TitleTemplate = "Changed {{.UserName}}"
	upd.Methods = []notifications.Method{notifications.MethodSMTP}
	if err := h.store.UpsertTemplates(h.ctx, upd); err != nil {
		t.Fatalf("update template: %v", err)
	}
	if got, _ := h.store.Template(h.ctx, h.tmpl.ID); got.TitleTemplate != upd.TitleTemplate || len(got.Methods) != 1 || got.Methods[0] != notifications.MethodSMTP {
		t.Fatalf("update not stored: %+v", got)
	}
	if _, err := h.store.Template(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("unknown template: err %v, want ErrNotFound", err)
	}
	clash := notifications.Template{ID: uuid.New(), Name: h.tmpl.Name, TitleTemplate: "x"}
	if err := h.store.UpsertTemplates(h.ctx, clash); !errors.Is(err, notifications.ErrDuplicate) {
		t.Fatalf("template name taken by another ID: err %v, want ErrDuplicate", err)
	}
	if _, err := h.store.Template(h.ctx, clash.ID); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("refused upsert stored the template")
	}
	// One call naming an ID or a name twice is refused as a whole.
	first := notifications.Template{ID: uuid.New(), Name: "twice " + uuid.NewString(), TitleTemplate: "a"}
	again := first
	again.TitleTemplate = "b"
	if err := h.store.UpsertTemplates(h.ctx, first, again); !errors.Is(err, notifications.ErrDuplicate) {
		t.Fatalf("one template ID twice in one call: err %v, want ErrDuplicate", err)
	}
	sameName := notifications.Template{ID: uuid.New(), Name: first.Name, TitleTemplate: "c"}
	if err := h.store.UpsertTemplates(h.ctx, first, sameName); !errors.Is(err, notifications.ErrDuplicate) {
		t.Fatalf("one template name twice in one call: err %v, want ErrDuplicate", err)
	}
	for _, id := range []uuid.UUID{first.ID, sameName.ID} {
		if _, err := h.store.Template(h.ctx, id); !errors.Is(err, notifications.ErrNotFound) {
			t.Fatalf("a refused call stored template %s: err %v", id, err)
		}
	}
}

func testAdminQueries(t *testing.T, h *suite) {
	ids := h.enqueue(3)
	a := uuid.New()
	h.markSent(a, h.lease(a, 1)...)
	counts, err := h.store.CountByStatus(h.ctx)
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	if counts[notifications.StatusSent] != 1 || counts[notifications.StatusPending] != 2 {
		t.Fatalf("counts %v, want 1 sent and 2 pending", counts)
	}
	if m := h.message(ids[1]); m.Status != notifications.StatusPending || m.TemplateID != h.tmpl.ID || m.Method != notifications.MethodWebhook || m.CreatedAt.IsZero() {
		t.Fatalf("message: %+v", m)
	}
	if _, err := h.store.Message(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("unknown message: err %v, want ErrNotFound", err)
	}
}

func testInbox(t *testing.T, h *suite) {
	user, other := uuid.New(), uuid.New()
	item := notifications.InboxItem{
		ID: uuid.New(), UserID: user, TemplateID: h.tmpl.ID, Title: "T", TitleMarkdown: "**T**", Content: "**C**",
		Actions: []notifications.Action{{Label: "Open", URL: "https://example.com"}}, Targets: []uuid.UUID{uuid.New()},
	}
	created, err := h.store.InsertInboxItem(h.ctx, item)
	if err != nil || !created {
		t.Fatalf("insert: %v, %v", created, err)
	}
	item2 := item
	item2.Title = "changed"
	if created, err := h.store.InsertInboxItem(h.ctx, item2); err != nil || created {
		t.Fatalf("re-insert of the same ID: created %v, err %v; want false, nil", created, err)
	}
	h.clk.Advance(time.Second).MustWait(h.ctx)
	second := notifications.InboxItem{ID: uuid.New(), UserID: user, TemplateID: h.tmpl.ID, Title: "T2"}
	if _, err := h.store.InsertInboxItem(h.ctx, second); err != nil {
		t.Fatalf("insert second: %v", err)
	}
	items := h.inboxIDs(user, false)
	if len(items) != 2 || items[0].ID != second.ID || items[1].ID != item.ID {
		t.Fatalf("list: %+v; want newest first", items)
	}
	if items[1].Title != "T" || items[1].TitleMarkdown != "**T**" || items[1].Content != "**C**" || len(items[1].Actions) != 1 || len(items[1].Targets) != 1 || items[1].CreatedAt.IsZero() {
		t.Fatalf("item round trip: %+v", items[1])
	}
	if n, err := h.store.UnreadInboxCount(h.ctx, user); err != nil || n != 2 {
		t.Fatalf("unread: %d, %v", n, err)
	}
	if err := h.store.MarkInboxRead(h.ctx, other, item.ID); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("mark another user's item: err %v, want ErrNotFound", err)
	}
	if err := h.store.MarkInboxRead(h.ctx, user, item.ID); err != nil {
		t.Fatalf("mark read: %v", err)
	}
	if n, _ := h.store.UnreadInboxCount(h.ctx, user); n != 1 {
		t.Fatalf("unread after mark read: %d", n)
	}
	unread := h.inboxIDs(user, true)
	if len(unread) != 1 || unread[0].ID != second.ID {
		t.Fatalf("unread list: %+v", unread)
	}
	if n, _ := h.store.UnreadInboxCount(h.ctx, other); n != 0 {
		t.Fatalf("other user's unread: %d", n)
	}
}

func countMessages(t *testing.T, h *suite) int {
	t.Helper()
	counts, err := h.store.CountByStatus(h.ctx)
	if err != nil {
		t.Fatalf("count messages: %v", err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
