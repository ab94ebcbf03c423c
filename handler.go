package notifications

import (
	"context"
	"errors"
	"fmt"
	"text/template"
	"time"

	"github.com/google/uuid"
)

// Handler delivers messages of one method. The Manager calls Dispatcher once per message
// with the decoded payload and the rendered Markdown title and body; an error from
// Dispatcher (bad configuration, bad payload) is a permanent failure. The returned
// DeliveryFunc does the delivery.
//
// Handlers are called concurrently and must be safe for concurrent use.
type Handler interface {
	Dispatcher(payload MessagePayload, title, body string, helpers template.FuncMap) (DeliveryFunc, error)
}

// DeliveryFunc delivers one message. It must honour ctx (bounded by
// Config.DispatchTimeout). On failure it reports whether the failure is retryable; a
// retryable failure with attempts left is retried after the retry delay, or after the
// delay carried by an error made with RetryAfter. A DeliveryFunc may be called again for
// the same msgID (at-least-once delivery); msgID is stable and suits idempotency keys.
type DeliveryFunc func(ctx context.Context, msgID uuid.UUID) (retryable bool, err error)

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(payload MessagePayload, title, body string, helpers template.FuncMap) (DeliveryFunc, error)

// Dispatcher calls f.
func (f HandlerFunc) Dispatcher(payload MessagePayload, title, body string, helpers template.FuncMap) (DeliveryFunc, error) {
	return f(payload, title, body, helpers)
}

// RetryAfterError asks for a retry after a specific delay (an HTTP Retry-After, say).
// Make one with RetryAfter.
type RetryAfterError struct {
	// Delay is the delay asked for; the Manager caps it at Config.MaxRetryInterval and
	// ignores a delay of 0 or less (the configured backoff applies).
	Delay time.Duration
	// Err is the delivery error.
	Err error
}

// Error returns the cause's text with the delay asked for.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.Delay)
}

// Unwrap returns the cause.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err so that the Manager retries after delay instead of its configured
// retry interval, capped at Config.MaxRetryInterval; a delay of 0 or less leaves the
// configured backoff. It only has an effect when the failure is retryable (the
// DeliveryFunc reports it so, or err is marked with Retryable).
func RetryAfter(delay time.Duration, err error) error {
	return &RetryAfterError{Delay: delay, Err: err}
}

func retryAfterDelay(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.Delay > 0 {
		return ra.Delay, true
	}
	return 0, false
}

// Retryable marks err as a transient failure: the Manager retries the message after the
// retry delay (while attempts are left), wherever err comes from — a DeliveryFunc, a
// Handler's Dispatcher, or a host helper called while rendering (a helper that reads the
// database and hits a timeout, say). Errors before delivery are otherwise permanent.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &classifiedError{err: err, retryable: true}
}

// Permanent marks err as a permanent failure: the message ends permanent_failure even
// when the DeliveryFunc reports the failure as retryable. It pairs with RetryAfter for
// handlers that classify errors in one place.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classifiedError{err: err, retryable: false}
}

// classifiedError carries Retryable's or Permanent's verdict.
type classifiedError struct {
	err       error
	retryable bool
}

func (e *classifiedError) Error() string { return e.err.Error() }
func (e *classifiedError) Unwrap() error { return e.err }

// isRetryable classifies err: a Permanent or Retryable mark (the outermost one) wins over
// reported, the DeliveryFunc's own answer.
func isRetryable(err error, reported bool) bool {
	if err == nil {
		return reported // errors.As would allocate for nothing
	}
	var c *classifiedError
	if errors.As(err, &c) {
		return c.retryable
	}
	return reported
}
