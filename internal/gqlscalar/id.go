// Package gqlscalar marshals the GraphQL scalars whose Go form is a domain type.
package gqlscalar

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// MarshalID writes a database id as a GraphQL ID (a JSON string, as the spec recommends).
func MarshalID(id int64) graphql.Marshaler { return idValue(id) }

// idValue is an id to write. A value, not a closure: one allocation less per id of an answer,
// and none while writing into the answer's buffer.
type idValue int64

// MarshalGQL implements graphql.Marshaler.
func (id idValue) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok { // the executor's answer
		b := append(buf.AvailableBuffer(), '"')
		b = strconv.AppendInt(b, int64(id), 10)
		_, _ = buf.Write(append(b, '"'))
		return
	}
	var arr [24]byte
	b := append(arr[:0], '"')
	b = strconv.AppendInt(b, int64(id), 10)
	_, _ = w.Write(append(b, '"'))
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
