// Package gqlscalar marshals the GraphQL scalars whose Go form is a domain type.
package gqlscalar

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// MarshalID writes a database id as a GraphQL ID (a JSON string, as the spec recommends).
func MarshalID(id int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		var buf [24]byte
		b := append(buf[:0], '"')
		b = strconv.AppendInt(b, id, 10)
		b = append(b, '"')
		_, _ = w.Write(b)
	})
}

// UnmarshalID reads a GraphQL ID into a database id. Ids are positive integers; anything else is
// BAD_USER_INPUT. The field is left empty: the error presenter names the argument from the path.
func UnmarshalID(v any) (int64, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case int:
		s = strconv.Itoa(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	default:
		return 0, apperr.Invalid("", "must be a positive integer")
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.Invalid("", "must be a positive integer")
	}
	return id, nil
}
