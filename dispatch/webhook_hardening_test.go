package dispatch_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
)

// TestWebhookRetryAfterStrict: Retry-After is delta-seconds (digits only) or an HTTP-date;
// anything else, a negative, a delay that would overflow time.Duration, or a date not in
// the future means "no specific delay" (the engine's backoff); an accepted delay is capped
// at WebhookConfig.MaxRetryAfter.
func TestWebhookRetryAfterStrict(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Retry-After"] = r.URL.Query()["v"]
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		value string
		max   time.Duration
		want  time.Duration // 0: no specific delay
	}{
		{value: "7", want: 7 * time.Second},
		{value: " 120 ", want: 2 * time.Minute},
		{value: "0"},
		{value: "-5"},
		{value: "+5"},
		{value: "7.5"},
		{value: "0x10"},
		{value: "1e3"},
		{value: "soon"},
		{value: ""},
		{value: "3600", want: time.Hour},
		{value: "3601", want: time.Hour},
		{value: "315360000", want: time.Hour},
		{value: "9223372036", want: time.Hour},
		{value: "9300000000"},
		{value: "99999999999999999999999"},
		{value: "600", max: 5 * time.Minute, want: 5 * time.Minute},
		{value: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{value: now.Add(-time.Minute).Format(http.TimeFormat)},
		{value: now.Format(http.TimeFormat)},
		{value: "Fri, 31 Dec 9999 23:59:59 GMT"},
		{value: "Sat, 01 Jan 2050 00:00:00 GMT", want: time.Hour},
		{value: "Friday, 27-Nov-26 09:31:00 GMT", want: time.Minute},
		{value: "Fri Nov 27 09:31:00 2026", want: time.Minute},
		{value: "2026-11-27T09:31:00Z"},
		{value: "Fri, 27 Nov 2026 09:31:00 +0100"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Parallel()
			clk := quartz.NewMock(t)
			clk.Set(now)
			h, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: srv.URL + "?v=" + urlQueryEscape(tc.value), AllowedNetworks: loopback, Clock: clk, MaxRetryAfter: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			_, retryable, err := deliver(t, h, context.Background())
			if err == nil || !retryable {
				t.Fatalf("err %v retryable %v", err, retryable)
			}
			var ra *notifications.RetryAfterError
			got := time.Duration(0)
			if errors.As(err, &ra) {
				got = ra.Delay
			}
			if got != tc.want {
				t.Fatalf("Retry-After %q: delay %s, want %s (err %v)", tc.value, got, tc.want, err)
			}
		})
	}
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// TestNewWebhookValidatesHeaders: header names must be RFC 9110 tokens and values
// field-values (no NUL, DEL or other controls but tab); the error names the header.
func TestNewWebhookValidatesHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"Authorization", "Bearer t", true},
		{"X-Api-Key", "a\tb c", true},
		{"X-Name", "café", true},
		{"X-Empty", "", true},
		{"X Api", "v", false},
		{"X:Api", "v", false},
		{"", "v", false},
		{"X-Nul\x00", "v", false},
		{"Ünïcode", "v", false},
		{"X-Api", "a\x00b", false},
		{"X-Api", "a\x7fb", false},
		{"X-Api", "a\r\nInjected: 1", false},
		{"X-Api", "a\nb", false},
		{"X-Api", "a\x1bb", false},
		{"webhook-signature", "v1,forged", false},
		{"Content-Length", "1", false},
		{"Host", "evil.example", false},
	} {
		_, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: "https://example.com/hook", Headers: map[string]string{tc.name: tc.value}})
		if tc.ok {
			if err != nil {
				t.Errorf("header %q: %q refused: %v", tc.name, tc.value, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("WebhookConfig.Headers[%q]", tc.name)) {
			t.Errorf("header %q: %q: err = %v, want an error naming WebhookConfig.Headers[%q]", tc.name, tc.value, err, tc.name)
		}
	}
}

// TestWebhookSecretsFollowStandardWebhooks: every secret is base64, with or without the
// "whsec_" prefix, as the official Standard Webhooks libraries read it, so a receiver
// given the same string verifies; raw key bytes are used only through RawSecrets.
func TestWebhookSecretsFollowStandardWebhooks(t *testing.T) {
	t.Parallel()
	srvURL, reqs := captureServer(t)
	const plain = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // base64 without the prefix
	for _, tc := range []struct {
		name   string
		cfg    dispatch.WebhookConfig
		verify func(http.Header, []byte) bool
	}{
		{"base64 without prefix", dispatch.WebhookConfig{Secrets: []string{plain}},
			func(h http.Header, b []byte) bool { return verifyStandardWebhook(plain, h, b) }},
		{"whsec_ prefix", dispatch.WebhookConfig{Secrets: []string{"whsec_" + plain}},
			func(h http.Header, b []byte) bool { return verifyStandardWebhook(plain, h, b) }},
		{"raw bytes by option", dispatch.WebhookConfig{RawSecrets: [][]byte{[]byte("raw key bytes")}},
			func(h http.Header, b []byte) bool {
				return verifyStandardWebhook(base64.StdEncoding.EncodeToString([]byte("raw key bytes")), h, b)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL, cfg.AllowedNetworks = srvURL, loopback
			h, err := dispatch.NewWebhook(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := deliver(t, h, context.Background()); err != nil {
				t.Fatal(err)
			}
			r := <-reqs
			if !tc.verify(r.header, r.body) {
				t.Fatalf("a Standard Webhooks receiver rejects the signature %q", r.header.Get("webhook-signature"))
			}
			if len(cfg.Secrets) > 0 {
				ts, _ := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
				if err := dispatch.VerifyWebhook(cfg.Secrets, r.header, r.body, time.Unix(ts, 0), time.Minute); err != nil {
					t.Fatalf("VerifyWebhook with the same secret: %v", err)
				}
			}
		})
	}
	for _, bad := range []string{"raw-secret-not-base64!", "whsec_!!!", "", "whsec_"} {
		if _, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: "https://example.com", Secrets: []string{bad}}); err == nil || !strings.Contains(err.Error(), "WebhookConfig.Secrets[0]") {
			t.Errorf("secret %q: err = %v, want an error naming WebhookConfig.Secrets[0]", bad, err)
		}
	}
	if _, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: "https://example.com", RawSecrets: [][]byte{nil}}); err == nil || !strings.Contains(err.Error(), "WebhookConfig.RawSecrets[0]") {
		t.Errorf("empty raw secret: err = %v", err)
	}
}

// TestWebhookEmptyCollections: absent labels, data, actions and targets are sent as {} and
// [], never null, so typed consumers can decode them.
func TestWebhookEmptyCollections(t *testing.T) {
	t.Parallel()
	srvURL, reqs := captureServer(t)
	h, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: srvURL, AllowedNetworks: loopback})
	if err != nil {
		t.Fatal(err)
	}
	p := samplePayload()
	p.Labels, p.Data, p.Actions, p.Targets = nil, nil, nil, nil
	fn, err := h.Dispatcher(p, "t", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(context.Background(), uuid.New()); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Payload map[string]json.RawMessage `json:"payload"`
	}
	raw := (<-reqs).body
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"labels": "{}", "data": "{}", "actions": "[]", "targets": "[]"} {
		if got := string(body.Payload[field]); got != want {
			t.Errorf("payload.%s = %s, want %s\n%s", field, got, want, raw)
		}
	}
}

// capturedRequest is one request a captureServer received.
type capturedRequest struct {
	header http.Header
	body   []byte
}

// captureServer is an httptest server that answers 200 and hands every request it
// receives to the returned channel (buffered for one).
func captureServer(t *testing.T) (string, <-chan capturedRequest) {
	t.Helper()
	reqs := make(chan capturedRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- capturedRequest{r.Header.Clone(), b}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, reqs
}
