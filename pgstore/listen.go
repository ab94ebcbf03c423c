package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/jackc/pgx/v5"
	"golang.org/x/xerrors"
)

// Listen implements notifications.NotifierStore. It holds a dedicated connection that
// LISTENs on the schema's channel, calls wake for every notification, and reconnects with
// backoff after losing the connection, calling wake again once it listens (notifications
// sent while it was away are lost, so the notifier should look). An idle connection is
// pinged every listener ping interval (default 30 s), so a dead one is replaced within
// about twice that.
//
// The connection comes from Config.ListenerConn or Config.ListenerDSN when given; otherwise it
// is acquired from the pool (through the pool's BeforeConnect/AfterConnect hooks, so
// rotated credentials work) and taken out of it. With PollOnly and no listener
// connection source, Listen returns nil at once: LISTEN cannot work through a transaction
// pooler, and the notifier relies on its FetchInterval.
//
// A connection from the pool is checked before it is trusted: it LISTENs on a probe
// channel of its own and the pool NOTIFYs it. Behind a transaction pooler (PgBouncer in
// transaction mode) the LISTEN stays on whichever server connection ran it, so the probe
// never arrives (within 5 seconds): Listen then logs a warning and returns nil,
// as with PollOnly.
func (s *Store) Listen(ctx context.Context, wake func()) error {
	if s.err != nil {
		return xerrors.Errorf("listen: %w", s.err)
	}
	if !s.canListen() {
		s.o.log.Info(ctx, "PollOnly without a listener connection source: no wake-ups, notifiers find new work at their FetchInterval")
		return nil
	}
	if errors.Is(s.listen(ctx, s.channel(), wake, func(string) { wake() }), errPooler) {
		s.o.log.Warn(ctx, poolerWarning+": no wake-ups, notifiers find new work at their FetchInterval; "+poolerAdvice,
			slog.F("probe_timeout", listenProbeTimeout))
	}
	return nil
}

// errPooler is listen's answer when its connection from the pool goes through a
// transaction pooler.
var errPooler = errors.New("the pool's connections go through a transaction pooler: LISTEN cannot work on them")

const (
	poolerWarning = "transaction pooler detected: a LISTEN on a connection from the pool never heard a NOTIFY"
	poolerAdvice  = "give the listener a direct connection (Config.ListenerDSN or Config.ListenerConn), or set PollOnly to skip the check"
	// listenProbeTimeout is how long a listener on a connection from the pool waits for
	// its probe NOTIFY before it concludes that a transaction pooler is in the way.
	listenProbeTimeout = 5 * time.Second
)

// canListen reports whether the store has a session it can LISTEN on.
func (s *Store) canListen() bool {
	return s.o.listenConnect != nil || (!s.o.pollOnly && s.pool != nil)
}

// listen LISTENs on channel until ctx ends, calling connected each time it (re)starts
// listening and notify for every notification; it reconnects with backoff. It returns nil
// when ctx ends, or errPooler (without calling connected) when its connection comes from
// the pool and goes through a transaction pooler.
func (s *Store) listen(ctx context.Context, channel string, connected func(), notify func(payload string)) error {
	backoff := listenMinBackoff
	for {
		err := s.listenOnce(ctx, channel, func() {
			backoff = listenMinBackoff
			connected()
		}, notify)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errPooler) {
			return err
		}
		s.o.log.Warn(ctx, "notification listener lost its connection; reconnecting",
			slog.F("channel", channel), slog.F("backoff", backoff), slog.Error(err))
		if sleep(ctx, s.o.clock, backoff, "listenBackoff") != nil {
			return nil
		}
		backoff = min(backoff*2, listenMaxBackoff)
	}
}

const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
	// DefaultListenerPingInterval is how long the listener's connection may stay silent
	// before it is pinged; see Config.ListenerPingInterval.
	DefaultListenerPingInterval = 30 * time.Second
)

// listenConn returns a connection of the listener's own: from the host's source, or taken
// out of the pool.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	if s.o.listenConnect != nil {
		return s.o.listenConnect(ctx)
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return c.Hijack(), nil
}

func (s *Store) listenOnce(ctx context.Context, channel string, connected func(), notify func(string)) error {
	conn, err := s.listenConn(ctx)
	if err != nil {
		return xerrors.Errorf("listen: connect: %w", err)
	}
	defer func() {
		_ = conn.Close(context.WithoutCancel(ctx))
	}()
	if s.o.listenConnect == nil {
		if err := s.probeListen(ctx, conn); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return xerrors.Errorf("listen: %w", err)
	}
	connected()
	for {
		// Wait at most one ping interval, then make sure the connection is alive: a
		// half-open TCP connection would otherwise wait forever.
		waitCtx, cancel := withClockTimeout(ctx, s.o.clock, s.o.pingInterval, "listenPing")
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if err == nil {
			notify(n.Payload)
			continue
		}
		if ctx.Err() != nil || waitCtx.Err() == nil {
			return xerrors.Errorf("listen: wait for notification: %w", err)
		}
		pingCtx, cancel := withClockTimeout(ctx, s.o.clock, s.o.pingInterval, "listenPingTimeout")
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return xerrors.Errorf("listen: ping: %w", err)
		}
	}
}

// probeListen makes sure that conn, taken out of the pool, hears a NOTIFY sent through
// the pool: it LISTENs on a channel of its own, NOTIFYs it through the pool, and waits
// for it at most listenProbeTimeout (real time: a round trip, not a schedule). It returns
// errPooler when the notification does not arrive.
func (s *Store) probeListen(ctx context.Context, conn *pgx.Conn) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	channel := "notifications_probe_" + hex.EncodeToString(b)
	ident := pgx.Identifier{channel}.Sanitize()
	if _, err := conn.Exec(ctx, "LISTEN "+ident); err != nil {
		return xerrors.Errorf("listen: probe: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, '')", channel); err != nil {
		return xerrors.Errorf("listen: probe: notify: %w", translate(err))
	}
	waitCtx, cancel := context.WithTimeout(ctx, listenProbeTimeout)
	_, err := conn.WaitForNotification(waitCtx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && waitCtx.Err() != nil {
			return errPooler
		}
		return xerrors.Errorf("listen: probe: wait: %w", err)
	}
	if _, err := conn.Exec(ctx, "UNLISTEN "+ident); err != nil {
		return xerrors.Errorf("listen: probe: %w", err)
	}
	return nil
}

// withClockTimeout is context.WithTimeout on c.
func withClockTimeout(ctx context.Context, c quartz.Clock, d time.Duration, tag string) (context.Context, context.CancelFunc) {
	inner, cancel := context.WithCancel(ctx)
	t := c.AfterFunc(d, cancel, "pgstore", tag)
	return inner, func() { t.Stop(); cancel() }
}

// sleep waits d on c, or until ctx ends.
func sleep(ctx context.Context, c quartz.Clock, d time.Duration, tag string) error {
	t := c.NewTimer(d, "pgstore", tag)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
