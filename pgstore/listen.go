package pgstore

import (
	"context"
	"time"

	"cdr.dev/slog"

	"github.com/jackc/pgx/v5"
	"golang.org/x/xerrors"
)

// Listen implements notifications.NotifierStore. It holds a dedicated connection (outside
// the pool, so it never starves the host's queries) that LISTENs on the schema's channel,
// calls wake for every notification, and reconnects with backoff after losing the
// connection, calling wake again once it listens (notifications sent while it was away are
// lost, so the notifier should look). With PollOnly it returns nil at once.
func (s *Store) Listen(ctx context.Context, wake func()) error {
	if s.err != nil {
		return xerrors.Errorf("listen: %w", s.err)
	}
	if s.o.pollOnly || s.pool == nil {
		return nil
	}
	s.listen(ctx, s.channel(), wake, func(string) { wake() })
	return nil
}

// listen LISTENs on channel until ctx ends, calling connected each time it (re)starts
// listening and notify for every notification; it reconnects with backoff.
func (s *Store) listen(ctx context.Context, channel string, connected func(), notify func(payload string)) {
	backoff := listenMinBackoff
	for {
		err := s.listenOnce(ctx, channel, func() {
			backoff = listenMinBackoff
			connected()
		}, notify)
		if ctx.Err() != nil {
			return
		}
		s.o.log.Warn(ctx, "notification listener lost its connection; reconnecting",
			slog.F("channel", channel), slog.F("backoff", backoff), slog.Error(err))
		t := s.o.clock.NewTimer(backoff, "pgstore", "listenBackoff")
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, listenMaxBackoff)
	}
}

const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

func (s *Store) listenOnce(ctx context.Context, channel string, connected func(), notify func(string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return xerrors.Errorf("listen: connect: %w", err)
	}
	defer func() {
		_ = conn.Close(context.WithoutCancel(ctx))
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return xerrors.Errorf("listen: %w", err)
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return xerrors.Errorf("listen: wait for notification: %w", err)
		}
		notify(n.Payload)
	}
}
