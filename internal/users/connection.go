package users

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/paging"
)

// Connection is a page of users (Relay UserConnection).
type Connection struct {
	Edges    []*Edge         `json:"edges"`
	PageInfo paging.PageInfo `json:"pageInfo"`
	count    func(context.Context) (int, error)
}

// TotalCount counts every user the filter matches; it runs only when a client asks for it.
func (c *Connection) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// Edge is one user in a Connection.
type Edge struct {
	Node  *User `json:"node"`
	order OrderField
}

// Cursor is the edge's opaque position in its list, made when a client asks for it.
func (e *Edge) Cursor() string { return e.Node.cursor(e.order).Encode() }

// Filter narrows a users connection; every condition given must hold.
type Filter struct {
	UsernamePrefix *string    `json:"usernamePrefix"`
	EmailDomain    *string    `json:"emailDomain"`
	CreatedAfter   *time.Time `json:"createdAfter"`
	CreatedBefore  *time.Time `json:"createdBefore"`
}

// Order is the sort order of a users connection.
type Order struct {
	Field     OrderField       `json:"field"`
	Direction paging.Direction `json:"direction"`
}

// OrderField is the GraphQL enum UserOrderField.
type OrderField string

// The fields users can be sorted by.
const (
	OrderByID        OrderField = "ID"
	OrderByUsername  OrderField = "USERNAME"
	OrderByCreatedAt OrderField = "CREATED_AT"
)

// sorts maps each order field to its column and the SQL type of its cursor value.
var sorts = map[OrderField]paging.Sort{
	OrderByID:        {},
	OrderByUsername:  {Column: "u.username", Cast: "text"},
	OrderByCreatedAt: {Column: "u.created_at", Cast: "timestamptz"},
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (f *OrderField) UnmarshalGQL(v any) (err error) {
	*f, err = paging.ParseField(v, sorts, "must be ID, USERNAME or CREATED_AT")
	return err
}

// MarshalGQL implements graphql.Marshaler.
func (f OrderField) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(f))) }

// CursorOf returns the cursor a users connection ordered by f gives u.
func CursorOf(u *User, f OrderField) string { return u.cursor(f).Encode() }

func (u *User) cursor(f OrderField) paging.Cursor {
	c := paging.Cursor{List: "user", Field: string(f), ID: u.ID}
	switch f {
	case OrderByUsername:
		c.Value = u.Username
	case OrderByCreatedAt:
		c.Value = u.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	return c
}

// Page returns one page of the users the filter matches, in the given order.
func Page(ctx context.Context, db bun.IDB, args paging.Args, filter *Filter, order *Order) (*Connection, error) {
	q, err := NewPageQuery(args, filter, order, false)
	if err != nil {
		return nil, err
	}
	return q.read(ctx, db, nil)
}

// Page returns the page q asks for, as the function Page does (q's columns only: a brief query's
// users have no email and no timestamps). A Usual page runs as a prepared statement, one per
// order, direction and column list, with the page size as its parameter.
func (l *Lookups) Page(ctx context.Context, q PageQuery) (*Connection, error) {
	return q.read(ctx, l.db, l.pageStatement)
}

// pageStatement returns the prepared statement of a Usual page in this ORDER BY, of these columns,
// and its arguments.
func (l *Lookups) pageStatement(orderBy, columns string, limit int) (*database.Prepared, []any) {
	text := "SELECT " + columns + " FROM users AS u ORDER BY " + orderBy + " LIMIT "
	if s := l.pageStmts.Get(text+strconv.Itoa(limit), false); s != nil {
		return s, nil
	}
	return l.pageStmts.Get(text+"$1", true), []any{limit}
}

// PageQuery is a checked request for a page of users: paging, filter, order and columns.
type PageQuery struct {
	page    paging.Page
	sort    paging.Sort
	order   Order
	usual   bool // no filter, no cursor
	where   func(*bun.SelectQuery) *bun.SelectQuery
	columns string
}

// NewPageQuery checks a connection's arguments; brief when no field but the id and the username
// is wanted of the users (the other columns are not read).
func NewPageQuery(args paging.Args, filter *Filter, order *Order, brief bool) (PageQuery, error) {
	q := PageQuery{order: Order{Field: OrderByID, Direction: paging.Asc}, columns: userColumns}
	if order != nil {
		q.order = *order
	}
	q.sort = sorts[q.order.Field]
	q.sort.Desc = q.order.Direction == paging.Desc
	var err error
	if q.page, err = paging.Parse(args, "user", string(q.order.Field), q.sort); err != nil {
		return PageQuery{}, err
	}
	if q.where, err = filter.conditions(); err != nil {
		return PageQuery{}, err
	}
	q.usual = (filter == nil || *filter == Filter{}) && q.page.Cursor == nil
	if brief && q.order.Field != OrderByCreatedAt { // the cursor of that order needs created_at
		q.columns = briefColumns
	}
	return q, nil
}

// Usual reports whether the page has no filter and no cursor: the shape that runs prepared,
// whose only parameter is Limit.
func (q PageQuery) Usual() bool { return q.usual }

// OrderBy is the page's ORDER BY list, of users aliased u.
func (q PageQuery) OrderBy() string { return q.page.OrderBy(q.sort, "u.id") }

// Columns is the page's SELECT list, of users aliased u.
func (q PageQuery) Columns() string { return q.columns }

// Brief reports whether the page reads only id and username.
func (q PageQuery) Brief() bool { return q.columns == briefColumns }

// Limit is how many rows a Usual page reads: one more than it shows, to learn whether there are
// more.
func (q PageQuery) Limit() int { return q.page.Size + 1 }

// Connection makes the page of the rows its statement read, in their order; db counts the
// filter's users when a client asks for totalCount.
func (q PageQuery) Connection(db bun.IDB, rows []*User) *Connection {
	slab := make([]Edge, min(len(rows), q.page.Size)) // the page's edges in one allocation
	edges, info := paging.Finish(q.page, rows, func(u *User) paging.Cursor { return u.cursor(q.order.Field) },
		func(u *User) *Edge {
			e := &slab[0]
			slab = slab[1:]
			*e = Edge{Node: u, order: q.order.Field}
			return e
		})
	conn := &Connection{Edges: edges, PageInfo: info}
	conn.count = func(ctx context.Context) (int, error) {
		n, err := db.NewSelect().Model((*User)(nil)).Apply(q.where).Count(ctx)
		if err != nil {
			return 0, fmt.Errorf("count users: %w", err)
		}
		return n, nil
	}
	return conn
}

// read reads the page; prepared, when not nil, gives the statement of an ORDER BY and columns for
// a Usual page.
func (q PageQuery) read(ctx context.Context, db bun.IDB, prepared func(orderBy, columns string, limit int) (*database.Prepared, []any)) (*Connection, error) {
	rows := make([]*User, 0, q.Limit())
	var err error
	if prepared != nil && q.usual {
		s, args := prepared(q.OrderBy(), q.columns, q.Limit())
		err = s.Scan(ctx, &rows, args...)
	} else {
		err = q.page.Apply(db.NewSelect().Model(&rows).ColumnExpr(q.columns).Apply(q.where), q.sort, "u.id").Scan(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("users page: %w", err)
	}
	if q.Brief() {
		for _, u := range rows {
			u.Brief = true
		}
	}
	return q.Connection(db, rows), nil
}

// conditions checks the filter and returns it as WHERE clauses.
func (f *Filter) conditions() (func(*bun.SelectQuery) *bun.SelectQuery, error) {
	if f == nil {
		return func(q *bun.SelectQuery) *bun.SelectQuery { return q }, nil
	}
	if f.UsernamePrefix != nil {
		if err := apperr.CheckText("usernamePrefix", *f.UsernamePrefix, 32); err != nil {
			return nil, err
		}
	}
	if f.EmailDomain != nil {
		if err := apperr.CheckText("emailDomain", *f.EmailDomain, MaxEmailLength); err != nil {
			return nil, err
		}
	}
	return func(q *bun.SelectQuery) *bun.SelectQuery {
		if f.UsernamePrefix != nil {
			q = q.Where("lower(u.username) LIKE ? ESCAPE '\\'", database.EscapeLike(strings.ToLower(strings.TrimSpace(*f.UsernamePrefix)))+"%")
		}
		if f.EmailDomain != nil {
			q = q.Where("lower(substring(u.email from '[^@]*$')) = ?", strings.ToLower(strings.TrimSpace(*f.EmailDomain)))
		}
		if f.CreatedAfter != nil {
			q = q.Where("u.created_at >= ?", database.CeilMicro(*f.CreatedAfter))
		}
		if f.CreatedBefore != nil {
			q = q.Where("u.created_at < ?", database.CeilMicro(*f.CreatedBefore))
		}
		return q
	}, nil
}
