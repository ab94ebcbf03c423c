package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cdr.dev/slog/sloggers/slogtest"
	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/internal/smtpcapture"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"))
}

// TestHostServer starts the server against the test database and an in-process SMTP
// server and walks every endpoint the way a client would, ending with a graceful shutdown
// while an event stream is open.
func TestHostServer(t *testing.T) {
	pool, schema := pgtest.Schema(t)
	mail, err := smtpcapture.Start(smtpcapture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()

	cfg, err := configFromEnv(func(k string) string {
		return map[string]string{
			"DATABASE_URL": pgtest.URL(t), "ADDR": "127.0.0.1:0", "NOTIFICATIONS_SCHEMA": schema, "APP_SCHEMA": schema,
			"APP_NAME": "Hostserver", "BASE_URL": "https://app.example.com", "SHUTDOWN_TIMEOUT": "10s",
			"SMTP_SMARTHOST": mail.Addr, "SMTP_FROM": "Hostserver <noreply@example.com>",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	serverCtx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	addrCh := make(chan string, 1)
	runErr := make(chan error, 1)
	go func() {
		runErr <- run(serverCtx, cfg, slogtest.Make(t, &slogtest.Options{IgnoreErrors: true}), func(addr string) { addrCh <- addr })
	}()
	var base string
	select {
	case addr := <-addrCh:
		base = "http://" + addr
	case err := <-runErr:
		t.Fatalf("server did not start: %v", err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()

	call := func(method, path, body string, wantStatus int, out any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
			}
		}
	}

	call("GET", "/healthz", "", http.StatusOK, nil)

	// Subscribe to the live stream of a user about to sign up (client-chosen ID).
	userID := uuid.New()
	streamReq, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/users/%s/inbox/stream", base, userID), nil)
	stream, err := client.Do(streamReq)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if ct := stream.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q", ct)
	}
	events := bufio.NewReader(stream.Body)
	if line, err := events.ReadString('\n'); err != nil || line != ": subscribed\n" {
		t.Fatalf("stream started with %q, %v", line, err)
	}

	var created struct {
		ID            uuid.UUID   `json:"id"`
		Notifications []uuid.UUID `json:"notifications"`
	}
	call("POST", "/users", fmt.Sprintf(`{"id":%q,"email":"ada@example.com","name":"Ada","username":"ada"}`, userID), http.StatusCreated, &created)
	if created.ID != userID || len(created.Notifications) != 2 {
		t.Fatalf("created %+v, want user %s with an email and an inbox message", created, userID)
	}

	// The inbox item arrives on the stream, the email at the SMTP server.
	var event struct {
		ID    uuid.UUID `json:"id"`
		Title string    `json:"title"`
	}
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(data), &event); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if event.Title != "Welcome to Hostserver, Ada" {
		t.Fatalf("stream event title %q", event.Title)
	}
	if err := mail.Wait(ctx, 1); err != nil {
		t.Fatalf("no welcome email: %v", err)
	}
	if m := mail.Mails()[0]; m.To != "ada@example.com" || !strings.Contains(string(m.Data), "Subject: Welcome to Hostserver, Ada") {
		t.Fatalf("email to %s:\n%s", m.To, m.Data)
	}

	// Inbox endpoints.
	var page struct {
		Items []struct {
			ID      uuid.UUID `json:"id"`
			Title   string    `json:"title"`
			Actions []struct {
				URL string `json:"url"`
			} `json:"actions"`
			Read bool `json:"read"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	call("GET", "/users/"+userID.String()+"/inbox", "", http.StatusOK, &page)
	items := page.Items
	if len(items) != 1 || items[0].ID != event.ID || items[0].Read || len(items[0].Actions) != 1 || items[0].Actions[0].URL != "https://app.example.com/" || page.NextCursor != "" {
		t.Fatalf("inbox %+v", page)
	}
	call("GET", "/users/"+userID.String()+"/inbox?cursor=not-a-cursor", "", http.StatusBadRequest, nil)
	var unread struct{ Unread int }
	call("GET", "/users/"+userID.String()+"/inbox/unread-count", "", http.StatusOK, &unread)
	if unread.Unread != 1 {
		t.Fatalf("unread %d, want 1", unread.Unread)
	}
	call("POST", "/users/"+userID.String()+"/inbox/"+event.ID.String()+"/read", "", http.StatusNoContent, nil)
	// Every open screen follows the read state: the stream carries a read event.
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		if line != "event: read\n" {
			continue
		}
		if _, err := events.ReadString('\n'); err != nil { // id:
			t.Fatal(err)
		}
		data, _ := events.ReadString('\n')
		if data != fmt.Sprintf("data: {\"id\":%q}\n", event.ID) {
			t.Fatalf("read event data %q, want the item's ID", data)
		}
		break
	}
	call("GET", "/users/"+userID.String()+"/inbox/unread-count", "", http.StatusOK, &unread)
	if unread.Unread != 0 {
		t.Fatalf("unread %d after mark read, want 0", unread.Unread)
	}
	call("POST", "/users/"+uuid.NewString()+"/inbox/"+event.ID.String()+"/read", "", http.StatusNotFound, nil)
	call("GET", "/users/not-a-uuid/inbox", "", http.StatusBadRequest, nil)
	call("GET", "/users/"+userID.String()+"/inbox?limit=0", "", http.StatusBadRequest, nil)

	// Bad input and the transaction: a taken email is refused and enqueues nothing.
	call("POST", "/users", `{"email":"x@example.com"`, http.StatusBadRequest, nil)
	call("POST", "/users", `{"email":"x@example.com","username":"x","admin":true}`, http.StatusBadRequest, nil)
	call("POST", "/users", `{"email":"ada@example.com","name":"Ada 2","username":"ada2"}`, http.StatusConflict, nil)
	var messages int
	if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %q.messages`, schema)).Scan(&messages); err != nil {
		t.Fatal(err)
	}
	if messages != 2 {
		t.Fatalf("%d messages stored, want the 2 of the one successful signup", messages)
	}

	// Metrics: the deliveries above are counted.
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`notifications_dispatch_attempts_total{method="inbox"`, `notifications_dispatch_attempts_total{method="smtp"`, "go_goroutines"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Graceful shutdown with the stream still open: run returns, the stream ends.
	shutdown()
	if err := <-runErr; err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := io.Copy(io.Discard, events); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "DATABASE_URL"},
		{map[string]string{"DATABASE_URL": "postgres://x", "SHUTDOWN_TIMEOUT": "soon"}, "SHUTDOWN_TIMEOUT"},
		{map[string]string{"DATABASE_URL": "postgres://x", "SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"},
		{map[string]string{"DATABASE_URL": "postgres://x", "SMTP_SMARTHOST": "mail:25"}, "SMTP_FROM"},
	} {
		if _, err := configFromEnv(func(k string) string { return tc.env[k] }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: err = %v, want one naming %s", tc.env, err, tc.want)
		}
	}
}
