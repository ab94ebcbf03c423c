package storecheck

// Page sizes of inbox and message queries.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 1000
)

// MaxAttempts is how many attempts a store keeps per message (the newest).
const MaxAttempts = 50

// PageLimit returns the page size for a query's Limit: 0 means DefaultPageLimit, larger
// than MaxPageLimit means MaxPageLimit.
func PageLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageLimit
	case limit > MaxPageLimit:
		return MaxPageLimit
	}
	return limit
}
