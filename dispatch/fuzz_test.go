package dispatch_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/notifykit/notifications/dispatch"
)

// FuzzVerifyWebhook: the verifier never panics on any header, accepts what Sign produced,
// and refuses it once the body changes.
func FuzzVerifyWebhook(f *testing.F) {
	f.Add("msg_1", int64(1764235800), []byte(`{"a":1}`), "v1,AAAA", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("", int64(0), []byte{}, "v1,", "raw-secret")
	f.Add("id with spaces", int64(-5), []byte("\x00\xff"), "v1,==== v2,x", "whsec_!!!")
	f.Fuzz(func(t *testing.T, id string, ts int64, body []byte, sigHeader, secret string) {
		now := time.Unix(ts, 0)
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", sigHeader)
		_ = dispatch.VerifyWebhook([]string{secret}, h, body, now, 5*time.Minute) // must not panic

		// The fuzzed secret as key bytes, given to the verifier in the Standard Webhooks form.
		key := []byte(secret)
		if secret == "" {
			return
		}
		encoded := "whsec_" + base64.StdEncoding.EncodeToString(key)
		h.Set("webhook-signature", dispatch.Sign([][]byte{key}, h.Get("webhook-id"), ts, body))
		if h.Get("webhook-id") == "" {
			return
		}
		if err := dispatch.VerifyWebhook([]string{encoded}, h, body, now, 5*time.Minute); err != nil {
			t.Fatalf("a signature made by Sign does not verify: %v", err)
		}
		changed := append(bytes.Clone(body), 'x')
		if err := dispatch.VerifyWebhook([]string{encoded}, h, changed, now, 5*time.Minute); err == nil {
			t.Fatal("a changed body verified")
		}
	})
}
