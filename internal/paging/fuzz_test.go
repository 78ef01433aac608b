package paging_test

import (
	"errors"
	"testing"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/paging"
)

// Any string a client sends as a cursor is either a position of this list and order, or
// BAD_USER_INPUT on its argument; a valid one round-trips. go test -fuzz=FuzzCursor ./internal/paging
func FuzzCursor(f *testing.F) {
	valid := paging.Cursor{List: "user", Field: "CREATED_AT", Value: "2026-01-02T03:04:05.123456Z", ID: 7}.Encode()
	for _, s := range []string{valid, "", "garbage!", "eyJsIjoidXNlciJ9", paging.Cursor{List: "item", Field: "ID", ID: 1}.Encode()} {
		f.Add(s, true)
		f.Add(s, false)
	}
	sorts := map[bool]paging.Sort{true: {Column: "u.created_at", Cast: "timestamptz"}, false: {}}
	f.Fuzz(func(t *testing.T, raw string, byTime bool) {
		field := "ID"
		if byTime {
			field = "CREATED_AT"
		}
		page, err := paging.Parse(paging.Args{After: &raw}, "user", field, sorts[byTime])
		if err != nil {
			var appErr *apperr.Error
			if !errors.As(err, &appErr) || appErr.Code != apperr.BadUserInput || appErr.Field != "after" {
				t.Fatalf("%q: want BAD_USER_INPUT on after, got %v", raw, err)
			}
			return
		}
		c := *page.Cursor
		if c.ID <= 0 || c.List != "user" || c.Field != field || (!byTime && c.Value != "") {
			t.Fatalf("%q decoded to %+v", raw, c)
		}
		again, err := paging.Parse(paging.Args{After: ptr(c.Encode())}, "user", field, sorts[byTime])
		if err != nil || *again.Cursor != c {
			t.Fatalf("%+v does not round-trip: %v", c, err)
		}
	})
}

func ptr[T any](v T) *T { return &v }
