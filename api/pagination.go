package api

import (
	"encoding/base64"
	"encoding/json"
)

const (
	defaultPageSize = 50
)

// cursor is where a page ends. Page tokens are its opaque, URL-safe encoding.
type cursor struct {
	ID   string `json:"i,omitempty"` // lists ordered by id
	Seq  int64  `json:"s,omitempty"` // lists ordered by sequence
	Time int64  `json:"t,omitempty"` // µs since the epoch, for lists ordered by time then sequence
	// List names the list (and order) a token belongs to, for lists that check it
	// (decodeCursorFor); Kind is the log of the last entry, for merged logs.
	List string `json:"l,omitempty"`
	Kind string `json:"k,omitempty"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(token string) (cursor, error) {
	var c cursor
	if token == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, invalidField("page_token", "page_token.valid", "not a page token this API returned")
	}
	return c, nil
}

func pageSize(n int32) int32 {
	if n <= 0 {
		return defaultPageSize
	}
	return n
}

// page trims rows fetched with LIMIT size+1 to size and says whether more follow.
func page[T any](rows []T, size int32) ([]T, bool) {
	if int32(len(rows)) > size {
		return rows[:size], true
	}
	return rows, false
}

// decodeCursorFor decodes a page token that must come from the given list: a token of
// another list, or of the same list in the other order, is refused rather than misread.
func decodeCursorFor(token, list string) (cursor, error) {
	c, err := decodeCursor(token)
	if err == nil && token != "" && c.List != list {
		return c, invalidField("page_token", "page_token.valid", "a page token of another list or order")
	}
	return c, err
}
