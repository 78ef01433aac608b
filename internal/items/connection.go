package items

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/paging"
)

// Connection is a page of items (Relay ItemConnection).
type Connection struct {
	Edges    []*Edge         `json:"edges"`
	PageInfo paging.PageInfo `json:"pageInfo"`
	count    func(context.Context) (int, error)
}

// TotalCount counts every item the connection's filter matches; it runs only when asked for.
func (c *Connection) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// Edge is one item in a Connection.
type Edge struct {
	Node  *Item `json:"node"`
	order OrderField
}

// Cursor is the edge's opaque position in its list, made when a client asks for it.
func (e *Edge) Cursor() string { return e.Node.cursor(e.order).Encode() }

// Filter narrows an items connection; every condition given must hold.
type Filter struct {
	OwnerID       *gqlscalar.UserID `json:"ownerId"` // the owner's global id or row number
	TitleContains *string           `json:"titleContains"`
	CreatedAfter  *time.Time        `json:"createdAfter"`
	CreatedBefore *time.Time        `json:"createdBefore"`
}

// Order is the sort order of an items connection.
type Order struct {
	Field     OrderField       `json:"field"`
	Direction paging.Direction `json:"direction"`
}

// OrderField is the GraphQL enum ItemOrderField.
type OrderField string

// The fields items can be sorted by.
const (
	OrderByID        OrderField = "ID"
	OrderByTitle     OrderField = "TITLE"
	OrderByCreatedAt OrderField = "CREATED_AT"
)

var sorts = map[OrderField]paging.Sort{
	OrderByID:        {},
	OrderByTitle:     {Column: "i.title", Cast: "text"},
	OrderByCreatedAt: {Column: "i.created_at", Cast: "timestamptz"},
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (f *OrderField) UnmarshalGQL(v any) (err error) {
	*f, err = paging.ParseField(v, sorts, "must be ID, TITLE or CREATED_AT")
	return err
}

// MarshalGQL implements graphql.Marshaler.
func (f OrderField) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(f))) }

func (it *Item) cursor(f OrderField) paging.Cursor {
	c := paging.Cursor{List: "item", Field: string(f), ID: it.ID}
	switch f {
	case OrderByTitle:
		c.Value = it.Title
	case OrderByCreatedAt:
		c.Value = it.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	return c
}

// Query is a checked request for a page of items: paging, filter and order.
type Query struct {
	page   paging.Page
	filter Filter
	order  Order
	brief  bool // only the columns Brief keeps
}

// Brief returns q reading only an item's id, owner and title, and whatever its order needs: a
// caller that knows no other field is wanted saves PostgreSQL sending and the server parsing the
// rest (two timestamps and the description, of six columns).
func (q Query) Brief() Query {
	q.brief = q.order.Field != OrderByCreatedAt
	return q
}

// columns lists what the query reads of an item.
func (q Query) columns() string {
	if q.brief {
		return briefColumns
	}
	return itemColumns
}

// NewQuery checks a connection's arguments.
func NewQuery(args paging.Args, filter *Filter, order *Order) (Query, error) {
	q := Query{order: Order{Field: OrderByID, Direction: paging.Asc}}
	if order != nil {
		q.order = *order
	}
	if filter != nil {
		q.filter = *filter
	}
	if q.filter.TitleContains != nil {
		if err := apperr.CheckText("titleContains", *q.filter.TitleContains, MaxTitleLength); err != nil {
			return Query{}, err
		}
	}
	var err error
	q.page, err = paging.Parse(args, "item", string(q.order.Field), q.sort())
	return q, err
}

// Key identifies the query, so equal queries for different owners can share one statement.
func (q Query) Key() string {
	if q.Usual() { // the nested page's shape, keyed for each of its users: cheaply
		return "usual " + strconv.Itoa(q.page.Size) + " " + strconv.FormatBool(q.page.Backward) + " " +
			string(q.order.Field) + " " + string(q.order.Direction) + " " + strconv.FormatBool(q.brief)
	}
	b, _ := json.Marshal(struct {
		P paging.Page
		F Filter
		O Order
		B bool
	}{q.page, q.filter, q.order, q.brief})
	return string(b)
}

func (q Query) where(sq *bun.SelectQuery) *bun.SelectQuery {
	f := q.filter
	if f.OwnerID != nil {
		sq = sq.Where("i.owner_id = ?", *f.OwnerID)
	}
	if f.TitleContains != nil {
		sq = sq.Where("i.title ILIKE ? ESCAPE '\\'", "%"+database.EscapeLike(strings.TrimSpace(*f.TitleContains))+"%")
	}
	if f.CreatedAfter != nil {
		sq = sq.Where("i.created_at >= ?", database.CeilMicro(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		sq = sq.Where("i.created_at < ?", database.CeilMicro(*f.CreatedBefore))
	}
	return sq
}

func (q Query) sort() paging.Sort {
	s := sorts[q.order.Field]
	s.Desc = q.order.Direction == paging.Desc
	return s
}

func (q Query) connection(rows []*Item) *Connection {
	slab := make([]Edge, min(len(rows), q.page.Size)) // the page's edges in one allocation
	edges, info := paging.Finish(q.page, rows, func(it *Item) paging.Cursor { return it.cursor(q.order.Field) },
		func(it *Item) *Edge {
			e := &slab[0]
			slab = slab[1:]
			*e = Edge{Node: it, order: q.order.Field}
			return e
		})
	return &Connection{Edges: edges, PageInfo: info}
}

// Page returns one page of the items the filter matches, in the given order.
func Page(ctx context.Context, db bun.IDB, args paging.Args, filter *Filter, order *Order, opts ...ReadOption) (*Connection, error) {
	q, err := NewQuery(args, filter, order)
	if err != nil {
		return nil, err
	}
	rows := make([]*Item, 0, q.page.Size+1)
	sq := q.page.Apply(applyOptions(db.NewSelect().Model(&rows), opts).Apply(q.where), q.sort(), "i.id")
	if err := sq.Scan(ctx); err != nil {
		return nil, fmt.Errorf("items page: %w", err)
	}
	conn := q.connection(rows)
	conn.count = func(ctx context.Context) (int, error) {
		n, err := db.NewSelect().Model((*Item)(nil)).Apply(q.where).Count(ctx)
		if err != nil {
			return 0, fmt.Errorf("count items: %w", err)
		}
		return n, nil
	}
	return conn, nil
}

// PagesByOwner returns each owner's page of the items q matches, all in one statement (a
// lateral join, so each owner's page is an index range scan). count gives each connection's
// totalCount.
func PagesByOwner(ctx context.Context, db bun.IDB, owners []int64, q Query,
	count func(ctx context.Context, owner int64) (int, error),
) (map[int64]*Connection, error) {
	var rows []*Item
	if len(owners) > 0 {
		s := q.sort()
		sub := db.NewSelect().Model((*Item)(nil)).
			ColumnExpr(q.columns()).ColumnExpr("row_number() OVER (ORDER BY " + q.page.OrderBy(s, "i.id") + ") AS rn").
			Where("i.owner_id = o.owner_id").Apply(q.where)
		sub = q.page.Apply(sub, s, "i.id")
		err := db.NewSelect().
			TableExpr("unnest(?::bigint[]) AS o(owner_id)", pgdialect.Array(owners)).
			Join("CROSS JOIN LATERAL (?) AS i", sub).
			ColumnExpr("i.*").
			OrderExpr("o.owner_id, i.rn").
			Scan(ctx, &rows)
		if err != nil {
			return nil, fmt.Errorf("items pages by owner: %w", err)
		}
	}
	return q.connections(owners, rows, count), nil
}

// connections splits rows (ordered by owner, then as each page lists them) into each owner's
// connection.
func (q Query) connections(owners []int64, rows []*Item, count func(ctx context.Context, owner int64) (int, error)) map[int64]*Connection {
	byOwner := make(map[int64][]*Item, len(owners))
	for _, it := range rows {
		byOwner[it.OwnerID] = append(byOwner[it.OwnerID], it)
	}
	conns := make(map[int64]*Connection, len(owners))
	for _, owner := range owners {
		conn := q.connection(byOwner[owner])
		conn.count = func(ctx context.Context) (int, error) { return count(ctx, owner) }
		conns[owner] = conn
	}
	return conns
}

// CountByOwner counts, for each owner, the items q's filter matches, in one statement.
func CountByOwner(ctx context.Context, db bun.IDB, owners []int64, q Query) (map[int64]int, error) {
	var rows []struct {
		OwnerID int64 `bun:"owner_id"`
		N       int   `bun:"n"`
	}
	err := db.NewSelect().Model((*Item)(nil)).
		ColumnExpr("i.owner_id, count(*) AS n").
		Where("i.owner_id = ANY(?::bigint[])", pgdialect.Array(owners)).
		Apply(q.where).
		GroupExpr("i.owner_id").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("count items by owner: %w", err)
	}
	counts := make(map[int64]int, len(owners))
	for _, r := range rows {
		counts[r.OwnerID] = r.N
	}
	return counts, nil
}
