package notifications

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestDedupeKeyBytes: dedupeKey hashes exactly the bytes of its definition (so keys of
// messages stored by earlier versions still match), with and without an idempotency key.
func TestDedupeKeyBytes(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"labels":{"a":"b"}}`)
	for _, key := range []string{"", "order-1", strings.Repeat("k", 300)} {
		req := EnqueueRequest{TemplateID: uuid.New(), UserID: uuid.New(), IdempotencyKey: key}
		var def string
		if key != "" {
			def = "key\x00" + key + "\x00" + string(MethodWebhook)
		} else {
			def = "content\x00" + req.TemplateID.String() + "\x00" + req.UserID.String() + "\x00" + string(MethodWebhook) + "\x00" +
				string(payload) + "\x00" + "2026-01-02"
		}
		sum := sha256.Sum256([]byte(def))
		if got, want := dedupeKey(req, MethodWebhook, payload, "2026-01-02"), hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("key %q: dedupeKey %s, want %s", key, got, want)
		}
	}
}
