// Command demo runs the library's main job on the embedded in-memory store: it registers
// a few templates, creates a few hundred recipients (some with a template disabled, one
// template opt-in), enqueues a few thousand notifications, and delivers them for real to a
// local webhook receiver (which verifies signatures and fails a share of requests with 500
// so retries show) and to the in-app inbox, with a live progress line. It ends with a table
// of final statuses per method, throughput and enqueue→delivery latency, and writes one
// webhook body to the output folder.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/memstore"
)

func main() {
	users := flag.Int("users", 300, "recipients")
	perUser := flag.Int("per-user", 10, "notifications per recipient")
	failRate := flag.Float64("fail-rate", 0.1, "share of webhook requests answered with 500")
	out := flag.String("out", "out/demo", "output folder")
	flag.Parse()
	if err := run(*users, *perUser, *failRate, *out); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

var (
	tmplWelcome = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a01"), Name: "Welcome", Group: "Account", Kind: "system",
		TitleTemplate: "Welcome to {{app_name}}, {{.UserName}}",
		BodyTemplate:  "Hi {{.UserName}},\n\nYour account **{{.UserUsername}}** is ready.",
		Actions:       []notifications.TemplateAction{{Label: "Get started", URL: "{{base_url}}/start"}},
		Method:        notifications.MethodWebhook, EnabledByDefault: true,
	}
	tmplReset = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a02"), Name: "Password reset", Group: "Account", Kind: "system",
		TitleTemplate: "Reset your password",
		BodyTemplate:  "Someone asked to reset the password of **{{.UserUsername}}**. Code: `{{.Labels.code}}`.",
		Actions:       []notifications.TemplateAction{{Label: "Reset password", URL: "{{base_url}}/reset?code={{.Labels.code}}"}},
		Method:        notifications.MethodWebhook, EnabledByDefault: true,
	}
	tmplBuild = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a03"), Name: "Build failed", Group: "CI", Kind: "event",
		TitleTemplate: "Build {{.Labels.build}} of {{.Labels.repo}} failed",
		BodyTemplate:  "The build **{{.Labels.build}}** of `{{.Labels.repo}}` failed at step {{.Labels.step}}.",
		Actions:       []notifications.TemplateAction{{Label: "View logs", URL: "{{base_url}}/builds/{{.Labels.build}}"}},
		Method:        notifications.MethodInbox, EnabledByDefault: true,
	}
	tmplDigest = notifications.Template{ // opt-in
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a04"), Name: "Weekly digest", Group: "Digest", Kind: "digest",
		TitleTemplate: "Your week on {{app_name}}", BodyTemplate: "{{.Labels.count}} builds ran this week.",
		Method: notifications.MethodInbox, EnabledByDefault: false,
	}
)

const secret = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5"

func run(nUsers, perUser int, failRate float64, outDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	store := memstore.New()
	helpers := template.FuncMap{
		"app_name": func() string { return "Acme CI" },
		"base_url": func() string { return "https://ci.acme.example" },
	}
	if err := notifications.RegisterTemplates(ctx, store, helpers, tmplWelcome, tmplReset, tmplBuild, tmplDigest); err != nil {
		return err
	}

	// The webhook receiver: verifies every signature, fails a share with 500.
	recv := newReceiver(failRate)
	srv := httptest.NewServer(recv)
	defer srv.Close()
	webhook, err := dispatch.NewWebhook(dispatch.WebhookConfig{
		URL: srv.URL + "/hook", Secrets: []string{secret},
		AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		return err
	}
	broker := dispatch.NewMemoryBroker()
	inbox, err := dispatch.NewInbox(store, broker)
	if err != nil {
		return err
	}

	cfg := notifications.DefaultConfig()
	cfg.Method = notifications.MethodWebhook
	cfg.LeaseCount = 100
	cfg.StoreSyncBufferSize = 200
	cfg.StoreSyncInterval = 50 * time.Millisecond
	cfg.FetchInterval = 100 * time.Millisecond
	cfg.RetryInterval = 200 * time.Millisecond
	cfg.MaxRetryInterval = time.Second
	cfg.MaxSendAttempts = 3

	reg := prometheus.NewRegistry()
	metrics := notifications.NewMetrics(reg)
	lat := &latencies{}
	timed := timing{handler: webhook, lat: lat}
	timedInbox := timing{handler: inbox, lat: lat}
	mgr, err := notifications.NewManager(cfg, store, map[notifications.Method]notifications.Handler{
		notifications.MethodWebhook: timed, notifications.MethodInbox: timedInbox,
	}, notifications.WithHelpers(helpers), notifications.WithMetrics(metrics))
	if err != nil {
		return err
	}

	// Recipients: every 10th disabled the build template; every 3rd opted in to the digest.
	users := make([]notifications.Recipient, nUsers)
	for i := range users {
		users[i] = notifications.Recipient{UserID: uuid.New(), Email: fmt.Sprintf("user%d@example.com", i), Name: fmt.Sprintf("User %d", i), Username: fmt.Sprintf("user%d", i)}
		if i%10 == 0 {
			_ = store.SetPreference(ctx, users[i].UserID, tmplBuild.ID, true)
		}
		if i%3 == 0 {
			_ = store.SetPreference(ctx, users[i].UserID, tmplDigest.ID, false)
		}
	}
	byID := make(map[uuid.UUID]notifications.Recipient, len(users))
	for _, u := range users {
		byID[u.UserID] = u
	}
	enq, err := notifications.NewStoreEnqueuer(cfg, store, notifications.EnqueuerOptions{
		Helpers: helpers,
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

	fmt.Printf("demo: %d recipients × %d notifications, webhook at %s failing %.0f%% of requests\n", nUsers, perUser, srv.URL, failRate*100)
	mgr.Run(ctx)
	start := time.Now()
	var refusedDup, refusedDisabled, enqueued int
	templates := []notifications.Template{tmplWelcome, tmplReset, tmplBuild, tmplDigest}
	for i := 0; i < perUser; i++ {
		for j, u := range users {
			t := templates[(i+j)%len(templates)]
			labels := map[string]string{"code": fmt.Sprint(100000 + (i*7+j)%900000), "build": fmt.Sprint(1000 + i), "repo": "acme/api", "step": "test", "count": fmt.Sprint(i + j)}
			if t.ID == tmplWelcome.ID {
				labels = nil // identical every time: the second one a day is a duplicate
			}
			ids, err := enq.Enqueue(ctx, u.UserID, t.ID, labels, "demo")
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
		}
	}

	// Drain with a progress line.
	for {
		counts, err := store.CountByStatus(ctx)
		if err != nil {
			return err
		}
		done := counts[notifications.StatusSent] + counts[notifications.StatusPermanentFailure] + counts[notifications.StatusInhibited]
		fmt.Printf("\r%s %d/%d done (%d retrying)", bar(done, enqueued, 30), done, enqueued, counts[notifications.StatusTemporaryFailure])
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

	// The table: final status per method, from the store.
	all, err := store.Messages(ctx, notifications.MessageFilter{})
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
	for _, m := range methods {
		r := rows[m]
		n := r.sent + r.perm + r.inhibited + r.other
		total += n
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", m, r.sent, r.retried, r.perm, r.inhibited, r.other, n)
	}
	tw.Flush()
	fmt.Printf("refused at enqueue: %d duplicates, %d disabled or not opted in\n", refusedDup, refusedDisabled)
	p50, p99 := lat.percentiles()
	fmt.Printf("%d messages in %s: %.0f msgs/s; enqueue→delivery p50 %s, p99 %s\n", enqueued, elapsed.Round(time.Millisecond),
		float64(enqueued)/elapsed.Seconds(), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	fmt.Printf("webhook receiver: %d requests, %d answered 500, %d bad signatures\n", recv.requests.Load(), recv.failed.Load(), recv.badSig.Load())

	if b := recv.sample(); b != nil {
		path := filepath.Join(outDir, "webhook.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	if total != enqueued || recv.badSig.Load() != 0 {
		return fmt.Errorf("accounting failed: %d messages stored, %d enqueued, %d bad signatures", total, enqueued, recv.badSig.Load())
	}
	for _, r := range rows {
		if r.other != 0 {
			return fmt.Errorf("%d messages did not reach a final status", r.other)
		}
	}
	return nil
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

func newReceiver(failRate float64) *receiver { return &receiver{failRate: failRate} }

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
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return slices.Contains(strings.Fields(h.Get("webhook-signature")), want)
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
