package notifications

import (
	"errors"
	"fmt"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/google/uuid"
)

// Config configures a Manager. Start from DefaultConfig and change what you need;
// NewManager validates it.
type Config struct {
	// Clock is what the Manager reads the time from and waits on. Default (nil): the real
	// clock. Tests pass quartz.NewMock(t). The dispatch deadline a DeliveryFunc's context
	// reports is on this clock too: under a mock clock it is in the mock's time, so a
	// handler that does real network I/O (whose deadlines the operating system enforces on
	// the wall clock) belongs with the real clock.
	Clock quartz.Clock

	// Logger receives the Manager's logs, named "notifications" and carrying the notifier
	// ID. Default (the zero Logger): discard everything.
	Logger slog.Logger

	// Metrics records the Manager's metrics (NewMetrics registers them). Default (nil): a
	// private set that is not registered anywhere.
	Metrics *Metrics

	// Registry holds the helpers title and body templates call, and that handlers receive.
	// Give the Manager the Registry the templates were registered with, and the enqueuer
	// the same one. Default (nil): no helpers.
	Registry *Registry

	// NotifierID is the ID the Manager leases under. Default (uuid.Nil): a random UUID, new
	// for every Manager. Two live Managers must never share an ID.
	NotifierID uuid.UUID

	// MaxSendAttempts bounds how many times one message is leased for delivery, including
	// leases that expired because the process died mid-delivery. Default: 5. Bounds: 1 to
	// 1,000.
	MaxSendAttempts int

	// RetryInterval is the delay before a message that failed with a retryable error is
	// eligible again. Default: 5m. Bounds: positive, at most MaxRetryInterval.
	RetryInterval time.Duration

	// MaxRetryInterval caps every retry delay: the computed one, jitter included, and one a
	// handler asks for with RetryAfter (an HTTP Retry-After of a year waits this long). When
	// it is greater than RetryInterval the delay doubles with every attempt up to this cap;
	// when equal, the delay is fixed. Default: 5m (fixed delay). Bounds: at least
	// RetryInterval, at most 30 days.
	MaxRetryInterval time.Duration

	// RetryJitter spreads retry delays by up to this fraction either way (0.1 = ±10%) so
	// that a burst of failures does not retry in lockstep. 0 disables jitter. Default: 0.1.
	RetryJitter float64

	// StoreSyncInterval is how often buffered delivery results are written to the store.
	// A full buffer is written at once without waiting for the interval. Default: 2s.
	// Bounds: positive, at most 1m, and see LeasePeriod.
	StoreSyncInterval time.Duration

	// StoreSyncBufferSize is the capacity of each of the success and failure buffers, and
	// so the most rows one bulk update carries. When the store is slower than delivery,
	// full buffers block deliveries and further leasing (backpressure). Default: 50.
	// Bounds: 1 to 10,000.
	StoreSyncBufferSize int

	// LeasePeriod is how long a leased message stays reserved for the notifier that leased
	// it. A message whose lease expires is leased again (by any notifier). Default: 2m.
	// Bounds: at most 24h, and DispatchTimeout + StoreSyncInterval + LeasePeriod/10 (a
	// margin for the bulk write) must be less than LeasePeriod, so that a result is written
	// before the lease it was delivered under expires: otherwise the Manager would deliver
	// its own successes again.
	LeasePeriod time.Duration

	// LeaseCount is the most messages one notifier has in flight at once. Default: 20.
	// Bounds: 1 to 10,000.
	LeaseCount int

	// FetchInterval is how often the notifier polls the store when it was not woken by new
	// work. Default: 15s. Bounds: positive, at most 1h.
	FetchInterval time.Duration

	// DispatchTimeout bounds one delivery: the handler's context has this deadline (on the
	// Manager's clock) and ends with context.DeadlineExceeded. Default: 1m. Bounds:
	// positive, less than LeasePeriod (see LeasePeriod for the exact rule).
	DispatchTimeout time.Duration

	// RetentionPeriod is how long finished messages (sent, permanently failed, inhibited,
	// canceled) are kept before they are purged. 0 keeps them forever. Default: 7 days. Bounds: 0 or
	// positive, at most 10 years.
	RetentionPeriod time.Duration

	// InboxRetentionPeriod is how long inbox items are kept after they were read; unread
	// items are kept. The Manager purges them with finished messages (so only while
	// RetentionPeriod is positive). 0 keeps them forever. Default: 30 days. Bounds: 0 or
	// positive, at most 10 years.
	InboxRetentionPeriod time.Duration
}

// Upper bounds of Config fields: beyond them a value is a mistake (a unit slip, an
// overflow) that would exhaust memory or park messages for ever.
const (
	maxSendAttempts      = 1000
	maxRetryInterval     = 30 * 24 * time.Hour
	maxStoreSyncInterval = time.Minute
	maxBufferSize        = 10000
	maxLeasePeriod       = 24 * time.Hour
	maxLeaseCount        = 10000
	maxFetchInterval     = time.Hour
	maxRetention         = 10 * 365 * 24 * time.Hour
)

// DefaultConfig returns the configuration documented on each Config field.
func DefaultConfig() Config {
	return Config{
		MaxSendAttempts:      5,
		RetryInterval:        5 * time.Minute,
		MaxRetryInterval:     5 * time.Minute,
		RetryJitter:          0.1,
		StoreSyncInterval:    2 * time.Second,
		StoreSyncBufferSize:  50,
		LeasePeriod:          2 * time.Minute,
		LeaseCount:           20,
		FetchInterval:        15 * time.Second,
		DispatchTimeout:      time.Minute,
		RetentionPeriod:      7 * 24 * time.Hour,
		InboxRetentionPeriod: 30 * 24 * time.Hour,
	}
}

// Validate reports every problem with c, one sentence each, wrapped with
// ErrInvalidConfig (and ErrInvalidDispatchTimeout where that is the problem).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.MaxSendAttempts < 1 || c.MaxSendAttempts > maxSendAttempts {
		bad("Config.MaxSendAttempts must be at least 1 and at most %d, got %d.", maxSendAttempts, c.MaxSendAttempts)
	}
	if c.RetryInterval <= 0 {
		bad("Config.RetryInterval must be positive, got %s.", c.RetryInterval)
	}
	if c.MaxRetryInterval < c.RetryInterval {
		bad("Config.MaxRetryInterval (%s) must be at least Config.RetryInterval (%s).", c.MaxRetryInterval, c.RetryInterval)
	} else if c.MaxRetryInterval > maxRetryInterval {
		bad("Config.MaxRetryInterval must be at most %s, got %s.", maxRetryInterval, c.MaxRetryInterval)
	}
	if c.RetryJitter < 0 || c.RetryJitter >= 1 {
		bad("Config.RetryJitter must be at least 0 and less than 1, got %g.", c.RetryJitter)
	}
	if c.StoreSyncInterval <= 0 || c.StoreSyncInterval > maxStoreSyncInterval {
		bad("Config.StoreSyncInterval must be positive and at most %s, got %s.", maxStoreSyncInterval, c.StoreSyncInterval)
	}
	if c.StoreSyncBufferSize < 1 || c.StoreSyncBufferSize > maxBufferSize {
		bad("Config.StoreSyncBufferSize must be at least 1 and at most %d, got %d.", maxBufferSize, c.StoreSyncBufferSize)
	}
	if c.LeasePeriod <= 0 || c.LeasePeriod > maxLeasePeriod {
		bad("Config.LeasePeriod must be positive and at most %s, got %s.", maxLeasePeriod, c.LeasePeriod)
	}
	if c.LeaseCount < 1 || c.LeaseCount > maxLeaseCount {
		bad("Config.LeaseCount must be at least 1 and at most %d, got %d.", maxLeaseCount, c.LeaseCount)
	}
	if c.FetchInterval <= 0 || c.FetchInterval > maxFetchInterval {
		bad("Config.FetchInterval must be positive and at most %s, got %s.", maxFetchInterval, c.FetchInterval)
	}
	switch {
	case c.DispatchTimeout <= 0:
		bad("Config.DispatchTimeout must be positive, got %s.", c.DispatchTimeout)
	case c.LeasePeriod <= 0 || c.LeasePeriod > maxLeasePeriod:
		// Reported above.
	case c.DispatchTimeout >= c.LeasePeriod:
		errs = append(errs, fmt.Errorf("Config.DispatchTimeout (%s) must be less than Config.LeasePeriod (%s), so that a lease never expires under a running delivery: %w",
			c.DispatchTimeout, c.LeasePeriod, ErrInvalidDispatchTimeout))
	case c.StoreSyncInterval > 0 && c.StoreSyncInterval <= maxStoreSyncInterval &&
		c.DispatchTimeout+c.StoreSyncInterval+c.LeasePeriod/10 >= c.LeasePeriod:
		errs = append(errs, fmt.Errorf("Config.DispatchTimeout (%s) + Config.StoreSyncInterval (%s) + a tenth of the lease for the bulk write must be less than Config.LeasePeriod (%s), so that a result is written before its lease expires (otherwise a success is delivered again): %w",
			c.DispatchTimeout, c.StoreSyncInterval, c.LeasePeriod, ErrInvalidDispatchTimeout))
	}
	if c.RetentionPeriod < 0 || c.RetentionPeriod > maxRetention {
		bad("Config.RetentionPeriod must be 0 (keep forever) or positive and at most %s, got %s.", maxRetention, c.RetentionPeriod)
	}
	if c.InboxRetentionPeriod < 0 || c.InboxRetentionPeriod > maxRetention {
		bad("Config.InboxRetentionPeriod must be 0 (keep forever) or positive and at most %s, got %s.", maxRetention, c.InboxRetentionPeriod)
	}
	if len(errs) == 0 {
		return nil
	}
	// fmt.Errorf, not xerrors: two %w verbs, so errors.Is finds both the sentinel and each cause.
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
