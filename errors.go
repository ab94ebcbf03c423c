package notifications

import "golang.org/x/xerrors"

// Sentinel errors that callers test with errors.Is. Stores return them (wrapped) so that
// callers never see a driver-specific error for these conditions.
var (
	// ErrDuplicate is returned by an enqueue that would repeat an identical notification
	// (same template, user, method, payload and targets) on the same UTC day, or that reuses
	// an idempotency key.
	ErrDuplicate = xerrors.New("duplicate notification")

	// ErrCannotEnqueueDisabledNotification is returned when the recipient disabled the
	// template, or when the template is opt-in and the recipient did not opt in.
	ErrCannotEnqueueDisabledNotification = xerrors.New("notification is not enabled for this user")

	// ErrManagerAlreadyClosed is returned by Run on a Manager that was stopped.
	ErrManagerAlreadyClosed = xerrors.New("manager already closed")

	// ErrManagerAlreadyRunning is returned by a second Run on a running Manager.
	ErrManagerAlreadyRunning = xerrors.New("manager already running")

	// ErrNotFound is returned when a message, template or inbox item does not exist.
	ErrNotFound = xerrors.New("not found")

	// ErrInvalidConfig wraps every Config validation failure.
	ErrInvalidConfig = xerrors.New("invalid config")

	// ErrInvalidDispatchTimeout is returned (wrapped with ErrInvalidConfig) when
	// DispatchTimeout + StoreSyncInterval + LeasePeriod/10 is not less than LeasePeriod: a
	// lease must never expire under a delivery that is still running, nor before its
	// result is written.
	ErrInvalidDispatchTimeout = xerrors.New("DispatchTimeout must be less than LeasePeriod")

	// ErrInvalidTemplate is returned when a template fails to parse or is incomplete.
	ErrInvalidTemplate = xerrors.New("invalid template")

	// ErrInvalidMessage is returned when an enqueue request or stored message is malformed
	// (missing IDs, unknown method, payload too large, payload that is not JSON).
	ErrInvalidMessage = xerrors.New("invalid message")

	// ErrWrongStatus is returned by an operator action the message's status does not
	// allow: retrying a message that has not failed, canceling a finished one.
	ErrWrongStatus = xerrors.New("not allowed in the message's status")

	// ErrInvalidCursor is returned for a page cursor that the store did not produce.
	ErrInvalidCursor = xerrors.New("invalid cursor")
)

// errUnknownMethod is the failure of a message whose method the Manager has no Handler
// for (a store that leased a method it was not asked for).
var errUnknownMethod = xerrors.New("no handler for method")
