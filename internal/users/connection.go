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
	return readPage(ctx, db, nil, args, filter, order, false)
}

// Page returns one page of the users the filter matches, in the given order, as the function
// Page does; brief when no field but the id and the username is wanted of them (the other
// columns are not read: the users have no email and no timestamps). The usual shape (no filter,
// no cursor) runs as a prepared statement, one per order, direction and column list, with the
// page size as its parameter.
func (l *Lookups) Page(ctx context.Context, args paging.Args, filter *Filter, order *Order, brief bool) (*Connection, error) {
	return readPage(ctx, l.db, l.pageStatement, args, filter, order, brief)
}

// pageStatement returns the prepared statement of the pages in this ORDER BY, of these columns.
func (l *Lookups) pageStatement(orderBy, columns string) *database.Prepared {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.pageStmts[orderBy+columns]
	if s == nil {
		s = database.Prepare(l.db, "SELECT "+columns+" FROM users AS u ORDER BY "+orderBy+" LIMIT $1")
		l.pageStmts[orderBy+columns] = s
	}
	return s
}

// readPage reads a page; prepared, when not nil, gives the statement of an ORDER BY for a page
// without filter or cursor.
func readPage(ctx context.Context, db bun.IDB, prepared func(orderBy, columns string) *database.Prepared,
	args paging.Args, filter *Filter, order *Order, brief bool,
) (*Connection, error) {
	if order == nil {
		order = &Order{Field: OrderByID, Direction: paging.Asc}
	}
	sort := sorts[order.Field]
	sort.Desc = order.Direction == paging.Desc
	page, err := paging.Parse(args, "user", string(order.Field), sort)
	if err != nil {
		return nil, err
	}
	where, err := filter.conditions()
	if err != nil {
		return nil, err
	}

	columns := userColumns
	if brief && order.Field != OrderByCreatedAt { // the cursor of that order needs created_at
		columns = briefColumns
	}
	rows := make([]*User, 0, page.Size+1)
	if prepared != nil && (filter == nil || *filter == Filter{}) && page.Cursor == nil {
		err = prepared(page.OrderBy(sort, "u.id"), columns).Scan(ctx, &rows, page.Size+1)
	} else {
		err = page.Apply(db.NewSelect().Model(&rows).ColumnExpr(columns).Apply(where), sort, "u.id").Scan(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("users page: %w", err)
	}
	edges, info := paging.Finish(page, rows, func(u *User) paging.Cursor { return u.cursor(order.Field) },
		func(u *User) *Edge { return &Edge{Node: u, order: order.Field} })
	conn := &Connection{Edges: edges, PageInfo: info}
	conn.count = func(ctx context.Context) (int, error) {
		n, err := db.NewSelect().Model((*User)(nil)).Apply(where).Count(ctx)
		if err != nil {
			return 0, fmt.Errorf("count users: %w", err)
		}
		return n, nil
	}
	return conn, nil
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
