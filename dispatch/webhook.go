package dispatch

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/markdown"
)

// WebhookVersion is the "_version" of the webhook body.
const WebhookVersion = "1.1"

// WebhookConfig configures the webhook handler.
type WebhookConfig struct {
	// URL receives every notification as a JSON POST. Required; http or https.
	URL string
	// Headers are added to every request (e.g. an API key). Names must be RFC 9110 tokens
	// and values field-values (no control characters but tab); the headers the handler
	// sets itself (X-Message-Id, webhook-*, Host, Content-Length, ...) are
	// refused. Default: none.
	Headers map[string]string
	// Secrets sign requests with Standard Webhooks (webhook-id, webhook-timestamp,
	// webhook-signature). Each is the base64 of the key, with or without a "whsec_"
	// prefix — the convention of the specification and its official libraries, so a
	// receiver given the same string verifies. A secret that is not base64 is refused; use
	// RawSecrets for raw key bytes. With several secrets (rotation) every one signs,
	// space-separated. Default: unsigned.
	Secrets []string
	// AllowedNetworks lists address ranges the handler may connect to although they are
	// refused by default: every range of the IANA IPv4 and IPv6 special-purpose registries
	// that is not globally reachable (private, loopback, link-local, shared, documentation,
	// benchmarking, reserved, ...), multicast, and IPv6 forms embedding such an IPv4
	// address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16; local-use NAT64
	// 64:ff9b:1::/48 and IPv4-compatible ::/96 are refused whole). The check runs at dial
	// time, on the resolved address, so DNS tricks cannot get around it. Default: none.
	AllowedNetworks []netip.Prefix
	// MaxResponseBytes bounds how much of a response body is read. Default: 64 KiB.
	MaxResponseBytes int64
	// ResponseHeaderTimeout bounds the wait for response headers. Default: 30s. The
	// Manager's DispatchTimeout bounds the whole request in any case.
	ResponseHeaderTimeout time.Duration
	// MaxRetryAfter caps the delay a Retry-After header can ask for (the Manager caps every
	// retry at Config.MaxRetryInterval in any case). Default (zero): 1h; must not be
	// negative.
	MaxRetryAfter time.Duration
	// RawSecrets are signing keys used as the raw bytes given, for receivers configured
	// with raw keys (NewWebhookRaw in the official libraries); they sign besides Secrets.
	// Default: none.
	RawSecrets [][]byte
	// Clock stamps webhook-timestamp and reads Retry-After dates. Default: real.
	Clock quartz.Clock
	// Transport replaces the HTTP transport (its dialer then bypasses AllowedNetworks:
	// the caller owns that policy). Default: a transport with the address guard.
	Transport http.RoundTripper
}

// WebhookBody is the JSON the webhook handler POSTs. In Payload, absent labels, data,
// actions and targets are sent as {} and [], never null.
type WebhookBody struct {
	Version       string                       `json:"_version"`
	MsgID         uuid.UUID                    `json:"msg_id"`
	Payload       notifications.MessagePayload `json:"payload"`
	Title         string                       `json:"title"`
	TitleMarkdown string                       `json:"title_markdown"`
	Body          string                       `json:"body"`
	BodyMarkdown  string                       `json:"body_markdown"`
}

// Webhook is the webhook notifications.Handler.
type Webhook struct {
	cfg     WebhookConfig
	url     *url.URL
	secrets [][]byte
	client  *http.Client
}

var _ notifications.Handler = (*Webhook)(nil)

// ErrBlockedAddress is returned when a webhook URL resolves to an address that is not
// allowed (private, loopback, link-local, ...).
var ErrBlockedAddress = xerrors.New("webhook address is not allowed")

// NewWebhook validates cfg and returns the handler.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, xerrors.Errorf("new webhook handler: WebhookConfig.URL %q must be an absolute http or https URL", cfg.URL)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Headers)) {
		if err := checkHeader(k, cfg.Headers[k]); err != nil {
			return nil, xerrors.Errorf("new webhook handler: WebhookConfig.Headers[%q]: %w", k, err)
		}
	}
	secrets := make([][]byte, 0, len(cfg.Secrets)+len(cfg.RawSecrets))
	for i, s := range cfg.Secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return nil, xerrors.Errorf("new webhook handler: WebhookConfig.Secrets[%d]: %w", i, err)
		}
		secrets = append(secrets, key)
	}
	for i, key := range cfg.RawSecrets {
		if len(key) == 0 {
			return nil, xerrors.Errorf("new webhook handler: WebhookConfig.RawSecrets[%d] is empty", i)
		}
		secrets = append(secrets, bytes.Clone(key))
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 10
	}
	if cfg.MaxRetryAfter < 0 {
		return nil, xerrors.Errorf("new webhook handler: WebhookConfig.MaxRetryAfter %s must not be negative", cfg.MaxRetryAfter)
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = time.Hour
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = quartz.NewReal()
	}
	transport := cfg.Transport
	if transport == nil {
		dialer := &net.Dialer{Control: addressGuard(cfg.AllowedNetworks)}
		transport = &http.Transport{
			Proxy:                 nil, // a proxy would bypass the address guard
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	return &Webhook{
		cfg: cfg, url: u, secrets: secrets,
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // never follow: a redirect could lead anywhere
			},
		},
	}, nil
}

// reservedHeaders are set by the handler or by net/http; a configured value would be
// overwritten or ignored, so it is refused.
var reservedHeaders = []string{"Content-Length", "Transfer-Encoding", "Host", "Connection",
	"X-Message-Id", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

// checkHeader validates a configured header: the name an RFC 9110 token, the value a
// field-value (visible characters, spaces and tabs, no other control characters).
func checkHeader(name, value string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return xerrors.New("the name is not an RFC 9110 token (letters, digits and !#$%&'*+-.^_`|~ only)")
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return xerrors.New("the value holds a control character (CR, LF, NUL, DEL, ...)")
	}
	if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)) {
		return xerrors.Errorf("the handler sets %s itself", http.CanonicalHeaderKey(name))
	}
	return nil
}

func decodeSecret(s string) ([]byte, error) {
	rest := strings.TrimPrefix(s, "whsec_")
	if rest == "" {
		return nil, xerrors.New("secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, xerrors.Errorf("secret is not base64 (Standard Webhooks secrets are base64, optionally prefixed with whsec_; use RawSecrets for raw key bytes): %w", err)
	}
	if len(key) == 0 {
		return nil, xerrors.New("secret is empty")
	}
	return key, nil
}

// addressGuard refuses connections to addresses that are not globally reachable unless
// allowed; see blockedAddress.
func addressGuard(allowed []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return xerrors.Errorf("%w: cannot parse %q", ErrBlockedAddress, address)
		}
		if reason := blockedAddress(ap.Addr().WithZone(""), allowed); reason != "" {
			return xerrors.Errorf("%w: %s (%s)", ErrBlockedAddress, ap.Addr(), reason)
		}
		return nil
	}
}

// Ranges refused by the address guard: the entries of the IANA IPv4 and IPv6
// Special-Purpose Address Registries, multicast, the deprecated site-local and
// IPv4-compatible forms. Globally reachable registry entries outside these (AS112, AMT in
// IPv4) are allowed.
var (
	blockedV4 = mustPrefixes(map[string]string{
		"0.0.0.0/8":       "this network",
		"10.0.0.0/8":      "private",
		"100.64.0.0/10":   "shared address space",
		"127.0.0.0/8":     "loopback",
		"169.254.0.0/16":  "link-local",
		"172.16.0.0/12":   "private",
		"192.0.0.0/24":    "IETF protocol assignments",
		"192.0.2.0/24":    "documentation",
		"192.88.99.0/24":  "deprecated 6to4 relay anycast",
		"192.168.0.0/16":  "private",
		"198.18.0.0/15":   "benchmarking",
		"198.51.100.0/24": "documentation",
		"203.0.113.0/24":  "documentation",
		"224.0.0.0/4":     "multicast",
		"240.0.0.0/4":     "reserved (and the limited broadcast address)",
	})
	blockedV6 = mustPrefixes(map[string]string{
		"::/96":          "unspecified, loopback or deprecated IPv4-compatible",
		"64:ff9b:1::/48": "local-use IPv4/IPv6 translation",
		"100::/63":       "discard-only and dummy prefixes",
		"2001::/23":      "IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)",
		"2001:db8::/32":  "documentation",
		"3fff::/20":      "documentation",
		"5f00::/16":      "segment routing SIDs",
		"fc00::/7":       "unique local",
		"fe80::/10":      "link-local",
		"fec0::/10":      "deprecated site-local",
		"ff00::/8":       "multicast",
	})
	// IPv6 forms that carry an IPv4 address: judged by the IPv4 rules.
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96") // IPv4 in the last 32 bits
	sixToFour   = netip.MustParsePrefix("2002::/16")    // IPv4 in bits 16–47
)

// ipv4InIPv6At returns the IPv4 address in bytes at..at+3 of ip.
func ipv4InIPv6At(ip netip.Addr, at int) netip.Addr {
	b := ip.As16()
	return netip.AddrFrom4([4]byte(b[at : at+4]))
}

type namedPrefix struct {
	prefix netip.Prefix
	name   string
}

func mustPrefixes(m map[string]string) []namedPrefix {
	out := make([]namedPrefix, 0, len(m))
	for p, name := range m {
		out = append(out, namedPrefix{netip.MustParsePrefix(p), name})
	}
	return out
}

// blockedAddress returns why ip may not be dialled, or "" when it may: it is on the
// allow list, or in none of the refused ranges. An IPv4-mapped, NAT64 (64:ff9b::/96) or
// 6to4 (2002::/16) address is judged as the IPv4 address it embeds (allow list included).
func blockedAddress(ip netip.Addr, allowed []netip.Prefix) string {
	for _, p := range allowed {
		if p.Contains(ip) {
			return ""
		}
	}
	switch {
	case ip.Is4In6():
		return blockedAddress(ip.Unmap(), allowed)
	case nat64Prefix.Contains(ip):
		if reason := blockedAddress(ipv4InIPv6At(ip, 12), allowed); reason != "" {
			return "NAT64 of " + ipv4InIPv6At(ip, 12).String() + ": " + reason
		}
		return ""
	case sixToFour.Contains(ip):
		if reason := blockedAddress(ipv4InIPv6At(ip, 2), allowed); reason != "" {
			return "6to4 of " + ipv4InIPv6At(ip, 2).String() + ": " + reason
		}
		return ""
	}
	ranges := blockedV6
	if ip.Is4() {
		ranges = blockedV4
	}
	for _, r := range ranges {
		if r.prefix.Contains(ip) {
			return r.name
		}
	}
	return ""
}

// Sign returns the Standard Webhooks signature header value for one request.
func Sign(secrets [][]byte, msgID string, timestamp int64, body []byte) string {
	sigs := make([]string, 0, len(secrets))
	for _, key := range secrets {
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%d.", msgID, timestamp)
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// ErrBadSignature is returned by VerifyWebhook for a request that is not signed by any of
// the secrets, is malformed, or is outside the timestamp tolerance.
var ErrBadSignature = xerrors.New("webhook signature does not verify")

// VerifyWebhook checks a received webhook the way a Standard Webhooks receiver does: the
// webhook-timestamp is within tolerance of now (replays are refused), and one of the
// space-separated "v1,<base64>" signatures in webhook-signature is the HMAC-SHA256 of
// "id.timestamp.body" under one of secrets (base64, optionally prefixed with "whsec_", as
// WebhookConfig.Secrets). Use it in your receiver, or in tests of one.
func VerifyWebhook(secrets []string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return xerrors.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return xerrors.Errorf("%w: webhook-timestamp %q is not Unix seconds", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return xerrors.Errorf("%w: webhook-timestamp is %s away from now, over the tolerance of %s", ErrBadSignature, d.Round(time.Second), tolerance)
	}
	for i, secret := range secrets {
		key, err := decodeSecret(secret)
		if err != nil {
			return xerrors.Errorf("verify webhook: secrets[%d]: %w", i, err)
		}
		want := Sign([][]byte{key}, id, sec, body)
		for _, sig := range strings.Fields(sigs) {
			if hmac.Equal([]byte(sig), []byte(want)) {
				return nil
			}
		}
	}
	return xerrors.Errorf("%w: no signature matches", ErrBadSignature)
}

// Dispatcher implements notifications.Handler.
func (w *Webhook) Dispatcher(payload notifications.MessagePayload, title, body string, _ template.FuncMap) (notifications.DeliveryFunc, error) {
	payload = withEmptyCollections(payload)
	return func(ctx context.Context, msgID uuid.UUID) (bool, error) {
		b, err := json.Marshal(WebhookBody{
			Version: WebhookVersion, MsgID: msgID, Payload: payload,
			Title: markdown.ToPlain(title), TitleMarkdown: title,
			Body: markdown.ToPlain(body), BodyMarkdown: body,
		})
		if err != nil {
			return false, xerrors.Errorf("encode webhook body: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(b))
		if err != nil {
			return false, xerrors.Errorf("build webhook request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "notifykit-notifications")
		for k, v := range w.cfg.Headers {
			req.Header.Set(k, v)
		}
		id := msgID.String()
		req.Header.Set("X-Message-Id", id)
		if len(w.secrets) > 0 {
			ts := w.cfg.Clock.Now("webhook", "timestamp").Unix()
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
			req.Header.Set("webhook-signature", Sign(w.secrets, id, ts, b))
		}
		resp, err := w.client.Do(req)
		if err != nil {
			if errors.Is(err, ErrBlockedAddress) {
				return false, xerrors.Errorf("post webhook: %w", err)
			}
			return true, xerrors.Errorf("post webhook: %w", err)
		}
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, min(w.cfg.MaxResponseBytes, 512)))
		// Drain a bounded remainder so the connection can be reused; never more.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, w.cfg.MaxResponseBytes))
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return false, nil
		}
		failure := xerrors.Errorf("webhook returned %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
		switch {
		case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			if d, ok := retryAfter(resp.Header.Get("Retry-After"), w.cfg.Clock.Now("webhook", "retryAfter"), w.cfg.MaxRetryAfter); ok {
				return true, notifications.RetryAfter(d, failure)
			}
			return true, failure
		default:
			return false, failure
		}
	}, nil
}

// withEmptyCollections returns p with absent labels, data, actions and targets made
// empty, so that the JSON carries {} and [] instead of null.
func withEmptyCollections(p notifications.MessagePayload) notifications.MessagePayload {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	if p.Data == nil {
		p.Data = map[string]any{}
	}
	if p.Actions == nil {
		p.Actions = []notifications.Action{}
	}
	if p.Targets == nil {
		p.Targets = []uuid.UUID{}
	}
	return p
}

// retryAfter parses a Retry-After header strictly (RFC 9110 §10.2.3): delay-seconds, only
// digits, or an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms). It
// returns the delay capped at limit, and false — the engine's own backoff applies then —
// for anything else: a value that asks for no delay (zero, a date not after now), one that
// is not one of those forms (a sign, a fraction, other date formats), or one whose delay
// does not fit a time.Duration (about 292 years: 99999999999 seconds, a date in the year
// 9999), which would overflow.
func retryAfter(v string, now time.Time, limit time.Duration) (time.Duration, bool) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > math.MaxInt64/int64(time.Second) {
			return 0, false
		}
		d = time.Duration(secs) * time.Second
	} else {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0, false
		}
		if d = t.Sub(now); d == math.MaxInt64 {
			return 0, false // Sub saturated: the date is too far away to represent
		}
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, limit), true
}
