package dispatch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strings"
	texttemplate "text/template"

	"github.com/coder/quartz"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/email"
)

// SMTPConfig configures the SMTP handler. NewSMTP copies it; deliveries never change it.
type SMTPConfig struct {
	// Smarthost is the SMTP server as host:port. Required.
	Smarthost string
	// From is the sender: "Display Name <address>" or a bare address. The bare address is
	// used in MAIL FROM. Required.
	From string
	// Hello is the name sent with EHLO/HELO. Default: "localhost".
	Hello string
	// ForceTLS connects with TLS from the first byte (implicit TLS, RFC 8314). A smarthost
	// on port 465 always does. Default: false.
	ForceTLS bool
	// Auth authenticates when Username is set. Default: no authentication.
	Auth SMTPAuth
	// TLS configures STARTTLS and certificate checks.
	TLS SMTPTLS
	// MessageIDHost is the right-hand side of Message-ID. Default: the domain of From.
	MessageIDHost string
	// HTMLLayout replaces the HTML email layout; it executes over EmailData. Default: the
	// embedded layouts/email.html.tmpl.
	HTMLLayout *htmltemplate.Template
	// TextLayout replaces the plain-text email layout; it executes over EmailData.
	// Default: the embedded layouts/email.txt.tmpl.
	TextLayout *texttemplate.Template
	// Clock stamps the Date header. Default: real.
	Clock quartz.Clock
	// DialContext opens the TCP connection. Default: a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// SMTPAuth holds SMTP credentials. The mechanism is chosen among those the server offers:
// PLAIN, else LOGIN; mechanisms this handler does not speak (CRAM-MD5, ...) are skipped.
// Both send the password as is: use them over implicit TLS or STARTTLS unless the
// smarthost is on a trusted network.
type SMTPAuth struct {
	// Identity is the PLAIN authorization identity. Default: empty (same as Username).
	Identity string
	// Username enables authentication. Default: empty (no AUTH).
	Username string
	// Password is the password. Ignored when PasswordFile is set.
	Password string
	// PasswordFile is read at each connection (so a rotated secret is picked up); trailing
	// newlines are trimmed. Default: empty.
	PasswordFile string
}

// SMTPTLS configures TLS for implicit TLS and STARTTLS.
type SMTPTLS struct {
	// StartTLS upgrades a plain connection with STARTTLS; delivery fails (retryable) when
	// the server does not offer it. Default: false (a plain connection stays plain).
	StartTLS bool
	// ServerName is the name checked against the certificate and sent as SNI. Default: the
	// host of Smarthost.
	ServerName string
	// InsecureSkipVerify disables certificate verification. Default: false.
	InsecureSkipVerify bool
	// CAFile is a PEM bundle of CAs trusted instead of the system roots. Default: system.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key. Default: none.
	CertFile string
	KeyFile  string
}

// SMTP is the email notifications.Handler: one connection per message, a
// multipart/alternative email rendered with the layouts.
type SMTP struct {
	cfg       SMTPConfig
	from      mail.Address
	host      string
	implicit  bool
	tlsConfig *tls.Config
	msgIDHost string
	html      *htmltemplate.Template
	text      *texttemplate.Template
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ notifications.Handler = (*SMTP)(nil)

// NewSMTP validates cfg, loads the CA and client certificate, and returns the handler.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	var problems []error
	host, port, err := net.SplitHostPort(cfg.Smarthost)
	if err != nil || host == "" || port == "" {
		problems = append(problems, xerrors.Errorf("SMTPConfig.Smarthost %q must be host:port", cfg.Smarthost))
	}
	from, err := email.ParseAddress(cfg.From)
	if err != nil {
		problems = append(problems, xerrors.Errorf("SMTPConfig.From %q must be an address or \"Name <address>\"", cfg.From))
	} else if from.Address, err = email.ASCIIDomain(from.Address); err != nil {
		problems = append(problems, xerrors.Errorf("SMTPConfig.From: %w", err))
	}
	if cfg.Hello == "" {
		cfg.Hello = "localhost"
	}
	if strings.ContainsAny(cfg.Hello, " \r\n\t") {
		problems = append(problems, xerrors.Errorf("SMTPConfig.Hello %q must be a single host name", cfg.Hello))
	}
	if cfg.Auth.Username == "" && (cfg.Auth.Password != "" || cfg.Auth.PasswordFile != "") {
		problems = append(problems, xerrors.New("SMTPConfig.Auth.Username must be set when a password is"))
	}
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		problems = append(problems, xerrors.New("SMTPConfig.TLS.CertFile and KeyFile must be set together"))
	}
	if len(problems) > 0 {
		return nil, xerrors.Errorf("new SMTP handler: %w", errors.Join(problems...))
	}

	tlsConfig := &tls.Config{
		ServerName:         cfg.TLS.ServerName,
		InsecureSkipVerify: cfg.TLS.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice
		MinVersion:         tls.VersionTLS12,
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = host
	}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, xerrors.Errorf("new SMTP handler: read SMTPConfig.TLS.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, xerrors.Errorf("new SMTP handler: SMTPConfig.TLS.CAFile %q holds no PEM certificate", cfg.TLS.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, xerrors.Errorf("new SMTP handler: load SMTPConfig.TLS.CertFile and KeyFile: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}

	s := &SMTP{
		cfg: cfg, from: from, host: host, implicit: cfg.ForceTLS || port == "465",
		tlsConfig: tlsConfig, msgIDHost: cfg.MessageIDHost,
		html: cfg.HTMLLayout, text: cfg.TextLayout, dial: cfg.DialContext,
	}
	if s.msgIDHost == "" {
		s.msgIDHost = email.Domain(from.Address)
	}
	if s.html == nil {
		s.html = defaultHTMLLayout
	}
	if s.text == nil {
		s.text = defaultTextLayout
	}
	if s.cfg.Clock == nil {
		s.cfg.Clock = quartz.NewReal()
	}
	if s.dial == nil {
		s.dial = (&net.Dialer{}).DialContext
	}
	return s, nil
}

// Dispatcher implements notifications.Handler. A payload without a valid user_email, or
// layouts that fail, are permanent failures.
func (s *SMTP) Dispatcher(payload notifications.MessagePayload, title, body string, helpers texttemplate.FuncMap) (notifications.DeliveryFunc, error) {
	r, err := s.render(payload, title, body, helpers)
	if err != nil {
		return nil, xerrors.Errorf("smtp: %w", err)
	}
	return func(ctx context.Context, msgID uuid.UUID) (bool, error) {
		msg, err := s.message(r, msgID, "")
		if err != nil {
			return false, xerrors.Errorf("build email: %w", err)
		}
		return s.send(ctx, r.to.Address, msg)
	}, nil
}

// BuildMessage returns the email the handler would send for one message, without sending
// it (previews, golden tests). boundary may be empty for a random one.
func (s *SMTP) BuildMessage(payload notifications.MessagePayload, title, body string, helpers texttemplate.FuncMap, msgID uuid.UUID, boundary string) ([]byte, error) {
	r, err := s.render(payload, title, body, helpers)
	if err != nil {
		return nil, xerrors.Errorf("build email: %w", err)
	}
	return s.message(r, msgID, boundary)
}

type renderedEmail struct {
	to         mail.Address
	subject    string
	template   string
	html, text string
}

func (s *SMTP) render(payload notifications.MessagePayload, title, body string, helpers texttemplate.FuncMap) (renderedEmail, error) {
	to, err := email.ParseAddress(payload.UserEmail)
	if err != nil {
		return renderedEmail{}, xerrors.Errorf("payload user_email %q is not an address: %w", payload.UserEmail, notifications.ErrInvalidMessage)
	}
	if to.Address, err = email.ASCIIDomain(to.Address); err != nil {
		return renderedEmail{}, xerrors.Errorf("payload user_email: %v: %w", err, notifications.ErrInvalidMessage)
	}
	to.Name = payload.UserName
	data, err := newEmailData(payload, title, body, helpers)
	if err != nil {
		return renderedEmail{}, err
	}
	html, text, err := renderLayouts(s.html, s.text, data)
	if err != nil {
		return renderedEmail{}, err
	}
	return renderedEmail{to: to, subject: data.Title, template: payload.NotificationName, html: html, text: text}, nil
}

func (s *SMTP) message(r renderedEmail, msgID uuid.UUID, boundary string) ([]byte, error) {
	return email.Message{
		From: s.from, To: r.to, Subject: r.subject,
		Date:      s.cfg.Clock.Now("smtp", "date"),
		MessageID: msgID.String() + "@" + s.msgIDHost,
		Headers:   [][2]string{{"X-Notification-Template", r.template}},
		Text:      r.text, HTML: r.html, Boundary: boundary,
	}.Bytes()
}

// send runs one SMTP session. The connection is closed when ctx ends, which aborts any
// command in flight.
func (s *SMTP) send(ctx context.Context, rcpt string, msg []byte) (retryable bool, err error) {
	conn, err := s.dial(ctx, "tcp", s.cfg.Smarthost)
	if err != nil {
		return true, xerrors.Errorf("dial %s: %w", s.cfg.Smarthost, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	var c *smtp.Client
	switch {
	case s.implicit:
		tc := tls.Client(conn, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return true, xerrors.Errorf("TLS handshake with %s: %w", s.cfg.Smarthost, err)
		}
		c = smtp.NewClient(newReplyLimitConn(tc))
	case s.cfg.TLS.StartTLS:
		tc, err := s.startTLS(ctx, conn)
		if err != nil {
			_ = conn.Close()
			return classifySMTP(ctx, "STARTTLS", err)
		}
		c = smtp.NewClient(newReplyLimitConn(tc))
	default:
		c = smtp.NewClient(newReplyLimitConn(conn))
	}
	defer c.Close()
	if err := c.Hello(s.cfg.Hello); err != nil {
		return classifySMTP(ctx, "hello", err)
	}
	if err := s.auth(c); err != nil {
		return classifySMTP(ctx, "authenticate", err)
	}
	var mailOpts *smtp.MailOptions
	if email.NeedsSMTPUTF8(s.from.Address) || email.NeedsSMTPUTF8(rcpt) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return classifySMTP(ctx, "MAIL FROM", permanentError{xerrors.Errorf(
				"smtp server %s does not support internationalised addresses (no SMTPUTF8), which sending from %q to %q needs",
				s.cfg.Smarthost, s.from.Address, rcpt)})
		}
		mailOpts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(s.from.Address, mailOpts); err != nil {
		return classifySMTP(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return classifySMTP(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return classifySMTP(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classifySMTP(ctx, "write message", err)
	}
	if err := w.Close(); err != nil {
		return classifySMTP(ctx, "end DATA", err)
	}
	if err := c.Quit(); err != nil {
		// The message was accepted at end of DATA; a failed QUIT does not undo that.
		return false, nil
	}
	return false, nil
}

// startTLS greets, checks that STARTTLS is offered, upgrades, and returns the TLS
// connection with a greeting in front of it, so that a fresh go-smtp client (which always
// reads a greeting and then says EHLO with our Hello name) continues the session.
func (s *SMTP) startTLS(ctx context.Context, conn net.Conn) (net.Conn, error) {
	tp := textproto.NewConn(newReplyLimitConn(conn))
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, xerrors.Errorf("read greeting: %w", err)
	}
	if err := tp.PrintfLine("EHLO %s", s.cfg.Hello); err != nil {
		return nil, xerrors.Errorf("send EHLO: %w", err)
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return nil, xerrors.Errorf("EHLO: %w", err)
	}
	offered := false
	for _, line := range strings.Split(msg, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(line), "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return nil, xerrors.Errorf("smtp server %s does not offer STARTTLS (SMTPConfig.TLS.StartTLS is set)", s.cfg.Smarthost)
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, xerrors.Errorf("send STARTTLS: %w", err)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, xerrors.Errorf("STARTTLS: %w", err)
	}
	tc := tls.Client(conn, s.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, xerrors.Errorf("TLS handshake with %s: %w", s.cfg.Smarthost, err)
	}
	return &greetedConn{Conn: tc, r: io.MultiReader(strings.NewReader("220 "+s.host+" TLS started\r\n"), tc)}, nil
}

// greetedConn replays a greeting before the connection's own bytes.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (c *greetedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// auth authenticates with the first mechanism, in our order of preference, that the server
// offers.
func (s *SMTP) auth(c *smtp.Client) error {
	if s.cfg.Auth.Username == "" {
		return nil
	}
	ok, offered := c.Extension("AUTH")
	if !ok {
		return permanentError{xerrors.Errorf("smtp server %s does not offer AUTH but SMTPConfig.Auth.Username is set", s.cfg.Smarthost)}
	}
	password := s.cfg.Auth.Password
	if s.cfg.Auth.PasswordFile != "" {
		b, err := os.ReadFile(s.cfg.Auth.PasswordFile)
		if err != nil {
			return permanentError{xerrors.Errorf("read SMTPConfig.Auth.PasswordFile: %w", err)}
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	for _, want := range []string{sasl.Plain, sasl.Login} {
		if !slices.Contains(mechs, strings.ToUpper(want)) {
			continue
		}
		var client sasl.Client
		if want == sasl.Plain {
			client = sasl.NewPlainClient(s.cfg.Auth.Identity, s.cfg.Auth.Username, password)
		} else {
			client = &loginClient{username: s.cfg.Auth.Username, password: password}
		}
		if err := c.Auth(client); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code/100 == 5 {
				return xerrors.Errorf("AUTH %s: authentication failed for user %q: %w", want, s.cfg.Auth.Username, err)
			}
			return xerrors.Errorf("AUTH %s: %w", want, err)
		}
		return nil
	}
	return permanentError{xerrors.Errorf("smtp server %s offers AUTH %q, none of which this handler supports (PLAIN, LOGIN)", s.cfg.Smarthost, offered)}
}

// loginClient is the client side of the LOGIN mechanism (draft-murchison-sasl-login): it
// sends no initial response, answers the first challenge with the user name and the second
// with the password, and ignores the challenges' text, as the draft says clients do
// (servers send "Username:", "Password\x00", localised prompts, or nothing).
type loginClient struct {
	username, password string
	step               int
}

func (l *loginClient) Start() (string, []byte, error) { return sasl.Login, nil, nil }

func (l *loginClient) Next([]byte) ([]byte, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte(l.username), nil
	case 2:
		return []byte(l.password), nil
	}
	return nil, permanentError{xerrors.New("smtp server sent a third LOGIN challenge (LOGIN has two: user name, password)")}
}

// permanentError marks a failure that retrying cannot fix (configuration).
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// classifySMTP decides whether an SMTP failure is retryable: a permanentError
// (configuration) is not; replies go by their enhanced status class when there is one
// (4.x.x retryable, 5.x.x permanent), else by the basic code (4xx retryable, 5xx
// permanent); anything else — network, TLS, timeouts, cancellation, a missing STARTTLS —
// is retryable.
func classifySMTP(ctx context.Context, step string, err error) (bool, error) {
	wrapped := xerrors.Errorf("smtp %s: %w", step, err)
	if ctx.Err() != nil {
		return true, fmt.Errorf("smtp %s: %w (%w)", step, ctx.Err(), err)
	}
	var perm permanentError
	if errors.As(err, &perm) {
		return false, wrapped
	}
	class := 0
	var se *smtp.SMTPError
	var te *textproto.Error
	switch {
	case errors.As(err, &se):
		class = se.Code / 100
		if ec := se.EnhancedCode[0]; ec == 4 || ec == 5 {
			class = ec
		}
	case errors.As(err, &te):
		class = te.Code / 100
		if f := strings.Fields(te.Msg); len(f) > 0 && len(f[0]) >= 5 && f[0][1] == '.' && (f[0][0] == '4' || f[0][0] == '5') {
			class = int(f[0][0] - '0')
		}
	}
	// 4xx, a success code where another was expected (a confused server), network and
	// TLS errors, malformed replies, EOF: the next attempt may succeed. 5xx will not.
	return class != 5, wrapped
}
