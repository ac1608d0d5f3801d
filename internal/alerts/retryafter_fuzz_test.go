package alerts

import (
	"net/http"
	"testing"
	"time"
)

// FuzzParseRetryAfter: whatever a receiver sends in Retry-After, the delay is between 0
// and MaxRetryAfter (a huge number of seconds used to overflow time.Duration and wrap).
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Add("120")
	f.Add("-5")
	f.Add("99999999999999")
	f.Add("9223372037")
	f.Add(now.Add(time.Hour).Format(http.TimeFormat))
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT")
	f.Add("soon")
	f.Fuzz(func(t *testing.T, v string) {
		d := parseRetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s", v, d)
		}
	})
}
