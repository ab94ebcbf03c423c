package dispatch_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/coder/quartz"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/internal/smtpcapture"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1/localhost and a client
// certificate, written as PEM files.
type pki struct {
	caFile, clientCert, clientKey string
	caPool                        *x509.CertPool
	server                        tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now, NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, hosts bool) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: now, NotAfter: now.AddDate(10, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if hosts {
			tmpl.DNSNames = []string{"localhost", "mail.test"}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &pki{caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth, true)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth, false)
	p.clientCert = write("client.pem", "CERTIFICATE", cliDER)
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	p.clientKey = write("client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func (p *pki) serverTLS(requireClientCert bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.caPool
	}
	return c
}

func startSMTP(t *testing.T, opts smtpcapture.Options) *smtpcapture.Server {
	t.Helper()
	s, err := smtpcapture.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var testTime = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

func newSMTP(t *testing.T, cfg dispatch.SMTPConfig) *dispatch.SMTP {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "Notify Bot <bot@example.com>"
	}
	if cfg.Clock == nil {
		clk := quartz.NewMock(t)
		clk.Set(testTime)
		cfg.Clock = clk
	}
	h, err := dispatch.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return h
}

func sendMail(t *testing.T, h notifications.Handler, p notifications.MessagePayload, title string) (uuid.UUID, bool, error) {
	t.Helper()
	fn, err := h.Dispatcher(p, title, "Build **42** failed. See [the logs](https://ci.example.com/42).", nil)
	if err != nil {
		t.Fatalf("dispatcher: %v", err)
	}
	id := uuid.New()
	retryable, err := fn(context.Background(), id)
	return id, retryable, err
}

func TestSMTPDeliversMultipartEmail(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t, smtpcapture.Options{})
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, Hello: "app.example.com"})
	id, _, err := sendMail(t, h, samplePayload(), "Build 42 failed")
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	mails := srv.Mails()
	if len(mails) != 1 {
		t.Fatalf("captured %d mails, want 1", len(mails))
	}
	m := mails[0]
	if m.From != "bot@example.com" || m.To != "ada@example.com" || m.HeloName != "app.example.com" {
		t.Errorf("envelope from=%q to=%q helo=%q", m.From, m.To, m.HeloName)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	if got := msg.Header.Get("From"); got != `"Notify Bot" <bot@example.com>` {
		t.Errorf("From = %q", got)
	}
	if got := msg.Header.Get("To"); got != `"Ada" <ada@example.com>` {
		t.Errorf("To = %q", got)
	}
	if got := msg.Header.Get("Message-ID"); got != "<"+id.String()+"@example.com>" {
		t.Errorf("Message-ID = %q", got)
	}
	if got, _ := msg.Header.Date(); !got.Equal(testTime) {
		t.Errorf("Date = %v, want the mock clock's %v", got, testTime)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types, bodies []string
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part)
		types = append(types, part.Header.Get("Content-Type"))
		bodies = append(bodies, string(b))
	}
	if len(types) != 2 || !strings.HasPrefix(types[0], "text/plain") || !strings.HasPrefix(types[1], "text/html") {
		t.Fatalf("parts %v, want text/plain then text/html", types)
	}
	if !strings.Contains(bodies[0], "See the logs (https://ci.example.com/42)") || !strings.Contains(bodies[0], "Hi Ada,") {
		t.Errorf("text part:\n%s", bodies[0])
	}
	if !strings.Contains(bodies[1], `<a href="https://ci.example.com/42">the logs</a>`) || !strings.Contains(bodies[1], "<strong>42</strong>") {
		t.Errorf("HTML part:\n%s", bodies[1])
	}
}

func TestSMTPAuth(t *testing.T) {
	t.Parallel()
	users := map[string]string{"ada": "s3cret"}
	passwordFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(passwordFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		offered       []string
		auth          dispatch.SMTPAuth
		wantUser      string
		wantRetryable bool
		wantErr       string
	}{
		{name: "PLAIN", offered: []string{"PLAIN"}, auth: dispatch.SMTPAuth{Username: "ada", Password: "s3cret"}, wantUser: "ada"},
		{name: "LOGIN", offered: []string{"LOGIN"}, auth: dispatch.SMTPAuth{Username: "ada", Password: "s3cret"}, wantUser: "ada"},
		{name: "PLAIN chosen when both offered", offered: []string{"LOGIN", "PLAIN"}, auth: dispatch.SMTPAuth{Username: "ada", Password: "s3cret"}, wantUser: "ada"},
		{name: "CRAM-MD5 listed first is skipped", offered: []string{"CRAM-MD5", "LOGIN"}, auth: dispatch.SMTPAuth{Username: "ada", Password: "s3cret"}, wantUser: "ada"},
		{name: "password file", offered: []string{"PLAIN"}, auth: dispatch.SMTPAuth{Username: "ada", PasswordFile: passwordFile}, wantUser: "ada"},
		{name: "bad password is permanent", offered: []string{"PLAIN"}, auth: dispatch.SMTPAuth{Username: "ada", Password: "wrong"}, wantErr: "535"},
		{name: "auth configured but not offered", auth: dispatch.SMTPAuth{Username: "ada", Password: "s3cret"}, wantErr: "does not offer AUTH"},
		{name: "only unsupported mechanisms", offered: []string{"CRAM-MD5", "XOAUTH2"}, auth: dispatch.SMTPAuth{Username: "ada", Password: "s3cret"}, wantErr: "none of which"},
		{name: "missing password file is permanent", offered: []string{"PLAIN"}, auth: dispatch.SMTPAuth{Username: "ada", PasswordFile: passwordFile + ".missing"}, wantErr: "PasswordFile"},
		{name: "no auth configured", offered: []string{"PLAIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, smtpcapture.Options{Mechanisms: tc.offered, Users: users})
			h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, Auth: tc.auth})
			_, retryable, err := sendMail(t, h, samplePayload(), "hi")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || retryable != tc.wantRetryable {
					t.Fatalf("err = %v retryable = %v; want error containing %q, retryable %v", err, retryable, tc.wantErr, tc.wantRetryable)
				}
				if srv.Count() != 0 {
					t.Fatalf("a mail was accepted")
				}
				return
			}
			if err != nil {
				t.Fatalf("deliver: %v", err)
			}
			if got := srv.Mails()[0].User; got != tc.wantUser {
				t.Fatalf("authenticated as %q, want %q", got, tc.wantUser)
			}
		})
	}
}

func TestSMTPTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for _, tc := range []struct {
		name          string
		server        smtpcapture.Options
		cfg           dispatch.SMTPConfig
		wantErr       string
		wantRetryable bool
	}{
		{name: "implicit TLS with custom CA", server: smtpcapture.Options{ImplicitTLS: p.serverTLS(false)},
			cfg: dispatch.SMTPConfig{ForceTLS: true, TLS: dispatch.SMTPTLS{CAFile: p.caFile}}},
		{name: "STARTTLS with custom CA and SNI", server: smtpcapture.Options{StartTLS: p.serverTLS(false)},
			cfg: dispatch.SMTPConfig{TLS: dispatch.SMTPTLS{StartTLS: true, CAFile: p.caFile, ServerName: "mail.test"}}},
		{name: "untrusted certificate", server: smtpcapture.Options{ImplicitTLS: p.serverTLS(false)},
			cfg: dispatch.SMTPConfig{ForceTLS: true}, wantErr: "certificate", wantRetryable: true},
		{name: "untrusted certificate via STARTTLS", server: smtpcapture.Options{StartTLS: p.serverTLS(false)},
			cfg: dispatch.SMTPConfig{TLS: dispatch.SMTPTLS{StartTLS: true}}, wantErr: "certificate", wantRetryable: true},
		{name: "skip-verify", server: smtpcapture.Options{ImplicitTLS: p.serverTLS(false)},
			cfg: dispatch.SMTPConfig{ForceTLS: true, TLS: dispatch.SMTPTLS{InsecureSkipVerify: true}}},
		{name: "client certificate", server: smtpcapture.Options{ImplicitTLS: p.serverTLS(true)},
			cfg: dispatch.SMTPConfig{ForceTLS: true, TLS: dispatch.SMTPTLS{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}}},
		{name: "client certificate missing", server: smtpcapture.Options{ImplicitTLS: p.serverTLS(true)},
			cfg: dispatch.SMTPConfig{ForceTLS: true, TLS: dispatch.SMTPTLS{CAFile: p.caFile}}, wantErr: "", wantRetryable: true},
		{name: "STARTTLS required but not offered", server: smtpcapture.Options{},
			cfg: dispatch.SMTPConfig{TLS: dispatch.SMTPTLS{StartTLS: true}}, wantErr: "does not offer STARTTLS", wantRetryable: true},
		{name: "AUTH over STARTTLS", server: smtpcapture.Options{StartTLS: p.serverTLS(false), Mechanisms: []string{"PLAIN"}, Users: map[string]string{"ada": "pw"}},
			cfg: dispatch.SMTPConfig{TLS: dispatch.SMTPTLS{StartTLS: true, CAFile: p.caFile}, Auth: dispatch.SMTPAuth{Username: "ada", Password: "pw"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, tc.server)
			tc.cfg.Smarthost = srv.Addr
			h := newSMTP(t, tc.cfg)
			_, retryable, err := sendMail(t, h, samplePayload(), "hi")
			if tc.wantErr != "" || tc.wantRetryable {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || retryable != tc.wantRetryable {
					t.Fatalf("err = %v retryable = %v; want error containing %q, retryable %v", err, retryable, tc.wantErr, tc.wantRetryable)
				}
				return
			}
			if err != nil {
				t.Fatalf("deliver: %v", err)
			}
			m := srv.Mails()[0]
			if !m.TLS {
				t.Fatal("the session was not encrypted")
			}
			if want := tc.cfg.TLS.ServerName; want != "" && m.ServerSNI != want {
				t.Fatalf("SNI = %q, want %q", m.ServerSNI, want)
			}
		})
	}
}

func TestSMTPClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		opts          smtpcapture.Options
		wantRetryable bool
	}{
		{"421 at RCPT", smtpcapture.Options{RcptError: &smtp.SMTPError{Code: 421, Message: "Service not available"}}, true},
		{"451 4.3.0 at RCPT", smtpcapture.Options{RcptError: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}}, true},
		{"421 at DATA", smtpcapture.Options{DataError: &smtp.SMTPError{Code: 421, Message: "closing"}}, true},
		{"451 at DATA", smtpcapture.Options{DataError: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "no answer"}}, true},
		{"550 5.1.1 at RCPT", smtpcapture.Options{RcptError: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}, false},
		{"554 at DATA", smtpcapture.Options{DataError: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}}, false},
		{"554 at RCPT", smtpcapture.Options{RcptError: &smtp.SMTPError{Code: 554, Message: "rejected"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, tc.opts)
			h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr})
			_, retryable, err := sendMail(t, h, samplePayload(), "hi")
			if err == nil || retryable != tc.wantRetryable {
				t.Fatalf("err = %v retryable = %v, want an error with retryable %v", err, retryable, tc.wantRetryable)
			}
		})
	}
}

func TestSMTPNetworkFailuresAreRetryable(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		h := newSMTP(t, dispatch.SMTPConfig{Smarthost: addr})
		if _, retryable, err := sendMail(t, h, samplePayload(), "hi"); err == nil || !retryable {
			t.Fatalf("err = %v retryable = %v", err, retryable)
		}
	})
	for _, reply := range []string{"garbage\r\n", "220-incomplete\r\n", "999 what\r\n", "220 hi\r\n250\r\n"} {
		t.Run(fmt.Sprintf("malformed reply %q", reply), func(t *testing.T) {
			addr := rawServer(t, reply)
			h := newSMTP(t, dispatch.SMTPConfig{Smarthost: addr})
			if _, retryable, err := sendMail(t, h, samplePayload(), "hi"); err == nil || !retryable {
				t.Fatalf("err = %v retryable = %v", err, retryable)
			}
		})
	}
	t.Run("server never answers, context cancelled", func(t *testing.T) {
		addr := rawServer(t, "")
		h := newSMTP(t, dispatch.SMTPConfig{Smarthost: addr})
		fn, err := h.Dispatcher(samplePayload(), "hi", "body", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			retryable bool
			err       error
		}
		done := make(chan result, 1)
		go func() {
			r, err := fn(ctx, uuid.New())
			done <- result{r, err}
		}()
		cancel()
		r := <-done
		if r.err == nil || !r.retryable || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("err = %v retryable = %v, want a retryable context.Canceled", r.err, r.retryable)
		}
	})
}

// rawServer accepts connections and writes reply, then hangs up; with an empty reply it
// says nothing and reads until the client goes away.
func rawServer(t *testing.T, reply string) string {
	t.Helper()
	return streamingServer(t, func(c net.Conn) {
		if reply != "" {
			_, _ = io.WriteString(c, reply)
			return
		}
		_, _ = io.Copy(io.Discard, c)
	})
}

func TestSMTPHeaders(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t, smtpcapture.Options{})
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, From: "Zoë from Ops <ops@example.com>"})
	p := samplePayload()
	p.UserName = "Eve\r\nBcc: victim@example.com"
	cases := []struct{ title, wantSubject string }{
		{"Grüße — build ✓ passed on ünïcödé branch with a subject long enough to need folding across lines", "Grüße — build ✓ passed on ünïcödé branch with a subject long enough to need folding across lines"},
		{"Deploy\r\nBcc: attacker@example.com\r\n\r\nbody", "Deploy Bcc: attacker@example.com body"},
		{"A plain ASCII subject that is long enough that it must be folded onto a second header line by the writer", "A plain ASCII subject that is long enough that it must be folded onto a second header line by the writer"},
	}
	for _, tc := range cases {
		if _, _, err := sendMail(t, h, p, tc.title); err != nil {
			t.Fatalf("deliver %q: %v", tc.title, err)
		}
	}
	for i, m := range srv.Mails() {
		msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		dec := new(mime.WordDecoder)
		subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || subject != cases[i].wantSubject {
			t.Errorf("Subject = %q (%v), want %q", subject, err, cases[i].wantSubject)
		}
		if len(msg.Header["Bcc"]) != 0 {
			t.Errorf("a Bcc header was injected: %q", msg.Header["Bcc"])
		}
		from, err := mail.ParseAddress(msg.Header.Get("From"))
		if err != nil || from.Name != "Zoë from Ops" || from.Address != "ops@example.com" {
			t.Errorf("From = %q (%v)", msg.Header.Get("From"), err)
		}
		to, err := mail.ParseAddress(msg.Header.Get("To"))
		if err != nil || to.Address != "ada@example.com" || strings.ContainsAny(to.Name, "\r\n") {
			t.Errorf("To = %q (%v)", msg.Header.Get("To"), err)
		}
		header, _, _ := strings.Cut(string(m.Data), "\r\n\r\n")
		for _, line := range strings.Split(header, "\r\n") {
			if len(line) > 78 && !strings.HasPrefix(line, "Content-Type") {
				t.Errorf("header line longer than 78: %q", line)
			}
		}
	}
}

func TestSMTPConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t, smtpcapture.Options{Mechanisms: []string{"PLAIN"}, Users: map[string]string{"ada": "pw"}})
	cfg := dispatch.SMTPConfig{Smarthost: srv.Addr, From: "bot@example.com", Auth: dispatch.SMTPAuth{Username: "ada", Password: "pw"}}
	h := newSMTP(t, cfg)
	const n = 25
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := samplePayload()
			p.UserEmail = fmt.Sprintf("user%d@example.com", i)
			fn, err := h.Dispatcher(p, fmt.Sprintf("message %d", i), "body", nil)
			if err != nil {
				errs <- err
				return
			}
			if _, err := fn(context.Background(), uuid.New()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.Count(); got != n {
		t.Fatalf("captured %d mails, want %d", got, n)
	}
}

func TestNewSMTPValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  dispatch.SMTPConfig
		want string
	}{
		{dispatch.SMTPConfig{From: "a@example.com"}, "SMTPConfig.Smarthost"},
		{dispatch.SMTPConfig{Smarthost: "localhost", From: "a@example.com"}, "SMTPConfig.Smarthost"},
		{dispatch.SMTPConfig{Smarthost: "localhost:25"}, "SMTPConfig.From"},
		{dispatch.SMTPConfig{Smarthost: "localhost:25", From: "a@example.com\r\nBcc: x@y"}, "SMTPConfig.From"},
		{dispatch.SMTPConfig{Smarthost: "localhost:25", From: "a@example.com", Hello: "two words"}, "SMTPConfig.Hello"},
		{dispatch.SMTPConfig{Smarthost: "localhost:25", From: "a@example.com", Auth: dispatch.SMTPAuth{Password: "x"}}, "SMTPConfig.Auth.Username"},
		{dispatch.SMTPConfig{Smarthost: "localhost:25", From: "a@example.com", TLS: dispatch.SMTPTLS{CertFile: "x.pem"}}, "SMTPConfig.TLS.CertFile"},
		{dispatch.SMTPConfig{Smarthost: "localhost:25", From: "a@example.com", TLS: dispatch.SMTPTLS{CAFile: "/nonexistent/ca.pem"}}, "SMTPConfig.TLS.CAFile"},
	} {
		if _, err := dispatch.NewSMTP(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSMTP(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestSMTPBadRecipientIsPermanent(t *testing.T) {
	t.Parallel()
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: "127.0.0.1:1"})
	for _, addr := range []string{"", "not an address", "a@example.com\r\nBcc: b@example.com"} {
		p := samplePayload()
		p.UserEmail = addr
		if _, err := h.Dispatcher(p, "t", "b", nil); !errors.Is(err, notifications.ErrInvalidMessage) {
			t.Errorf("user_email %q: err = %v, want ErrInvalidMessage", addr, err)
		}
	}
}

func TestSMTPLabelWithLineBreaksAndCustomLayout(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t, smtpcapture.Options{})
	layout := texttemplate.Must(texttemplate.New("t").Parse("CUSTOM {{.Title}} / {{.BodyText}}"))
	h := newSMTP(t, dispatch.SMTPConfig{Smarthost: srv.Addr, TextLayout: layout})
	tmpl := notifications.Template{ID: uuid.New(), Name: "Deploy", TitleTemplate: "Deployed to {{.Labels.env}}", BodyTemplate: "env: {{.Labels.env}}"}
	p := samplePayload()
	p.Labels = map[string]string{"env": "prod\r\nBcc: attacker@example.com\r\n\r\n<script>x</script>"}
	title, body, err := notifications.NewRegistry(nil).RenderTitleBody(tmpl, p)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := h.Dispatcher(p, title, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(context.Background(), uuid.New()); err != nil {
		t.Fatal(err)
	}
	raw := string(srv.Mails()[0].Data)
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Header["Bcc"]) != 0 {
		t.Fatalf("Bcc injected through a label:\n%s", raw)
	}
	if got := msg.Header.Get("Subject"); got != "Deployed to prod Bcc: attacker@example.com <script>x</script>" {
		t.Fatalf("Subject = %q", got)
	}
	if !strings.Contains(raw, "CUSTOM Deployed to prod") {
		t.Fatalf("custom text layout not used:\n%s", raw)
	}
	_, htmlPart, _ := strings.Cut(raw, "text/html")
	if strings.Contains(htmlPart, "<script>") {
		t.Fatalf("raw HTML from a label reached the HTML part:\n%s", htmlPart)
	}
}
