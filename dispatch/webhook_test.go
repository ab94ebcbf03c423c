package dispatch_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func samplePayload() notifications.MessagePayload {
	return notifications.MessagePayload{
		Version: notifications.PayloadVersion, NotificationName: "Build failed",
		NotificationTemplateID: uuid.NewString(), UserID: uuid.NewString(), UserEmail: "ada@example.com",
		UserName: "Ada", UserUsername: "ada", Labels: map[string]string{"build": "42"},
	}
}

func deliver(t *testing.T, h notifications.Handler, ctx context.Context) (uuid.UUID, bool, error) {
	t.Helper()
	fn, err := h.Dispatcher(samplePayload(), "Build **42** failed", "See [logs](https://ci.example.com/42)", nil)
	if err != nil {
		t.Fatalf("dispatcher: %v", err)
	}
	id := uuid.New()
	retryable, err := fn(ctx, id)
	return id, retryable, err
}

// verifyStandardWebhook checks a request the way a Standard Webhooks receiver does,
// written from the specification rather than from the handler's code.
func verifyStandardWebhook(secret string, header http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	signed := header.Get("webhook-id") + "." + header.Get("webhook-timestamp") + "." + string(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(header.Get("webhook-signature")) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func TestWebhookSignedBody(t *testing.T) {
	t.Parallel()
	oldSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("old-secret-bytes-0123456789"))
	newSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("new-secret-bytes-9876543210"))
	srvURL, reqs := captureServer(t)
	clk := quartz.NewMock(t)
	h, err := dispatch.NewWebhook(dispatch.WebhookConfig{
		URL: srvURL, Secrets: []string{newSecret, oldSecret}, AllowedNetworks: loopback, Clock: clk,
		Headers: map[string]string{"Authorization": "Bearer t"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id, retryable, err := deliver(t, h, context.Background())
	if err != nil || retryable {
		t.Fatalf("deliver: %v (retryable %v)", err, retryable)
	}
	r := <-reqs
	for _, secret := range []string{oldSecret, newSecret} {
		if !verifyStandardWebhook(secret, r.header, r.body) {
			t.Fatalf("signature does not verify with %s: %q", secret, r.header.Get("webhook-signature"))
		}
	}
	if verifyStandardWebhook("whsec_"+base64.StdEncoding.EncodeToString([]byte("wrong")), r.header, r.body) {
		t.Fatal("signature verifies with a wrong secret")
	}
	if r.header.Get("X-Message-Id") != id.String() || r.header.Get("webhook-id") != id.String() ||
		r.header.Get("webhook-timestamp") != fmt.Sprint(clk.Now().Unix()) || r.header.Get("Content-Type") != "application/json" ||
		r.header.Get("Authorization") != "Bearer t" {
		t.Fatalf("headers %v", r.header)
	}
	var body dispatch.WebhookBody
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Version != dispatch.WebhookVersion || body.MsgID != id || body.Title != "Build 42 failed" || body.TitleMarkdown != "Build **42** failed" ||
		body.Body != "See logs (https://ci.example.com/42)" || body.Payload.UserEmail != "ada@example.com" {
		t.Fatalf("body %+v", body)
	}
}

func TestWebhookClassification(t *testing.T) {
	t.Parallel()
	redirected := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/404", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusNotFound) })
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	mux.HandleFunc("/408", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusRequestTimeout) })
	mux.HandleFunc("/429", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	mux.HandleFunc("/301", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { redirected <- struct{}{} })
	stop := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(stop)

	tests := []struct {
		path      string
		retryable bool
		delay     time.Duration
	}{
		{"/404", false, 0},
		{"/500", true, 0},
		{"/408", true, 0},
		{"/429", true, 7 * time.Second},
		{"/301", false, 0},
		{"/slow", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			h, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: srv.URL + tc.path, AllowedNetworks: loopback})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.path == "/slow" {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond) // the Manager's DispatchTimeout
				defer cancel()
			}
			_, retryable, err := deliver(t, h, ctx)
			if err == nil || retryable != tc.retryable {
				t.Fatalf("err %v retryable %v, want an error with retryable %v", err, retryable, tc.retryable)
			}
			var ra *notifications.RetryAfterError
			if got := errors.As(err, &ra); got != (tc.delay > 0) || (got && ra.Delay != tc.delay) {
				t.Fatalf("retry-after %v (%v), want %s", got, ra, tc.delay)
			}
		})
	}
	select {
	case <-redirected:
		t.Fatal("the redirect was followed")
	default:
	}
}

func TestWebhookRefusesLoopbackWithoutAllowList(t *testing.T) {
	t.Parallel()
	hit := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit <- struct{}{} }))
	defer srv.Close()
	h, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, retryable, err := deliver(t, h, context.Background())
	if !errors.Is(err, dispatch.ErrBlockedAddress) || retryable {
		t.Fatalf("err %v retryable %v, want ErrBlockedAddress, permanent", err, retryable)
	}
	select {
	case <-hit:
		t.Fatal("the request reached the loopback server")
	default:
	}
}

func TestWebhookHugeResponseBodyIsNotRead(t *testing.T) {
	t.Parallel()
	chunk := make([]byte, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for i := 0; i < 10; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	h, err := dispatch.NewWebhook(dispatch.WebhookConfig{URL: srv.URL, AllowedNetworks: loopback})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := deliver(t, h, context.Background()); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("a 10 MB response body allocated %d bytes", grew)
	}
}

func TestNewWebhookRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]dispatch.WebhookConfig{
		"relative URL": {URL: "/hook"},
		"ftp URL":      {URL: "ftp://example.com/x"},
		"header CRLF":  {URL: "https://example.com", Headers: map[string]string{"X": "a\r\nInjected: 1"}},
		"bad whsec":    {URL: "https://example.com", Secrets: []string{"whsec_!!!"}},
		"empty secret": {URL: "https://example.com", Secrets: []string{""}},
		"not a URL":    {URL: "http://[::1"},
	} {
		if _, err := dispatch.NewWebhook(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	now := time.Unix(1764235800, 0)
	body := []byte(`{"msg_id":"x"}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", "1764235800")
	h.Set("webhook-signature", dispatch.Sign([][]byte{key}, "msg_1", now.Unix(), body))
	if err := dispatch.VerifyWebhook([]string{"whsec_b2xk", secret}, h, body, now, time.Minute); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	if !verifyStandardWebhook(secret, h, body) {
		t.Fatal("the independent verifier disagrees")
	}
	for name, check := range map[string]func() error{
		"changed body": func() error { return dispatch.VerifyWebhook([]string{secret}, h, append(body, ' '), now, time.Minute) },
		"wrong secret": func() error { return dispatch.VerifyWebhook([]string{"whsec_b2xk"}, h, body, now, time.Minute) },
		"replayed late": func() error {
			return dispatch.VerifyWebhook([]string{secret}, h, body, now.Add(10*time.Minute), 5*time.Minute)
		},
		"no headers": func() error { return dispatch.VerifyWebhook([]string{secret}, http.Header{}, body, now, time.Minute) },
	} {
		if err := check(); !errors.Is(err, dispatch.ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
		}
	}
}
