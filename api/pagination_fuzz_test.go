package api

import (
	"testing"

	"connectrpc.com/connect"
)

// FuzzDecodeCursor: any page token is either a cursor this API could have issued (it
// re-encodes to a token that decodes to the same cursor) or InvalidArgument naming
// page_token; it never panics.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(encodeCursor(cursor{ID: "run_01", Time: 1_700_000_000_000_000}))
	f.Add(encodeCursor(cursor{Seq: 42}))
	f.Add("eyJpIjoxfQ") // {"i":1}: a number where a string belongs
	f.Add("!!!")
	f.Add("bnVsbA") // null
	f.Fuzz(func(t *testing.T, token string) {
		c, err := decodeCursor(token)
		if err != nil {
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("decodeCursor(%q): %v, want InvalidArgument", token, err)
			}
			return
		}
		again, err := decodeCursor(encodeCursor(c))
		if err != nil || again != c {
			t.Fatalf("cursor %+v from %q does not round-trip: %+v, %v", c, token, again, err)
		}
	})
}
