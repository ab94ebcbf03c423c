// Package smtpcapture is an in-process SMTP server (emersion/go-smtp's server side) that
// keeps every message it accepts. Tests and the demo deliver real SMTP to it.
package smtpcapture

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/notifykit/notifications/internal/signal"
)

// Mail is one accepted message.
type Mail struct {
	From, To  string
	Data      []byte
	TLS       bool   // the session was encrypted
	User      string // the authenticated user, if any
	HeloName  string
	ServerSNI string // the SNI the client sent, if TLS
	UTF8      bool   // MAIL FROM carried SMTPUTF8
}

// Options configure a Server. The zero value is a plain server without AUTH.
type Options struct {
	// ImplicitTLS serves TLS from the first byte with this config.
	ImplicitTLS *tls.Config
	// StartTLS offers STARTTLS with this config.
	StartTLS *tls.Config
	// Mechanisms are offered in this order (PLAIN, LOGIN; any other name is listed but
	// refused). Users must be set for AUTH to succeed.
	Mechanisms []string
	// Users maps user names to passwords.
	Users map[string]string
	// LoginChallenges replaces the LOGIN challenges "Username:" and "Password:" (some
	// servers send other text, which clients must ignore).
	LoginChallenges *[2]string
	// RcptError and DataError are returned at RCPT TO and at the end of DATA.
	RcptError, DataError error
	// SMTPUTF8 offers the SMTPUTF8 extension (RFC 6531).
	SMTPUTF8 bool
	// Reject, when set, is called at end of DATA for every message; its error is the reply.
	Reject func(Mail) error
}

// Server is a running capture server.
type Server struct {
	Addr string

	srv  *smtp.Server
	opts Options

	mu      sync.Mutex
	mails   []Mail
	changed signal.Signal // broadcast at every accepted message
}

// Start listens on 127.0.0.1 at a free port and serves until Close.
func Start(opts Options) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: l.Addr().String(), opts: opts}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = discardLogger{}
	srv.TLSConfig = opts.StartTLS
	srv.EnableSMTPUTF8 = opts.SMTPUTF8
	s.srv = srv
	if opts.ImplicitTLS != nil {
		l = tls.NewListener(l, opts.ImplicitTLS)
	}
	go func() { _ = srv.Serve(l) }()
	return s, nil
}

// Close stops the server and its connections.
func (s *Server) Close() error { return s.srv.Close() }

// Mails returns a copy of the accepted messages.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

// Count returns how many messages were accepted.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mails)
}

// Wait returns once n messages have been accepted, or with ctx's error.
func (s *Server) Wait(ctx context.Context, n int) error {
	return s.changed.Wait(ctx, func() bool { return s.Count() >= n })
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s, helo: c.Hostname()}
	if st, ok := c.TLSConnectionState(); ok {
		sess.tls, sess.sni = true, st.ServerName
	}
	return sess, nil
}

type session struct {
	srv       *Server
	helo, sni string
	tls       bool
	user      string
	from, to  string
	utf8      bool
}

func (s *session) AuthMechanisms() []string { return s.srv.opts.Mechanisms }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if want, ok := s.srv.opts.Users[user]; !ok || want != pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.user = user
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		ls := &loginServer{check: check, challenges: [2]string{"Username:", "Password:"}}
		if c := s.srv.opts.LoginChallenges; c != nil {
			ls.challenges = *c
		}
		return ls, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.from = from
	s.utf8 = opts != nil && opts.UTF8
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.srv.opts.RcptError != nil {
		return s.srv.opts.RcptError
	}
	s.to = to
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.srv.opts.DataError != nil {
		return s.srv.opts.DataError
	}
	m := Mail{From: s.from, To: s.to, Data: bytes.Clone(b), TLS: s.tls, User: s.user, HeloName: s.helo, ServerSNI: s.sni, UTF8: s.utf8}
	if s.srv.opts.Reject != nil {
		if err := s.srv.opts.Reject(m); err != nil {
			return err
		}
	}
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, m)
	s.srv.mu.Unlock()
	s.srv.changed.Broadcast()
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", "" }
func (s *session) Logout() error { return nil }

// loginServer is the server side of the (obsolete but widespread) LOGIN mechanism, which
// go-sasl only implements as a client.
type loginServer struct {
	check      func(user, pass string) error
	challenges [2]string
	step       int
	username   string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response carries the user name
			l.username = string(response)
			l.step++
			return []byte(l.challenges[1]), false, nil
		}
		return []byte(l.challenges[0]), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte(l.challenges[1]), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}
