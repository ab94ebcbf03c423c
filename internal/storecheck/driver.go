package storecheck

import (
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// LeaseParams refuses a lease without a limit, an attempt bound, a lease period or a
// notifier.
func LeaseParams(p driver.LeaseParams) error {
	if p.Limit <= 0 || p.MaxAttempts <= 0 || p.LeasePeriod <= 0 || p.NotifierID == uuid.Nil {
		return xerrors.Errorf("Limit, MaxAttempts, LeasePeriod and NotifierID must be set (got %+v): %w", p, notifications.ErrInvalidMessage)
	}
	return nil
}

// FailedResults refuses a result whose status is not a failure status.
func FailedResults(results []driver.FailedResult) error {
	for _, r := range results {
		switch notifications.Status(r.Status) {
		case notifications.StatusTemporaryFailure, notifications.StatusPermanentFailure, notifications.StatusInhibited:
		default:
			return xerrors.Errorf("message %s: status %q is not a failure status: %w", r.ID, r.Status, notifications.ErrInvalidMessage)
		}
	}
	return nil
}
