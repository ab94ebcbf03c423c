package pgstore_test

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// TestListenerUsesPoolHooks: the listener's connection is made through the pool's
// BeforeConnect hook (where hosts put rotated credentials or IAM tokens), not around it.
func TestListenerUsesPoolHooks(t *testing.T) {
	t.Parallel()
	direct, schema := pgtest.Schema(t)
	ctx, cfg := poolConfig(t)
	app := "hooked-" + schema
	cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		cc.RuntimeParams["application_name"] = app
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema})
	listenCtx, stop := context.WithCancel(ctx)
	woken := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() { done <- store.Listen(listenCtx, func() { woken <- struct{}{} }) }()
	<-woken
	var got string
	err = direct.QueryRow(ctx, `SELECT application_name FROM pg_stat_activity WHERE query = 'LISTEN ' || quote_ident($1)`, schema+".wake").Scan(&got)
	if err != nil || got != app {
		t.Fatalf("listener backend application_name %q (%v), want %q set by the pool's BeforeConnect", got, err, app)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestListenerReplacesDeadConnection: a listener connection that goes silent (a half-open
// TCP connection: here a proxy that stops forwarding) is pinged and replaced within a
// bounded time, and wake-ups resume on the new connection.
func TestListenerReplacesDeadConnection(t *testing.T) {
	t.Parallel()
	store, pool, schema := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	px := newFreezingProxy(t, u.Host)
	u.Host = px.addr()
	const ping = 100 * time.Millisecond
	listener := pgstore.New(pool, pgstore.Config{Schema: schema, ListenerPingInterval: ping,
		ListenerConn: func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, u.String()) }})
	listenCtx, stop := context.WithCancel(ctx)
	woken := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- listener.Listen(listenCtx, func() { woken <- struct{}{} }) }()
	<-woken // listening

	px.freeze()
	frozeAt := time.Now()
	select {
	case <-woken: // the reconnect's catch-up wake-up
	case <-ctx.Done():
		t.Fatal("the silent listener connection was never replaced")
	}
	took := time.Since(frozeAt)
	t.Logf("silent listener connection replaced after %s (ping interval %s)", took, ping)
	if took > 20*ping {
		t.Fatalf("replacing the dead connection took %s, want about 2-3 ping intervals", took)
	}
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}}, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-ctx.Done():
		t.Fatal("no wake-up on the new listener connection")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// freezingProxy forwards TCP connections to target until freeze, after which the
// connections open then stop carrying bytes without being closed (as a half-open
// connection behaves); later connections work.
type freezingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen map[net.Conn]bool
	wg     sync.WaitGroup
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target, frozen: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.frozen {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *freezingProxy) addr() string { return p.ln.Addr().String() }

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.frozen {
		p.frozen[c] = true
	}
}

func (p *freezingProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.frozen[client], p.frozen[server] = false, false
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(client, server) })
		p.wg.Go(func() { p.pipe(server, client) })
	}
}

// pipe copies src to dst until src is frozen (then it drops what it reads) or closed.
func (p *freezingProxy) pipe(src, dst net.Conn) {
	defer func() { _ = dst.Close() }()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen[src]
			p.mu.Unlock()
			if !frozen {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // closed, or io.EOF
		}
	}
}
