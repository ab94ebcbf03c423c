package notifications

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/xerrors"
)

// checkUserValues refuses text that no store can keep and no receiver can rely on: NUL
// bytes (PostgreSQL's text and jsonb refuse them) and invalid UTF-8 (JSON encoding would
// silently replace it). It checks every string a request carries — labels (keys and
// values), data (keys and values, nested), the recipient's fields, CreatedBy and the
// idempotency key — and names the first bad one.
func checkUserValues(req EnqueueRequest, rcpt Recipient) error {
	check := func(field, v string) error {
		switch {
		case strings.IndexByte(v, 0) >= 0:
			return xerrors.Errorf("%s contains a NUL byte: %w", field, ErrInvalidMessage)
		case !utf8.ValidString(v):
			return xerrors.Errorf("%s is not valid UTF-8: %w", field, ErrInvalidMessage)
		}
		return nil
	}
	for _, f := range []struct{ name, v string }{
		{"CreatedBy", req.CreatedBy},
		{"IdempotencyKey", req.IdempotencyKey},
		{"Recipient.Email", rcpt.Email},
		{"Recipient.Name", rcpt.Name},
		{"Recipient.Username", rcpt.Username},
	} {
		if err := check(f.name, f.v); err != nil {
			return err
		}
	}
	if err := checkData("Labels", req.Labels, check); err != nil {
		return err
	}
	return checkData("Data", req.Data, check)
}

// checkData applies check to every string in a Data value, naming each by its path.
func checkData(path string, v any, check func(field, v string) error) error {
	switch v := v.(type) {
	case string:
		return check(path, v)
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if err := check(path+" key "+strconv.Quote(k), k); err != nil {
				return err
			}
			if err := checkData(path+"["+strconv.Quote(k)+"]", v[k], check); err != nil {
				return err
			}
		}
	case map[string]string:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if err := check(path+" key "+strconv.Quote(k), k); err != nil {
				return err
			}
			if err := check(path+"["+strconv.Quote(k)+"]", v[k]); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkData(fmt.Sprintf("%s[%d]", path, i), e, check); err != nil {
				return err
			}
		}
	case []string:
		for i, e := range v {
			if err := check(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}
