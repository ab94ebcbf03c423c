package pgtest

import (
	"fmt"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of ending the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

// TestUnavailableFailsUnderCI: a test that lacks something from its environment fails with
// CI=true and skips otherwise.
func TestUnavailableFailsUnderCI(t *testing.T) {
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		Unavailable(r, "no %s", "database")
		if ci == "true" && (r.fatal == "" || r.skip != "") {
			t.Errorf("CI=true: fatal %q, skip %q; want a failure", r.fatal, r.skip)
		}
		if ci == "" && (r.skip != "no database" || r.fatal != "") {
			t.Errorf("CI unset: fatal %q, skip %q; want a skip", r.fatal, r.skip)
		}
	}
}
