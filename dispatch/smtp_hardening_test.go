package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/internal/smtpcapture"
)

// streamingServer accepts connections and runs serve on each until the test ends.
func streamingServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestSMTPHugeReplyIsRefused: a server that streams an endless multi-line greeting (before
// any TLS) is cut off after a bounded reply, quickly, with a retryable error that says
// why, and the client's memory stays flat: it allocates a small fraction of what the
// server streams at it. The allocation count is the process's, so it must be the client's
// alone: the server writes one pre-built slice over and over (no allocation per write),
// and the test is not parallel.
func TestSMTPHugeReplyIsRefused(t *testing.T) {
	line := "220-" + strings.Repeat("x", 996) + "\r\n"
	chunk := []byte(strings.Repeat(line, 64))
	for _, tc := range []struct {
		name string
		cfg  dispatch.SMTPConfig
	}{
		{"plain", dispatch.SMTPConfig{}},
		{"before STARTTLS", dispatch.SMTPConfig{TLS: dispatch.SMTPTLS{StartTLS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var streamed atomic.Int64
			addr := streamingServer(t, func(c net.Conn) {
				go func() { _, _ = io.Copy(io.Discard, c) }()
				for {
					n, err := c.Write(chunk)
					streamed.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			tc.cfg.Smarthost = addr
			h := newSMTP(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			fn, err := h.Dispatcher(samplePayload(), "hi", "body", nil)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			retryable, err := fn(ctx, uuid.New())
			runtime.ReadMemStats(&after)
			sent := streamed.Load()
			if err == nil || !retryable {
				t.Fatalf("err = %v retryable = %v, want a retryable error", err, retryable)
			}
			if ctx.Err() != nil {
				t.Fatalf("the delivery ran until its deadline: %v", err)
			}
			if !strings.Contains(err.Error(), "reply") || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("err = %v, want it to say the reply is over a limit", err)
			}
			grew := after.TotalAlloc - before.TotalAlloc
			t.Logf("the server streamed %d bytes (at least); the process allocated %d", sent, grew)
			if sent <= dispatch.MaxSMTPReplyBytes {
				t.Fatalf("the server streamed only %d bytes, not over the %d-byte reply limit", sent, dispatch.MaxSMTPReplyBytes)
			}
			if grew > 1<<20 {
				t.Fatalf("reading the reply allocated %d bytes (the server streamed %d)", grew, sent)
			}
		})
	}
}

// deadlineCtx is a context whose deadline passes when the test says so, not by the wall
// clock: Err reports context.DeadlineExceeded once expire is called.
type deadlineCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newDeadlineCtx() *deadlineCtx {
	return &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineCtx) expire()               { c.once.Do(func() { close(c.done) }) }
func (c *deadlineCtx) Done() <-chan struct{} { return c.done }
func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestSMTPTimeoutErrorWrapsDeadline: when the delivery's deadline passes mid-session, the
// error wraps context.DeadlineExceeded and reads cleanly.
func TestSMTPTimeoutErrorWrapsDeadline(t *testing.T) {
	t.Parallel()
	accepted := make(chan struct{}, 1)
	addr := streamingServer(t, func(c net.Conn) {
		accepted <- struct{}{}
		_, _ = io.Copy(io.Discard, c) // never greets
	})
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: addr})
	fn, err := h.Dispatcher(samplePayload(), "hi", "body", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newDeadlineCtx()
	go func() {
		<-accepted
		ctx.expire()
	}()
	retryable, err := fn(ctx, uuid.New())
	if err == nil || !retryable || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "%!") {
		t.Fatalf("err = %v retryable = %v, want a retryable error wrapping context.DeadlineExceeded", err, retryable)
	}
}

// TestSMTPAuthLoginIgnoresChallengeText: LOGIN sends the user name, then the password,
// whatever text the server's challenges carry; a refused password is a permanent failure
// that says "authentication failed".
func TestSMTPAuthLoginIgnoresChallengeText(t *testing.T) {
	t.Parallel()
	users := map[string]string{"ada": "s3cret"}
	for _, tc := range []struct {
		name       string
		challenges [2]string
		password   string
		wantErr    string
	}{
		{name: "NUL-terminated", challenges: [2]string{"Username\x00", "Password\x00"}, password: "s3cret"},
		{name: "localised", challenges: [2]string{"Benutzername:", "Passwort:"}, password: "s3cret"},
		{name: "empty", challenges: [2]string{"", ""}, password: "s3cret"},
		{name: "standard", challenges: [2]string{"Username:", "Password:"}, password: "s3cret"},
		{name: "bad password", challenges: [2]string{"Username\x00", "Password\x00"}, password: "wrong", wantErr: "authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, smtpcapture.Options{Mechanisms: []string{"LOGIN"}, Users: users, LoginChallenges: &tc.challenges})
			h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, Auth: dispatch.SMTPAuth{Username: "ada", Password: tc.password}})
			_, retryable, err := sendMail(t, h, samplePayload(), "hi")
			if tc.wantErr != "" {
				if err == nil || retryable || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "535") {
					t.Fatalf("err = %v retryable = %v, want a permanent error saying %q with the 535 reply", err, retryable, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("deliver: %v (retryable %v)", err, retryable)
			}
			if got := srv.Mails()[0].User; got != "ada" {
				t.Fatalf("authenticated as %q", got)
			}
		})
	}
}

// TestSMTPDisplayNamesFolded: long display names in To and From (CJK, emoji, long ASCII,
// mixed) go out as folded RFC 2047 words or folded quoted strings: no header line over 78
// octets, and the names decode back.
func TestSMTPDisplayNamesFolded(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		strings.Repeat("漢", 110),
		strings.Repeat("🎉", 60),
		strings.Repeat("Ada Lovelace ", 20),
		strings.Repeat("x", 150),
		"Zoë " + strings.Repeat("Grüße 日本語 and \"quotes\" \\ ", 8),
	} {
		t.Run(fmt.Sprintf("%.12s", name), func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, smtpcapture.Options{})
			h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, From: (&mail.Address{Name: name, Address: "bot@example.com"}).String()})
			p := samplePayload()
			p.UserName = name
			if _, _, err := sendMail(t, h, p, "hi"); err != nil {
				t.Fatalf("deliver: %v", err)
			}
			raw := string(srv.Mails()[0].Data)
			header, _, _ := strings.Cut(raw, "\r\n\r\n")
			for _, line := range strings.Split(header, "\r\n") {
				if len(line) > 78 && !strings.HasPrefix(line, "Content-Type") {
					t.Errorf("header line of %d octets: %q", len(line), line)
				}
			}
			msg, err := mail.ReadMessage(strings.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			for _, field := range []string{"From", "To"} {
				a, err := mail.ParseAddress(msg.Header.Get(field))
				if err != nil {
					t.Fatalf("%s %q: %v", field, msg.Header.Get(field), err)
				}
				if want := strings.Join(strings.Fields(name), " "); a.Name != want {
					t.Errorf("%s name = %q, want %q", field, a.Name, want)
				}
			}
		})
	}
}

// TestSMTPInternationalisedAddresses: an address with a non-ASCII local part goes out with
// SMTPUTF8 when the server offers it and fails permanently, saying why, when it does not;
// a non-ASCII domain is sent as A-labels and needs no extension.
func TestSMTPInternationalisedAddresses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		smtputf8    bool
		from, rcpt  string
		wantRcpt    string
		wantUTF8    bool
		wantErr     string
		wantToInHdr string
	}{
		{name: "UTF-8 local part, server offers SMTPUTF8", smtputf8: true, rcpt: "ü@exämple.org", wantRcpt: "ü@xn--exmple-cua.org", wantUTF8: true, wantToInHdr: "<ü@xn--exmple-cua.org>"},
		{name: "UTF-8 local part, server without SMTPUTF8", rcpt: "ü@exämple.org", wantErr: "does not support internationalised addresses"},
		{name: "IDNA domain only, server without SMTPUTF8", rcpt: "user@exämple.org", wantRcpt: "user@xn--exmple-cua.org", wantToInHdr: "<user@xn--exmple-cua.org>"},
		{name: "UTF-8 sender, server without SMTPUTF8", from: "Bøt <bøt@example.com>", rcpt: "ada@example.com", wantErr: "does not support internationalised addresses"},
		{name: "ASCII only, server offers SMTPUTF8", smtputf8: true, rcpt: "ada@example.com", wantRcpt: "ada@example.com", wantToInHdr: "<ada@example.com>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, smtpcapture.Options{SMTPUTF8: tc.smtputf8})
			h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, From: tc.from})
			p := samplePayload()
			p.UserEmail = tc.rcpt
			_, retryable, err := sendMail(t, h, p, "hi")
			if tc.wantErr != "" {
				if err == nil || retryable || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v retryable = %v, want a permanent error saying %q", err, retryable, tc.wantErr)
				}
				if srv.Count() != 0 {
					t.Fatal("a mail was accepted")
				}
				return
			}
			if err != nil {
				t.Fatalf("deliver: %v", err)
			}
			m := srv.Mails()[0]
			if m.To != tc.wantRcpt || m.UTF8 != tc.wantUTF8 {
				t.Fatalf("RCPT TO %q SMTPUTF8 %v, want %q %v", m.To, m.UTF8, tc.wantRcpt, tc.wantUTF8)
			}
			msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
			if err != nil {
				t.Fatal(err)
			}
			if to := msg.Header.Get("To"); !strings.HasSuffix(to, tc.wantToInHdr) {
				t.Fatalf("To: %q, want it to end with %q", to, tc.wantToInHdr)
			}
		})
	}
}
