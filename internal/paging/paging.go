// Package paging implements Relay-style cursor connections with keyset pagination: a page after
// (or before) a cursor is a WHERE (sort_key, id) > (...) on an index, so page 10,000 costs what
// page 1 costs. Cursors are opaque to clients and only valid for the list and sort field they came
// from.
package paging

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// Page sizes.
const (
	DefaultSize = 10
	MaxSize     = 100
)

// Args are a connection field's paging arguments.
type Args struct {
	First  *int
	After  *string
	Last   *int
	Before *string
}

// PageInfo is the Relay PageInfo. Its cursors are encoded when a client asks for them (most
// selections of nested pages never do).
type PageInfo struct {
	HasNextPage     bool `json:"hasNextPage"`
	HasPreviousPage bool `json:"hasPreviousPage"`
	start, end      Cursor
	empty           bool // no rows: no cursors
}

// StartCursor is the cursor of the page's first row, nil for an empty page.
func (p PageInfo) StartCursor() *string { return p.encode(p.start) }

// EndCursor is the cursor of the page's last row, nil for an empty page.
func (p PageInfo) EndCursor() *string { return p.encode(p.end) }

func (p PageInfo) encode(c Cursor) *string {
	if p.empty {
		return nil
	}
	s := c.Encode()
	return &s
}

// Cursor is a position in a list: the sort key's value (empty when sorting by id) and the id.
type Cursor struct {
	List  string `json:"l"`
	Field string `json:"f"`
	Value string `json:"v,omitempty"`
	ID    int64  `json:"i"`
}

// Encode makes the opaque string clients see.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Page is a validated request for one page of a list sorted by one field.
type Page struct {
	Size     int
	Backward bool    // last/before: the page ends at the cursor
	Cursor   *Cursor // nil: from the start (or the end, backward)
}

// Parse validates args for a list (e.g. "user") sorted by field (with sort s), and decodes the
// cursor.
func Parse(args Args, list, field string, s Sort) (Page, error) {
	if args.First != nil && args.Last != nil {
		return Page{}, apperr.Invalid("last", "cannot be combined with first")
	}
	if args.After != nil && args.Before != nil {
		return Page{}, apperr.Invalid("before", "cannot be combined with after")
	}
	p := Page{Size: DefaultSize}
	switch {
	case args.First != nil:
		p.Size = *args.First
		if p.Size < 0 || p.Size > MaxSize {
			return Page{}, apperr.Invalid("first", fmt.Sprintf("must be between 0 and %d", MaxSize))
		}
	case args.Last != nil:
		p.Size = *args.Last
		p.Backward = true
		if p.Size < 0 || p.Size > MaxSize {
			return Page{}, apperr.Invalid("last", fmt.Sprintf("must be between 0 and %d", MaxSize))
		}
	case args.Before != nil:
		p.Backward = true // `before` alone pages backward from the cursor
	}
	raw, name := args.After, "after"
	if args.Before != nil {
		raw, name = args.Before, "before"
	}
	if raw != nil {
		if (name == "after") == p.Backward {
			return Page{}, apperr.Invalid(name, "after goes with first, before with last")
		}
		c, err := decode(*raw, list, field, s)
		if err != nil {
			return Page{}, apperr.Invalid(name, err.Error())
		}
		p.Cursor = &c
	}
	return p, nil
}

func decode(raw, list, field string, s Sort) (Cursor, error) {
	var c Cursor
	invalid := fmt.Errorf("is not a valid cursor")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) > 2048 || json.Unmarshal(b, &c) != nil || c.ID <= 0 {
		return Cursor{}, invalid
	}
	if c.List != list || c.Field != field {
		return Cursor{}, fmt.Errorf("is a cursor of another list or order")
	}
	// A cursor is opaque but not trusted: its value must be one PostgreSQL reads as the column's type.
	switch s.Cast {
	case "":
		if c.Value != "" {
			return Cursor{}, invalid
		}
	case "timestamptz":
		t, err := time.Parse(time.RFC3339Nano, c.Value)
		if err != nil || t.Year() < 1 || t.Year() > 9999 {
			return Cursor{}, invalid
		}
	default:
		if !utf8.ValidString(c.Value) || strings.IndexByte(c.Value, 0) >= 0 || len(c.Value) > 1024 {
			return Cursor{}, invalid
		}
	}
	return c, nil
}

// Sort says how a list is ordered: by Column (an SQL expression, "" for id alone) then id, in
// one direction. Cast is the SQL type the cursor's value is read as.
type Sort struct {
	Column string
	Cast   string
	Desc   bool
}

// Apply adds the keyset condition, the order and the limit (one extra row, to learn whether
// there is more) for p to q. idColumn is the table's id, qualified as q needs it.
func (p Page) Apply(q *bun.SelectQuery, s Sort, idColumn string) *bun.SelectQuery {
	op := ">"
	if s.Desc != p.Backward {
		op = "<"
	}
	if p.Cursor != nil {
		if s.Column == "" {
			q = q.Where(idColumn+" "+op+" ?", p.Cursor.ID)
		} else {
			q = q.Where("("+s.Column+", "+idColumn+") "+op+" (?::"+s.Cast+", ?)", p.Cursor.Value, p.Cursor.ID)
		}
	}
	return q.OrderExpr(p.OrderBy(s, idColumn)).Limit(p.Size + 1)
}

// OrderBy is the ORDER BY list in which Apply scans the rows.
func (p Page) OrderBy(s Sort, idColumn string) string {
	dir := " ASC"
	if s.Desc != p.Backward {
		dir = " DESC"
	}
	if s.Column == "" {
		return idColumn + dir
	}
	return s.Column + dir + ", " + idColumn + dir
}

// Finish turns the rows a query built by Apply returned into the page's edges, in list order,
// and its PageInfo. cursor gives a node's cursor; edge makes an edge of a node (an edge encodes
// its cursor only when asked for it: most selections never do).
func Finish[T, E any](p Page, rows []T, cursor func(T) Cursor, edge func(node T) E) ([]E, PageInfo) {
	more := len(rows) > p.Size
	if more {
		rows = rows[:p.Size]
	}
	if p.Backward {
		slices.Reverse(rows)
	}
	// Relay: the flag for the side the client is not paging towards may be false, as
	// graphql-relay-js has it; true would need a second query to be right every time.
	info := PageInfo{HasNextPage: more, empty: len(rows) == 0}
	if p.Backward {
		info = PageInfo{HasPreviousPage: more, empty: len(rows) == 0}
	}
	edges := make([]E, len(rows))
	for i, node := range rows {
		edges[i] = edge(node)
	}
	if len(rows) > 0 {
		info.start, info.end = cursor(rows[0]), cursor(rows[len(rows)-1])
	}
	return edges, info
}

// ParseField reads a GraphQL order-field enum value: one of the keys of allowed, or
// BAD_USER_INPUT with message.
func ParseField[F ~string](v any, allowed map[F]Sort, message string) (F, error) {
	s, _ := v.(string)
	if _, ok := allowed[F(s)]; !ok {
		return "", apperr.Invalid("field", message)
	}
	return F(s), nil
}

// Direction is the GraphQL enum OrderDirection.
type Direction string

// Directions.
const (
	Asc  Direction = "ASC"
	Desc Direction = "DESC"
)

// UnmarshalGQL implements graphql.Unmarshaler.
func (d *Direction) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	if s != string(Asc) && s != string(Desc) {
		return apperr.Invalid("direction", "must be ASC or DESC")
	}
	*d = Direction(s)
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (d Direction) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(d))) }
