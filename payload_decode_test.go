package notifications

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/uuid"
)

// decodeFastSeeds are payloads the fast decoder handles (fast: true) or leaves to
// encoding/json (fast: false).
var decodeFastSeeds = []struct {
	raw  string
	fast bool
}{
	{`{}`, true},
	{` { } `, true},
	{`{"_version":"1.2","notification_name":"n","notification_template_id":"t","user_id":"u","user_email":"e@x","user_name":"Ünï","user_username":"uu","actions":null,"labels":null,"data":null,"targets":null}`, true},
	{`{"actions":[],"labels":{},"data":{},"targets":[]}`, true},
	{`{"actions":[{"label":"l","url":"u"},{},{"url":null}],"labels":{"a":"b","a":"c","":""}}`, true},
	{`{"data":{"s":"x","n":-1.5e3,"z":0,"t":true,"f":false,"nil":null,"big":12345678901234567890}}`, true},
	{"{\n\t\"targets\" : [ \"6a1f4f5e-2d0c-4b8e-9a43-0c7e5d1e0001\" , \"{6a1f4f5e-2d0c-4b8e-9a43-0c7e5d1e0002}\" ]\r}", true},
	{`{"user_name":null}`, true},
	{`null`, false},
	{`[]`, false},
	{`{"user_name":"a\"b"}`, false},              // escape
	{`{"user_name":"a\u003cb"}`, false},          // escape
	{`{"User_Name":"x"}`, false},                 // case-insensitive match
	{`{"other":1}`, false},                       // unknown key
	{`{"user_name":"a","user_name":"b"}`, false}, // repeated key
	{`{"data":{"l":[1,"x",null]}}`, false},       // nested data
	{`{"data":{"o":{}}}`, false},
	{`{"data":{"n":1e999}}`, false},
	{`{"data":{"n":01}}`, false},
	{`{"data":{"n":1.}}`, false},
	{`{"data":{"n":-}}`, false},
	{`{"targets":["nope"]}`, false},
	{`{"targets":[null]}`, false},
	{`{"actions":[null]}`, false},
	{`{"actions":[{"label":"a","label":"b"}]}`, false},
	{`{"labels":{"a":null}}`, false},
	{`{"labels":{"a":1}}`, false},
	{`{"user_name":1}`, false},
	{"{\"user_name\":\"\xff\"}", false},
	{"{\"user_name\":\"a\tb\"}", false},
	{`{"user_name":"a"} x`, false},
	{`{"user_name":"a",}`, false},
	{`{"user_name":"a"`, false},
	{`{"user_name" "a"}`, false},
	{`{"data":{"t":tru}}`, false},
	{`{"data":{"t":nullx}}`, false},
}

// The fast decoder takes the shapes it is meant for and leaves the rest to encoding/json.
func TestDecodePayloadFastCoverage(t *testing.T) {
	t.Parallel()
	for _, tc := range decodeFastSeeds {
		if _, ok := decodePayloadFast([]byte(tc.raw)); ok != tc.fast {
			t.Errorf("decodePayloadFast(%q): ok=%v, want %v", tc.raw, ok, tc.fast)
		}
	}
	// What the enqueuer writes takes the fast path.
	raw, err := json.Marshal(MessagePayload{Version: PayloadVersion, NotificationName: "n", UserID: uuid.NewString(),
		Actions: []Action{{Label: "Open", URL: "https://example.com/x?y=1"}}, Labels: map[string]string{"k": "v"},
		Data: map[string]any{"n": 1, "s": "x"}, Targets: []uuid.UUID{uuid.New()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodePayloadFast(raw); !ok {
		t.Errorf("decodePayloadFast(%s) fell back", raw)
	}
}

// FuzzDecodePayloadFast: whenever the fast decoder accepts bytes, encoding/json accepts
// them too and decodes the same payload.
func FuzzDecodePayloadFast(f *testing.F) {
	for _, tc := range decodeFastSeeds {
		f.Add([]byte(tc.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := decodePayloadFast(raw)
		if !ok {
			return
		}
		var want MessagePayload
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("fast decoder accepted %q, encoding/json refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast %#v\njson %#v", raw, got, want)
		}
	})
}
