package gqlscalar

import (
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// MarshalTime writes a time as RFC 3339 with nanoseconds, in UTC.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// UnmarshalTime reads an RFC 3339 time. Anything else, or a year PostgreSQL cannot store
// (outside 1..9999), is BAD_USER_INPUT; the presenter names the argument from the path.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.Invalid("", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, apperr.Invalid("", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t, nil
}
