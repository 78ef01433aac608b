// Package gqlscalar marshals the GraphQL scalars whose Go form is a domain type, and holds the
// API's global object identification: the ID every object type is known by.
package gqlscalar

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// Global ids. Every object with an id (the types implementing Node: User and Item) is known by a
// global id, unique across types, as Relay expects: Relay keys its store by id and refetches any
// object through Query.node. A global id is the standard base64 encoding (with padding) of
// "<type>:<row>", as graphql-relay-js's toGlobalId writes it: "VXNlcjox" is user 1 ("User:1"),
// "SXRlbTox" item 1 ("Item:1"). The format is stable, so stored ids stay valid; clients should
// still treat ids as opaque, and read a row's number from databaseId.
//
// Where an argument or input field names an object of a known type (user(id), updateItem(id),
// ownerId, ...) it also accepts the bare row number, as clients of the old REST service send it
// ("1", or the JSON number 1). A global id of another type, or anything else, is BAD_USER_INPUT.

// Type is the object type a global id names.
type Type uint8

// The types with global ids. Untyped is a bare row number's.
const (
	Untyped Type = iota
	TypeUser
	TypeItem
)

var typeNames = [...]string{Untyped: "", TypeUser: "User", TypeItem: "Item"}

// String is the type's GraphQL name ("" for Untyped).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return ""
}

// ID is an ID as a client sent it, or as the API writes it: a row of a type (Type set: a global
// id), or a bare row number (Type Untyped) whose type the argument it came in gives.
type ID struct {
	Type Type
	Row  int64
}

// Node is an object with a global id (the schema's interface Node): *users.User, *items.Item.
type Node interface {
	GlobalID() ID
}

// maxGlobalID bounds a global id's length: "User:" and 19 digits, encoded (32 characters).
const maxGlobalID = 32

// MarshalGQL implements graphql.Marshaler: the global id, as a JSON string (an Untyped id, which
// the API never writes, as its row number).
func (id ID) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok { // the executor's answer: no copy
		_, _ = buf.Write(id.appendQuoted(buf.AvailableBuffer()))
		return
	}
	var arr [maxGlobalID + 2]byte
	_, _ = w.Write(id.appendQuoted(arr[:0]))
}

// String is the global id (an Untyped id's row number).
func (id ID) String() string {
	var arr [maxGlobalID + 2]byte
	b := id.appendQuoted(arr[:0])
	return string(b[1 : len(b)-1])
}

// AppendJSON appends the id to b as MarshalGQL writes it: a JSON string.
func (id ID) AppendJSON(b []byte) []byte { return id.appendQuoted(b) }

func (id ID) appendQuoted(b []byte) []byte {
	b = append(b, '"')
	if id.Type == Untyped {
		b = strconv.AppendInt(b, id.Row, 10)
	} else {
		var raw [24]byte
		src := append(raw[:0], id.Type.String()...)
		src = append(src, ':')
		src = strconv.AppendInt(src, id.Row, 10)
		b = base64.StdEncoding.AppendEncode(b, src)
	}
	return append(b, '"')
}

// UnmarshalGQL implements graphql.Unmarshaler: a global id, or a bare row number (a string of
// digits, or a JSON number). Anything else is BAD_USER_INPUT; the field is left empty, and the
// error presenter names the argument from the path.
func (id *ID) UnmarshalGQL(v any) error {
	parsed, err := ParseID(v)
	*id = parsed
	return err
}

// ParseID reads an ID as UnmarshalGQL does.
func ParseID(v any) (ID, error) {
	switch v := v.(type) {
	case string:
		return parseString(v)
	case json.Number:
		return parseRow(v.String())
	case int:
		return parseRow(strconv.Itoa(v))
	case int64:
		return parseRow(strconv.FormatInt(v, 10))
	}
	return ID{}, errMalformed
}

var errMalformed = apperr.Invalid("", "must be a global id or a row number")

func parseRow(s string) (ID, error) {
	row, err := strconv.ParseInt(s, 10, 64)
	if err != nil || row <= 0 {
		return ID{}, errMalformed
	}
	return ID{Row: row}, nil
}

func parseString(s string) (ID, error) {
	if row, err := strconv.ParseInt(s, 10, 64); err == nil { // no global id reads as a number
		if row <= 0 {
			return ID{}, errMalformed
		}
		return ID{Row: row}, nil
	}
	if len(s) == 0 || len(s) > maxGlobalID {
		return ID{}, errMalformed
	}
	var raw [maxGlobalID]byte
	n, err := base64.StdEncoding.Decode(raw[:], []byte(s))
	if err != nil {
		return ID{}, errMalformed
	}
	name, digits, ok := bytes.Cut(raw[:n], []byte{':'})
	if !ok {
		return ID{}, errMalformed
	}
	var id ID
	for t := TypeUser; int(t) < len(typeNames); t++ {
		if string(name) == typeNames[t] {
			id.Type = t
		}
	}
	if id.Type == Untyped {
		return ID{}, errMalformed
	}
	if id.Row, err = strconv.ParseInt(string(digits), 10, 64); err != nil || id.Row <= 0 {
		return ID{}, errMalformed
	}
	// One text per id, the canonical one (no sign or leading zero, the padding): ids compare
	// as strings wherever clients keep them.
	var canon [maxGlobalID + 2]byte
	if c := id.appendQuoted(canon[:0]); string(c[1:len(c)-1]) != s {
		return ID{}, errMalformed
	}
	return id, nil
}

// RowOf is the row id names, which must be one of type t: a bare row number, or a global id of
// type t. A global id of another type is BAD_USER_INPUT on field ("" lets the error presenter
// name it from the path, for an argument's own unmarshaler).
func (id ID) RowOf(t Type, field string) (int64, error) {
	if id.Type != Untyped && id.Type != t {
		return 0, apperr.Invalid(field, "is the id of "+article(id.Type)+", not of "+article(t))
	}
	return id.Row, nil
}

func article(t Type) string {
	if t == TypeItem {
		return "an Item"
	}
	return "a " + t.String()
}

// UserID is a user's row number as an ID: written, the user's global id (User.id, through a
// pointer to the user's own field: no allocation per id of an answer); read (ownerId), User's
// global id or the bare row number, and an Item's global id is BAD_USER_INPUT.
type UserID int64

// MarshalGQL implements graphql.Marshaler.
func (id UserID) MarshalGQL(w io.Writer) { ID{Type: TypeUser, Row: int64(id)}.MarshalGQL(w) }

// UnmarshalGQL implements graphql.Unmarshaler.
func (id *UserID) UnmarshalGQL(v any) error {
	row, err := parseTyped(v, TypeUser)
	*id = UserID(row)
	return err
}

// ItemID is UserID for items (Item.id).
type ItemID int64

// MarshalGQL implements graphql.Marshaler.
func (id ItemID) MarshalGQL(w io.Writer) { ID{Type: TypeItem, Row: int64(id)}.MarshalGQL(w) }

// UnmarshalGQL implements graphql.Unmarshaler.
func (id *ItemID) UnmarshalGQL(v any) error {
	row, err := parseTyped(v, TypeItem)
	*id = ItemID(row)
	return err
}

func parseTyped(v any, t Type) (int64, error) {
	parsed, err := ParseID(v)
	if err != nil {
		return 0, err
	}
	return parsed.RowOf(t, "")
}

// MarshalRow writes a row number (databaseId) as a GraphQL Int. Ids are PostgreSQL bigints:
// one past 2^31-1, which no table here is near, would be written as it is, beyond Int's range.
func MarshalRow(n int64) graphql.Marshaler { return rowValue(n) }

// rowValue is a row number to write: a value, not a closure (one allocation less per number), and
// none while writing into the answer's buffer.
type rowValue int64

// MarshalGQL implements graphql.Marshaler.
func (n rowValue) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok {
		_, _ = buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(n), 10))
		return
	}
	var arr [20]byte
	_, _ = w.Write(strconv.AppendInt(arr[:0], int64(n), 10))
}

// UnmarshalRow reads a row number given as an Int.
func UnmarshalRow(v any) (int64, error) {
	n, err := graphql.UnmarshalInt64(v)
	if err != nil || n <= 0 {
		return 0, apperr.Invalid("", "must be a positive integer")
	}
	return n, nil
}
