package notifications

import (
	"encoding/json"

	"github.com/google/uuid"
	"golang.org/x/xerrors"
)

// PayloadVersion is the version written to MessagePayload.Version. The field names match
// the widely deployed coder notification payload v1.2, so webhook consumers written for it
// keep working.
const PayloadVersion = "1.2"

// MaxPayloadBytes bounds the JSON encoding of one MessagePayload. Larger payloads are
// refused at enqueue with ErrInvalidMessage.
const MaxPayloadBytes = 256 << 10

// Action is a call to action attached to a notification: a button in an email, a link in
// the inbox.
type Action struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// MessagePayload is what every handler receives and what webhooks send as "payload".
type MessagePayload struct {
	Version string `json:"_version"`

	NotificationName       string `json:"notification_name"`
	NotificationTemplateID string `json:"notification_template_id"`

	UserID       string `json:"user_id"`
	UserEmail    string `json:"user_email"`
	UserName     string `json:"user_name"`
	UserUsername string `json:"user_username"`

	Actions []Action          `json:"actions"`
	Labels  map[string]string `json:"labels"`
	Data    map[string]any    `json:"data"`
	Targets []uuid.UUID       `json:"targets"`
}

// DecodePayload decodes a stored payload, refusing anything that is not a JSON object.
func DecodePayload(raw []byte) (MessagePayload, error) {
	if len(raw) == 0 {
		return MessagePayload{}, xerrors.Errorf("decode payload: empty: %w", ErrInvalidMessage)
	}
	if p, ok := decodePayloadFast(raw); ok {
		return p, nil
	}
	return decodePayloadJSON(raw)
}

// decodePayloadJSON is DecodePayload by encoding/json (a function of its own so that only
// this path puts the payload on the heap).
func decodePayloadJSON(raw []byte) (MessagePayload, error) {
	var p MessagePayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, xerrors.Errorf("decode payload: %v: %w", err, ErrInvalidMessage)
	}
	return p, nil
}
