package dispatch_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications/dispatch"
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
// why, and the client's memory stays flat. Not parallel, so that the allocation count is
// this test's own.
func TestSMTPHugeReplyIsRefused(t *testing.T) {
	line := "220-" + strings.Repeat("x", 996) + "\r\n"
	chunk := strings.Repeat(line, 64)
	for _, tc := range []struct {
		name string
		cfg  dispatch.SMTPConfig
	}{
		{"plain", dispatch.SMTPConfig{}},
		{"before STARTTLS", dispatch.SMTPConfig{TLS: dispatch.SMTPTLS{StartTLS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := streamingServer(t, func(c net.Conn) {
				go func() { _, _ = io.Copy(io.Discard, c) }()
				for {
					if _, err := io.WriteString(c, chunk); err != nil {
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
			if err == nil || !retryable {
				t.Fatalf("err = %v retryable = %v, want a retryable error", err, retryable)
			}
			if ctx.Err() != nil {
				t.Fatalf("the delivery ran until its deadline: %v", err)
			}
			if !strings.Contains(err.Error(), "reply") || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("err = %v, want it to say the reply is over a limit", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
				t.Fatalf("reading the reply allocated %d bytes", grew)
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
