// Command demo runs the library's main job: it registers the sample templates, creates a
// few hundred recipients (some with a template disabled, one template opt-in), enqueues a
// few thousand notifications and delivers them for real: email to an in-process SMTP server
// (which defers a share with 451 and bounces a few addresses with 550), webhooks to a local
// receiver (which verifies every signature and fails a share with 500) and in-app inbox
// items. It shows a live progress bar, then a table of final statuses per method,
// throughput and enqueue→delivery latency, and writes one email (.eml and .html) and one
// webhook body into the output folder. It exits non-zero if any message is unaccounted for.
//
// By default it runs on the embedded in-memory store; with -database-url (or DATABASE_URL)
// it runs the same on PostgreSQL through pgstore, in a schema of its own that it recreates.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/internal/sample"
	"github.com/notifykit/notifications/internal/smtpcapture"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/pgstore"
)

func main() {
	o := options{}
	flag.IntVar(&o.users, "users", 300, "recipients")
	flag.IntVar(&o.perUser, "per-user", 10, "notifications per recipient")
	flag.Float64Var(&o.failRate, "fail-rate", 0.1, "share of webhook requests answered 500 and of emails deferred with 451")
	flag.StringVar(&o.out, "out", "out/demo", "output folder")
	flag.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL: run on pgstore instead of memstore (default $DATABASE_URL)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	users, perUser int
	failRate       float64
	out            string
	databaseURL    string
}

const (
	secret     = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5"
	demoSchema = "notifications_demo"
)

// bounces reports whether recipient n has a mailbox that does not exist (550).
func bounces(n int) bool { return n%50 == 7 }

// demoStore is a Store with the two operations the demo needs beyond it, both from
// notifications.Store (memstore and pgstore implement it).
type demoStore interface {
	notifications.Store
	disable(ctx context.Context, userID, templateID uuid.UUID, disabled bool) error
	all(ctx context.Context) ([]notifications.Message, error)
}

type v1Store struct{ notifications.Store }

func (s v1Store) disable(ctx context.Context, userID, templateID uuid.UUID, disabled bool) error {
	return s.SetPreference(ctx, userID, notifications.Preference{TemplateID: templateID, Disabled: disabled})
}

func (s v1Store) all(ctx context.Context) ([]notifications.Message, error) {
	var out []notifications.Message
	q := notifications.MessageQuery{Limit: 1000}
	for {
		page, err := s.Messages(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Messages...)
		if page.NextCursor == "" {
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}

func openStore(ctx context.Context, databaseURL string) (demoStore, string, func(), error) {
	if databaseURL == "" {
		return v1Store{memstore.New(memstore.Config{})}, "memstore (in memory)", func() {}, nil
	}
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{demoSchema}.Sanitize()+" CASCADE"); err != nil {
		pool.Close()
		return nil, "", nil, fmt.Errorf("reset demo schema: %w", err)
	}
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: demoSchema}); err != nil {
		pool.Close()
		return nil, "", nil, err
	}
	return v1Store{pgstore.New(pool, pgstore.Config{Schema: demoSchema})}, "pgstore (PostgreSQL, schema " + demoSchema + ")", pool.Close, nil
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	store, storeName, closeStore, err := openStore(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	registry := notifications.NewRegistry(sample.Helpers())
	if err := registry.Register(ctx, store, sample.Templates()...); err != nil {
		return err
	}

	// The SMTP server: captures mail, defers a share with 451, bounces some mailboxes.
	mailSrv, err := smtpcapture.Start(smtpcapture.Options{Reject: func(m smtpcapture.Mail) error {
		if strings.HasPrefix(m.To, "bounce") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox does not exist"}
		}
		if rand.Float64() < o.failRate {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}})
	if err != nil {
		return err
	}
	defer mailSrv.Close()
	// The webhook receiver: verifies every signature, fails a share with 500.
	recv := &receiver{failRate: o.failRate}
	hookSrv := httptest.NewServer(recv)
	defer hookSrv.Close()
	broker := dispatch.NewMemoryBroker()
	handlers, err := dispatch.DefaultHandlers(dispatch.HandlersConfig{
		SMTP: &dispatch.SMTPConfig{Smarthost: mailSrv.Addr, From: "Acme CI <notifications@acme.example>", Hello: "demo.acme.example"},
		Webhook: &dispatch.WebhookConfig{URL: hookSrv.URL + "/hook", Secrets: []string{secret},
			AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Inbox:  store,
		Broker: broker,
	})
	if err != nil {
		return err
	}

	cfg := notifications.DefaultConfig()
	cfg.LeaseCount = 100
	cfg.StoreSyncBufferSize = 200
	cfg.StoreSyncInterval = 50 * time.Millisecond
	cfg.FetchInterval = 100 * time.Millisecond
	cfg.RetryInterval = 200 * time.Millisecond
	cfg.MaxRetryInterval = time.Second
	cfg.MaxSendAttempts = 4

	lat := &latencies{}
	timed := make(map[notifications.Method]notifications.Handler, len(handlers))
	for m, h := range handlers {
		timed[m] = timing{handler: h, lat: lat}
	}
	cfg.Registry = registry
	cfg.Metrics = notifications.NewMetrics(prometheus.NewRegistry(), notifications.MetricsConfig{})
	mgr, err := notifications.NewManager(store, timed, cfg)
	if err != nil {
		return err
	}

	// Recipients (the host's user table): every 10th disabled "Build failed", every 3rd
	// opted in to the weekly digest, every 50th has a mailbox that bounces.
	users := make([]notifications.Recipient, o.users)
	byID := make(map[uuid.UUID]notifications.Recipient, len(users))
	for i := range users {
		users[i] = sample.Recipient(i)
		if bounces(i) {
			users[i].Email = "bounce-" + users[i].Email
		}
		byID[users[i].UserID] = users[i]
		if i%10 == 0 {
			if err := store.disable(ctx, users[i].UserID, sample.BuildFailed.ID, true); err != nil {
				return err
			}
		}
		if i%3 == 0 {
			if err := store.disable(ctx, users[i].UserID, sample.WeeklyDigest.ID, false); err != nil {
				return err
			}
		}
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{
		Registry: registry,
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			u, ok := byID[id]
			if !ok {
				return u, notifications.ErrNotFound
			}
			return u, nil
		},
	})
	if err != nil {
		return err
	}

	fmt.Printf("demo on %s: %d recipients × %d notifications\n", storeName, o.users, o.perUser)
	fmt.Printf("  email → SMTP %s (defers %.0f%% with 451, bounces every 50th mailbox with 550)\n", mailSrv.Addr, o.failRate*100)
	fmt.Printf("  webhook → %s (verifies signatures, answers %.0f%% with 500)\n", hookSrv.URL, o.failRate*100)
	fmt.Printf("  inbox → the store, live to subscribers\n")

	var refusedDup, refusedDisabled, enqueued int
	count := func(ids []uuid.UUID, err error) error {
		switch {
		case errors.Is(err, notifications.ErrDuplicate):
			refusedDup++
		case errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification):
			refusedDisabled++
		case err != nil:
			return err
		default:
			enqueued += len(ids)
			lat.enqueued(ids)
		}
		return nil
	}
	enqueue := func(u notifications.Recipient, t notifications.Template, n int) error {
		return count(enq.Enqueue(ctx, u.UserID, t.ID, sample.Labels(t, n), "demo"))
	}
	// Before the Manager starts: mentions for every 20th user, who then turns mentions off;
	// those messages end inhibited (the preference is checked again at delivery).
	inhibitedUsers := 0
	for i := 3; i < len(users); i += 20 {
		if err := enqueue(users[i], sample.Mention, i); err != nil {
			return err
		}
		if err := store.disable(ctx, users[i].UserID, sample.Mention.ID, true); err != nil {
			return err
		}
		inhibitedUsers++
	}

	// A live subscriber, as an inbox page would hold open.
	subCtx, unsubscribe := context.WithCancel(ctx)
	defer unsubscribe()
	var live atomic.Int64
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		for range broker.Subscribe(subCtx, users[1].UserID) {
			live.Add(1)
		}
	}()

	if err := mgr.Run(ctx); err != nil {
		return err
	}
	start := time.Now()
	templates := sample.Templates()
	// Each round is one fan-out to every user: a refused recipient (a duplicate, a
	// template turned off) is reported on its own request and the others are stored.
	for i := 0; i < o.perUser; i++ {
		reqs := make([]notifications.EnqueueRequest, 0, len(users))
		for j, u := range users {
			t := templates[(i+j)%len(templates)]
			labels := i*len(users) + j
			if t.ID == sample.Welcome.ID {
				labels = 0 // identical every time: the second one a day is a duplicate
			}
			reqs = append(reqs, notifications.EnqueueRequest{TemplateID: t.ID, UserID: u.UserID, Labels: sample.Labels(t, labels), CreatedBy: "demo"})
		}
		results, err := enq.Send(ctx, reqs...)
		if err != nil {
			return err
		}
		for _, r := range results {
			if err := count(r.MessageIDs, r.Err); err != nil {
				return err
			}
		}
	}

	// Drain with a progress bar.
	for {
		counts, err := store.CountByStatus(ctx)
		if err != nil {
			return err
		}
		done := counts[notifications.StatusSent] + counts[notifications.StatusPermanentFailure] + counts[notifications.StatusInhibited]
		fmt.Printf("\r%s %d/%d done (%d waiting to retry)   ", bar(done, enqueued, 30), done, enqueued, counts[notifications.StatusTemporaryFailure])
		if done == enqueued {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not drained in time: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	fmt.Println()
	stopCtx, stopCancel := context.WithTimeout(ctx, 10*time.Second)
	defer stopCancel()
	if err := mgr.Stop(stopCtx); err != nil {
		return err
	}
	unsubscribe()
	<-liveDone

	// The table: final status per method, from the store.
	all, err := store.all(ctx)
	if err != nil {
		return err
	}
	type row struct{ sent, retried, perm, inhibited, other int }
	rows := map[notifications.Method]*row{}
	for _, m := range all {
		r := rows[m.Method]
		if r == nil {
			r = &row{}
			rows[m.Method] = r
		}
		switch m.Status {
		case notifications.StatusSent:
			r.sent++
		case notifications.StatusPermanentFailure:
			r.perm++
		case notifications.StatusInhibited:
			r.inhibited++
		default:
			r.other++
		}
		if m.AttemptCount > 1 {
			r.retried++
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tsent\t(of which retried)\tpermanent failure\tinhibited\tunfinished\ttotal\t")
	total := 0
	methods := make([]notifications.Method, 0, len(rows))
	for m := range rows {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	var sum row
	for _, m := range methods {
		r := rows[m]
		n := r.sent + r.perm + r.inhibited + r.other
		total += n
		sum.sent, sum.retried, sum.perm, sum.inhibited, sum.other = sum.sent+r.sent, sum.retried+r.retried, sum.perm+r.perm, sum.inhibited+r.inhibited, sum.other+r.other
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", m, r.sent, r.retried, r.perm, r.inhibited, r.other, n)
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t%d\t%d\t%d\t\n", sum.sent, sum.retried, sum.perm, sum.inhibited, sum.other, total)
	tw.Flush()
	fmt.Printf("refused at enqueue (no row): %d duplicates, %d disabled or not opted in\n", refusedDup, refusedDisabled)
	p50, p99 := lat.percentiles()
	fmt.Printf("%d messages in %s: %.0f msgs/s; enqueue→delivery p50 %s, p99 %s\n", enqueued, elapsed.Round(time.Millisecond),
		float64(enqueued)/elapsed.Seconds(), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	fmt.Printf("SMTP server: %d emails accepted; webhook receiver: %d requests, %d answered 500, %d bad signatures; live inbox events for one user: %d\n",
		mailSrv.Count(), recv.requests.Load(), recv.failed.Load(), recv.badSig.Load(), live.Load())

	if err := writeSamples(o.out, mailSrv, recv); err != nil {
		return err
	}
	if total != enqueued || recv.badSig.Load() != 0 {
		return fmt.Errorf("accounting failed: %d messages stored, %d enqueued, %d bad signatures", total, enqueued, recv.badSig.Load())
	}
	if sum.other != 0 {
		return fmt.Errorf("%d messages did not reach a final status", sum.other)
	}
	if sum.inhibited != inhibitedUsers {
		return fmt.Errorf("%d inhibited, want %d", sum.inhibited, inhibitedUsers)
	}
	return nil
}

// writeSamples writes the first captured email as .eml and its HTML part as .html, and the
// first accepted webhook body as JSON.
func writeSamples(dir string, mailSrv *smtpcapture.Server, recv *receiver) error {
	var written []string
	if mails := mailSrv.Mails(); len(mails) > 0 {
		eml := filepath.Join(dir, "email.eml")
		if err := os.WriteFile(eml, mails[0].Data, 0o644); err != nil {
			return err
		}
		written = append(written, eml)
		html, err := htmlPart(mails[0].Data)
		if err != nil {
			return fmt.Errorf("read captured email: %w", err)
		}
		path := filepath.Join(dir, "email.html")
		if err := os.WriteFile(path, html, 0o644); err != nil {
			return err
		}
		written = append(written, path)
	}
	if b := recv.sample(); b != nil {
		path := filepath.Join(dir, "webhook.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		written = append(written, path)
	}
	fmt.Println("wrote", strings.Join(written, ", "))
	return nil
}

func htmlPart(raw []byte) ([]byte, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("no text/html part: %w", err)
		}
		if strings.HasPrefix(part.Header.Get("Content-Type"), "text/html") {
			return io.ReadAll(part)
		}
	}
}

func bar(done, total, width int) string {
	if total == 0 {
		return "[" + strings.Repeat("=", width) + "]"
	}
	n := done * width / total
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// receiver is the local webhook endpoint.
type receiver struct {
	failRate                 float64
	requests, failed, badSig atomic.Int64
	mu                       sync.Mutex
	first                    []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if !verify(req.Header, body) {
		r.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rand.Float64() < r.failRate {
		r.failed.Add(1)
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	r.mu.Lock()
	if r.first == nil {
		r.first = body
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) sample() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		return nil
	}
	var v any
	_ = json.Unmarshal(r.first, &v)
	b, _ := json.MarshalIndent(v, "", "  ")
	return b
}

func verify(h http.Header, body []byte) bool {
	return dispatch.VerifyWebhook([]string{secret}, h, body, time.Now(), 5*time.Minute) == nil
}

// latencies records enqueue and first successful delivery times per message.
type latencies struct {
	mu   sync.Mutex
	enq  map[uuid.UUID]time.Time
	took []time.Duration
}

func (l *latencies) enqueued(ids []uuid.UUID) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.enq == nil {
		l.enq = make(map[uuid.UUID]time.Time)
	}
	for _, id := range ids {
		l.enq[id] = now
	}
}

func (l *latencies) delivered(id uuid.UUID) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.enq[id]; ok {
		l.took = append(l.took, now.Sub(t))
		delete(l.enq, id)
	}
}

func (l *latencies) percentiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.took) == 0 {
		return 0, 0
	}
	slices.Sort(l.took)
	return l.took[len(l.took)*50/100], l.took[min(len(l.took)-1, len(l.took)*99/100)]
}

// timing wraps a handler to record when each message is first delivered successfully.
type timing struct {
	handler notifications.Handler
	lat     *latencies
}

func (t timing) Dispatcher(p notifications.MessagePayload, title, body string, h template.FuncMap) (notifications.DeliveryFunc, error) {
	fn, err := t.handler.Dispatcher(p, title, body, h)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, id uuid.UUID) (bool, error) {
		retryable, err := fn(ctx, id)
		if err == nil {
			t.lat.delivered(id)
		}
		return retryable, err
	}, nil
}
