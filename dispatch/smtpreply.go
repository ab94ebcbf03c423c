package dispatch

import (
	"net"

	"golang.org/x/xerrors"
)

// Bounds on one SMTP reply. RFC 5321 limits a reply line to 512 octets; EHLO replies run
// to a few dozen lines. A server (or anyone on the path before STARTTLS) that sends more
// is cut off instead of being buffered.
const (
	// MaxSMTPReplyBytes bounds the size of one reply, all its lines together.
	MaxSMTPReplyBytes = 64 << 10
	// MaxSMTPReplyLines bounds the number of lines of one multi-line reply.
	MaxSMTPReplyLines = 256
)

// ErrSMTPReplyTooLarge is returned (wrapped) when a server's reply exceeds
// MaxSMTPReplyBytes or MaxSMTPReplyLines. It is a retryable failure.
var ErrSMTPReplyTooLarge = xerrors.New("smtp reply over the size limit")

// replyLimitConn counts the bytes and lines of the reply being read from a server and
// fails the read once a reply is over the limits. A reply ends with a line whose fourth
// byte is not '-' ("250 ok", "250"); the counts restart after it.
type replyLimitConn struct {
	net.Conn
	bytes, lines int
	col          int  // position in the current line
	more         bool // the current line continues the reply ("250-")
	err          error
}

func newReplyLimitConn(c net.Conn) *replyLimitConn { return &replyLimitConn{Conn: c} }

func (c *replyLimitConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	for i, b := range p[:n] {
		c.bytes++
		if c.col == 3 {
			c.more = b == '-'
		}
		c.col++
		if b == '\n' {
			c.lines++
			c.col = 0
			if !c.more {
				c.bytes, c.lines = 0, 0
			}
			c.more = false
		}
		if c.bytes > MaxSMTPReplyBytes || c.lines > MaxSMTPReplyLines {
			c.err = xerrors.Errorf("%w: more than %d bytes or %d lines in one reply",
				ErrSMTPReplyTooLarge, MaxSMTPReplyBytes, MaxSMTPReplyLines)
			return i, c.err
		}
	}
	return n, err
}
