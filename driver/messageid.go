package driver

import (
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// NewMessageID returns the ID of a message created at now: a UUIDv7 (RFC 9562), 48 bits
// of Unix milliseconds followed by 74 random bits. The enqueuer gives every message such
// an ID, and a Store that creates a message itself (ResendMessage) must too (the
// conformance suite checks it). A time before 1970 counts as 1970.
//
// A Store keys its messages by ID. IDs that grow with time put each insert, and the new
// index entry that every non-HOT status change writes, at the right edge of a B-tree
// primary key, on pages already in memory; random IDs touch a random page each time.
// now comes from the caller's clock (uuid.NewV7 would read the system clock), so a test
// with a mock clock gets IDs of the mocked time.
func NewMessageID(now time.Time) uuid.UUID {
	id := uuid.New() // version 4: 122 random bits and the RFC 9562 variant
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(max(now.UnixMilli(), 0)))
	copy(id[0:6], ms[2:8])
	id[6] = id[6]&0x0f | 0x70 // version 7
	return id
}
