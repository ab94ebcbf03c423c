package notifications

import (
	"strconv"
	"unicode/utf8"

	"github.com/google/uuid"
)

// decodePayloadFast decodes the usual shape of a stored payload without reflection: one
// JSON object whose keys are MessagePayload's JSON names, each at most once, with strings
// that need no unescaping; actions, labels and targets of the declared types; data with
// scalar values only. For anything else it reports ok=false and DecodePayload lets
// encoding/json decide. Whenever ok is true, p is exactly what json.Unmarshal gives for
// raw (FuzzDecodePayloadFast checks this); the strings in p share one copy of raw.
func decodePayloadFast(raw []byte) (p MessagePayload, ok bool) {
	d := fastDecoder{s: string(raw)}
	d.ws()
	if !d.consume('{') {
		return p, false
	}
	var seen uint16
	d.ws()
	if d.consume('}') {
		return p, d.end()
	}
	for {
		d.ws()
		key, ok := d.str()
		if !ok {
			return p, false
		}
		d.ws()
		if !d.consume(':') {
			return p, false
		}
		d.ws()
		bit, ok := payloadFields[key]
		if !ok || seen&bit != 0 {
			return p, false // an unknown, differently cased or repeated key
		}
		seen |= bit
		switch key {
		case "_version":
			ok = d.strOrNull(&p.Version)
		case "notification_name":
			ok = d.strOrNull(&p.NotificationName)
		case "notification_template_id":
			ok = d.strOrNull(&p.NotificationTemplateID)
		case "user_id":
			ok = d.strOrNull(&p.UserID)
		case "user_email":
			ok = d.strOrNull(&p.UserEmail)
		case "user_name":
			ok = d.strOrNull(&p.UserName)
		case "user_username":
			ok = d.strOrNull(&p.UserUsername)
		case "actions":
			p.Actions, ok = d.actions()
		case "labels":
			p.Labels, ok = d.labels()
		case "data":
			p.Data, ok = d.data()
		case "targets":
			p.Targets, ok = d.targets()
		}
		if !ok {
			return p, false
		}
		d.ws()
		if d.consume('}') {
			return p, d.end()
		}
		if !d.consume(',') {
			return p, false
		}
	}
}

// payloadFields gives each JSON name of MessagePayload a bit, to refuse repeated keys.
var payloadFields = map[string]uint16{
	"_version": 1 << 0, "notification_name": 1 << 1, "notification_template_id": 1 << 2,
	"user_id": 1 << 3, "user_email": 1 << 4, "user_name": 1 << 5, "user_username": 1 << 6,
	"actions": 1 << 7, "labels": 1 << 8, "data": 1 << 9, "targets": 1 << 10,
}

// fastDecoder reads JSON from s at i. Its methods report false for anything they do not
// handle, valid JSON or not.
type fastDecoder struct {
	s string
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) consume(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space follows.
func (d *fastDecoder) end() bool {
	d.ws()
	return d.i == len(d.s)
}

// literal consumes lit (null, true, false) if it is next.
func (d *fastDecoder) literal(lit string) bool {
	if len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// str reads a string without escapes or control characters, in valid UTF-8, which
// decodes to its bytes as they are.
func (d *fastDecoder) str() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	start, ascii := d.i, true
	for {
		for d.i < len(d.s) && !strStop[d.s[d.i]] {
			d.i++
		}
		if d.i == len(d.s) {
			return "", false
		}
		switch c := d.s[d.i]; {
		case c == '"':
			v := d.s[start:d.i]
			d.i++
			return v, ascii || utf8.ValidString(v)
		case c >= utf8.RuneSelf:
			ascii = false
			d.i++
		default: // an escape or a control character
			return "", false
		}
	}
}

// strStop marks the bytes str stops at: the closing quote, an escape, control characters
// and the bytes of non-ASCII characters.
var strStop = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < ' ' || c >= utf8.RuneSelf
	}
	return t
}()

// strOrNull reads a string into dst; null leaves dst as it is, as encoding/json does.
func (d *fastDecoder) strOrNull(dst *string) bool {
	if d.literal("null") {
		return true
	}
	v, ok := d.str()
	*dst = v
	return ok
}

// object reads an object whose values each calls member for, after the key and colon.
func (d *fastDecoder) object(member func(key string) bool) bool {
	if !d.consume('{') {
		return false
	}
	d.ws()
	if d.consume('}') {
		return true
	}
	for {
		d.ws()
		key, ok := d.str()
		if !ok {
			return false
		}
		d.ws()
		if !d.consume(':') {
			return false
		}
		d.ws()
		if !member(key) {
			return false
		}
		d.ws()
		if d.consume('}') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

// array reads an array, calling elem for each element.
func (d *fastDecoder) array(elem func() bool) bool {
	if !d.consume('[') {
		return false
	}
	d.ws()
	if d.consume(']') {
		return true
	}
	for {
		d.ws()
		if !elem() {
			return false
		}
		d.ws()
		if d.consume(']') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

func (d *fastDecoder) actions() ([]Action, bool) {
	if d.literal("null") {
		return nil, true
	}
	out := []Action{}
	ok := d.array(func() bool {
		var a Action
		var seenLabel, seenURL bool
		ok := d.object(func(key string) bool {
			switch {
			case key == "label" && !seenLabel:
				seenLabel = true
				return d.strOrNull(&a.Label)
			case key == "url" && !seenURL:
				seenURL = true
				return d.strOrNull(&a.URL)
			}
			return false
		})
		out = append(out, a)
		return ok
	})
	return out, ok
}

func (d *fastDecoder) labels() (map[string]string, bool) {
	if d.literal("null") {
		return nil, true
	}
	out := map[string]string{}
	ok := d.object(func(key string) bool {
		v, ok := d.str()
		out[key] = v
		return ok
	})
	return out, ok
}

func (d *fastDecoder) data() (map[string]any, bool) {
	if d.literal("null") {
		return nil, true
	}
	out := map[string]any{}
	ok := d.object(func(key string) bool {
		v, ok := d.scalar()
		out[key] = v
		return ok
	})
	return out, ok
}

// scalar reads a string, number, boolean or null as encoding/json decodes it into an
// interface value. Objects and arrays are not handled.
func (d *fastDecoder) scalar() (any, bool) {
	if d.i >= len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; {
	case c == '"':
		return d.str()
	case c == 'n':
		return nil, d.literal("null")
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		if !d.number() {
			return nil, false
		}
		f, err := strconv.ParseFloat(d.s[start:d.i], 64)
		return f, err == nil
	}
	return nil, false
}

// number reads a number as JSON defines it.
func (d *fastDecoder) number() bool {
	d.consume('-')
	switch {
	case d.consume('0'):
	case d.digits() == 0:
		return false
	}
	if d.consume('.') && d.digits() == 0 {
		return false
	}
	if d.consume('e') || d.consume('E') {
		if !d.consume('+') {
			d.consume('-')
		}
		if d.digits() == 0 {
			return false
		}
	}
	return true
}

func (d *fastDecoder) digits() int {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

func (d *fastDecoder) targets() ([]uuid.UUID, bool) {
	if d.literal("null") {
		return nil, true
	}
	out := []uuid.UUID{}
	ok := d.array(func() bool {
		v, ok := d.str()
		if !ok {
			return false
		}
		var id uuid.UUID
		if err := id.UnmarshalText([]byte(v)); err != nil {
			return false
		}
		out = append(out, id)
		return true
	})
	return out, ok
}
