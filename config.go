package notifications

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes a Manager and the Enqueuer. Start from DefaultConfig and change what you
// need; NewManager and NewStoreEnqueuer validate it.
type Config struct {
	// Method is the delivery method used for templates that do not name one.
	// Default: MethodSMTP.
	Method Method

	// MaxSendAttempts bounds how many times one message is leased for delivery, including
	// leases that expired because the process died mid-delivery. Default: 5.
	MaxSendAttempts int

	// RetryInterval is the delay before a message that failed with a retryable error is
	// eligible again. Default: 5m.
	RetryInterval time.Duration

	// MaxRetryInterval caps the retry delay. When it is greater than RetryInterval the delay
	// doubles with every attempt up to this cap; when equal, the delay is fixed.
	// Default: 5m (fixed delay).
	MaxRetryInterval time.Duration

	// RetryJitter spreads retry delays by up to this fraction either way (0.1 = ±10%) so
	// that a burst of failures does not retry in lockstep. 0 disables jitter. Default: 0.1.
	RetryJitter float64

	// StoreSyncInterval is how often buffered delivery results are written to the store.
	// A full buffer is written at once without waiting for the interval. Default: 2s.
	StoreSyncInterval time.Duration

	// StoreSyncBufferSize is the capacity of each of the success and failure buffers, and
	// so the most rows one bulk update carries. When the store is slower than delivery,
	// full buffers block deliveries and further leasing (backpressure). Default: 50.
	StoreSyncBufferSize int

	// LeasePeriod is how long a leased message stays reserved for the notifier that leased
	// it. A message whose lease expires is leased again (by any notifier). Default: 2m.
	LeasePeriod time.Duration

	// LeaseCount is the most messages one notifier has in flight at once. Default: 20.
	LeaseCount int

	// FetchInterval is how often the notifier polls the store when it was not woken by new
	// work. Default: 15s.
	FetchInterval time.Duration

	// DispatchTimeout bounds one delivery. It must be less than LeasePeriod. Default: 1m.
	DispatchTimeout time.Duration

	// RetentionPeriod is how long finished messages (sent, permanently failed, inhibited)
	// are kept before they are purged. 0 keeps them forever. Default: 7 days.
	RetentionPeriod time.Duration
}

// DefaultConfig returns the configuration documented on each Config field.
func DefaultConfig() Config {
	return Config{
		Method:              MethodSMTP,
		MaxSendAttempts:     5,
		RetryInterval:       5 * time.Minute,
		MaxRetryInterval:    5 * time.Minute,
		RetryJitter:         0.1,
		StoreSyncInterval:   2 * time.Second,
		StoreSyncBufferSize: 50,
		LeasePeriod:         2 * time.Minute,
		LeaseCount:          20,
		FetchInterval:       15 * time.Second,
		DispatchTimeout:     time.Minute,
		RetentionPeriod:     7 * 24 * time.Hour,
	}
}

// Validate reports every problem with c, one sentence each, wrapped with
// ErrInvalidConfig (and ErrInvalidDispatchTimeout where that is the problem).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.Method == "" {
		bad("Config.Method must name a delivery method, such as %q.", MethodSMTP)
	}
	if c.MaxSendAttempts < 1 {
		bad("Config.MaxSendAttempts must be at least 1, got %d.", c.MaxSendAttempts)
	}
	if c.RetryInterval <= 0 {
		bad("Config.RetryInterval must be positive, got %s.", c.RetryInterval)
	}
	if c.MaxRetryInterval < c.RetryInterval {
		bad("Config.MaxRetryInterval (%s) must be at least Config.RetryInterval (%s).", c.MaxRetryInterval, c.RetryInterval)
	}
	if c.RetryJitter < 0 || c.RetryJitter >= 1 {
		bad("Config.RetryJitter must be at least 0 and less than 1, got %g.", c.RetryJitter)
	}
	if c.StoreSyncInterval <= 0 {
		bad("Config.StoreSyncInterval must be positive, got %s.", c.StoreSyncInterval)
	}
	if c.StoreSyncBufferSize < 1 {
		bad("Config.StoreSyncBufferSize must be at least 1, got %d.", c.StoreSyncBufferSize)
	}
	if c.LeasePeriod <= 0 {
		bad("Config.LeasePeriod must be positive, got %s.", c.LeasePeriod)
	}
	if c.LeaseCount < 1 {
		bad("Config.LeaseCount must be at least 1, got %d.", c.LeaseCount)
	}
	if c.FetchInterval <= 0 {
		bad("Config.FetchInterval must be positive, got %s.", c.FetchInterval)
	}
	if c.DispatchTimeout <= 0 {
		bad("Config.DispatchTimeout must be positive, got %s.", c.DispatchTimeout)
	} else if c.LeasePeriod > 0 && c.DispatchTimeout >= c.LeasePeriod {
		errs = append(errs, fmt.Errorf("Config.DispatchTimeout (%s) must be less than Config.LeasePeriod (%s), so that a lease never expires under a running delivery: %w",
			c.DispatchTimeout, c.LeasePeriod, ErrInvalidDispatchTimeout))
	}
	if c.RetentionPeriod < 0 {
		bad("Config.RetentionPeriod must be 0 (keep forever) or positive, got %s.", c.RetentionPeriod)
	}
	if len(errs) == 0 {
		return nil
	}
	// fmt.Errorf, not xerrors: two %w verbs, so errors.Is finds both the sentinel and each cause.
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
