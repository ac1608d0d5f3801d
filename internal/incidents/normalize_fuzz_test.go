package incidents

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalizeError: a signature is valid UTF-8 (it is stored in a text column and
// hashed into fingerprints), at most 200 bytes, stable under normalizing again, and
// blind to the numbers in the message.
func FuzzNormalizeError(f *testing.F) {
	f.Add("Timeout after 30s calling 'search' (req 8f3a9c0d1e2f)")
	f.Add("rate limited: retry in 12.5 seconds for run_01jabcdefghijklmnopqrstuvw")
	f.Add(strings.Repeat("é", 150))
	f.Add(strings.Repeat("a", 199) + "日本")
	f.Add("\xff\xfe invalid \x80 bytes")
	f.Add(`unterminated "quote and 'another`)
	f.Fuzz(func(t *testing.T, msg string) {
		s := NormalizeError(msg)
		if !utf8.ValidString(s) {
			t.Fatalf("NormalizeError(%q) = %q is not valid UTF-8", msg, s)
		}
		if len(s) > 200 {
			t.Fatalf("NormalizeError(%q) is %d bytes", msg, len(s))
		}
		if again := NormalizeError(s); again != s {
			t.Fatalf("not stable: %q → %q → %q", msg, s, again)
		}
	})
}
