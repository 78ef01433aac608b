package items

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/users"
)

// Pages reads owners' pages of items for every request of the process. A nested read (users, each
// with their first items) asks for the same shape again and again: no filter, no cursor, one of
// six orders, forward or backward, all columns or Brief. That shape runs as a prepared
// statement, one per order, direction and column list (at most 24), with the owners and the page
// size as parameters; PostgreSQL parses and plans it once per connection. Any other query is built as PagesByOwner builds it.
type Pages struct {
	db *bun.DB
	// Prepared statements, their sizes in the text (see database.Statements): ByOwner's and
	// UsersWithItems', each with a budget of its own.
	byOwner, withUsers *database.Statements
	// Nested reads of the same statement and sizes at the same moment (the first page of a
	// front page, mostly) share its rows (see package coalesce, PerKey).
	nested *coalesce.Group[nestedKey, nestedRows]
}

// nestedKey is one run of UsersWithItems' statement: the statement (its columns, orders and,
// unless given here, its sizes) and its sizes when they are parameters.
type nestedKey struct {
	stmt                   *database.Prepared
	usersLimit, itemsLimit int // 0: written in the statement
	usersBrief, itemsBrief bool
	// Sizes of the result, for its slices (the same for the same statement).
	users, items int
}

// nestedRows are what a run of it read: the users, and their items in order. Shared by the
// requests of the run: read only.
type nestedRows struct {
	users []*users.User
	items []*Item
}

// maxStatements bounds the texts Pages prepares with their sizes written in (each size of each
// order and column list is its own); past it, a new size runs the statement with the sizes as
// parameters, which PostgreSQL plans on every run.
const maxStatements = 64

// NewPages returns the page reader of db; opts configure the coalescing of nested reads (its
// Timeout, Observe; it is PerKey, named users_with_items).
func NewPages(db *bun.DB, opts coalesce.Options) *Pages {
	return NewPagesBounded(db, maxStatements, opts)
}

// NewPagesBounded is NewPages preparing at most n texts with their sizes written in for each of
// its two statements (0: every page runs with its sizes as parameters).
func NewPagesBounded(db *bun.DB, n int, opts coalesce.Options) *Pages {
	p := &Pages{db: db, byOwner: database.NewStatements(db, n), withUsers: database.NewStatements(db, n)}
	opts.PerKey, opts.Name = true, "users_with_items"
	p.nested = coalesce.New(func(ctx context.Context, keys []nestedKey) (map[nestedKey]nestedRows, error) {
		out := make(map[nestedKey]nestedRows, len(keys))
		for _, k := range keys {
			rows, err := readNested(ctx, k)
			if err != nil {
				return nil, err
			}
			out[k] = rows
		}
		return out, nil
	}, opts)
	return p
}

// The columns of an item, as Item scans them; and those of a Brief query.
const (
	itemColumns  = "i.id, i.owner_id, i.title, i.description, i.created_at, i.updated_at"
	briefColumns = "i.id, i.owner_id, i.title"
)

// ByOwner returns each owner's page of the items q matches, as PagesByOwner does, in one
// statement.
func (p *Pages) ByOwner(ctx context.Context, owners []int64, q Query,
	count func(ctx context.Context, owner int64) (int, error),
) (map[int64]*Connection, error) {
	if !q.Usual() || len(owners) == 0 {
		return PagesByOwner(ctx, p.db, owners, q, count)
	}
	rows := make([]*Item, 0, len(owners)*(q.page.Size+1))
	// The statement PagesByOwner builds for this shape (a lateral join: each owner's page is an
	// index range scan), the owners a parameter.
	text := func(limit string) string {
		order := q.page.OrderBy(q.sort(), "i.id")
		return "SELECT " + q.columns() + " FROM unnest($1::bigint[]) AS o(owner_id) " +
			"CROSS JOIN LATERAL (SELECT " + q.columns() + " FROM items AS i WHERE i.owner_id = o.owner_id " +
			"ORDER BY " + order + " LIMIT " + limit + ") AS i ORDER BY o.owner_id, " + order
	}
	owned := database.Int64Array(owners)
	var err error
	if s := p.byOwner.Get(text(strconv.Itoa(q.page.Size+1)), false); s != nil {
		err = s.Scan(ctx, &rows, owned)
	} else {
		err = p.byOwner.Get(text("$2"), true).Scan(ctx, &rows, owned, q.page.Size+1)
	}
	if err != nil {
		return nil, fmt.Errorf("items pages by owner: %w", err)
	}
	return q.connections(owners, rows, count), nil
}

// Waiting returns how many nested reads wait for a run of their statement that has not started.
func (p *Pages) Waiting() int { return p.nested.Waiting() }

// Usual reports whether q has no filter and no cursor: the shape ByOwner and UsersWithItems
// run prepared.
func (q Query) Usual() bool { return q.filter == (Filter{}) && q.page.Cursor == nil }

// UsersWithItems reads a Usual page of users and the Usual page q of each one's items in one
// prepared statement, where a nested read (users, each with their first items) took two. It
// answers what users.Lookups.Page and ByOwner answer; count gives each items connection's
// totalCount. Both queries must be Usual.
func (p *Pages) UsersWithItems(ctx context.Context, uq users.PageQuery, q Query,
	count func(ctx context.Context, owner int64) (int, error),
) (*users.Connection, map[int64]*Connection, error) {
	if !uq.Usual() || !q.Usual() {
		return nil, nil, fmt.Errorf("users with items: not the usual shape")
	}
	// The users page, and for each user the statement ByOwner runs (a lateral join), the users
	// repeated on their items' rows; a user without items comes once, with nulls.
	text := func(usersLimit, limit string) string {
		order := q.page.OrderBy(q.sort(), "i.id")
		// The items' owner_id is the user's id: not read twice.
		return "SELECT " + uq.Columns() + ", " + strings.Replace(q.columns(), "i.owner_id, ", "", 1) +
			" FROM (SELECT " + uq.Columns() + " FROM users AS u ORDER BY " + uq.OrderBy() + " LIMIT " + usersLimit + ") AS u" +
			" LEFT JOIN LATERAL (SELECT " + q.columns() + " FROM items AS i WHERE i.owner_id = u.id" +
			" ORDER BY " + order + " LIMIT " + limit + ") AS i ON true ORDER BY " + uq.OrderBy() + ", " + order
	}
	key := nestedKey{usersBrief: uq.Brief(), itemsBrief: q.brief, users: uq.Limit(), items: uq.Limit() * (q.page.Size + 1)}
	if key.stmt = p.withUsers.Get(text(strconv.Itoa(uq.Limit()), strconv.Itoa(q.page.Size+1)), false); key.stmt == nil {
		key.stmt = p.withUsers.Get(text("$1", "$2"), true)
		key.usersLimit, key.itemsLimit = uq.Limit(), q.page.Size+1
	}
	read, _, err := p.nested.Get(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("users with items: %w", err)
	}
	list := slices.Clone(read.users) // the connection reverses a backward page in place
	owners := make([]int64, len(list))
	for i, u := range list {
		owners[i] = u.ID
	}
	return uq.Connection(p.db, list), q.connections(owners, read.items, count), nil
}

// readNested runs UsersWithItems' statement.
func readNested(ctx context.Context, k nestedKey) (nestedRows, error) {
	var (
		list  = make([]*users.User, 0, k.users)
		rows  = make([]*Item, 0, k.items)
		us    = make([]users.User, 0, k.users) // the users and items in one allocation each
		its   = make([]Item, 0, k.items)
		uid   any // the driver's int64: no conversion (sql.NullInt64 and *int64 convert by reflection)
		name  sql.RawBytes
		email sql.RawBytes // read into strings once per user, not once per row
		times [2]time.Time
		id    any // nil for a user without items
		title sql.NullString
		desc  sql.NullString
		itime [2]sql.NullTime
	)
	dest := []any{&uid, &name}
	if !k.usersBrief {
		dest = append(dest, &email, &times[0], &times[1])
	}
	dest = append(dest, &id, &title)
	if !k.itemsBrief {
		dest = append(dest, &desc, &itime[0], &itime[1])
	}
	read := func(r *sql.Rows) error {
		for r.Next() {
			if err := r.Scan(dest...); err != nil {
				return err
			}
			u, ok := uid.(int64)
			if !ok {
				return fmt.Errorf("users with items: user id %T", uid)
			}
			if len(list) == 0 || list[len(list)-1].ID != u {
				if len(us) == cap(us) {
					us = make([]users.User, 0, k.users)
				}
				us = append(us, users.User{ID: u, Username: string(name), Email: string(email), CreatedAt: times[0], UpdatedAt: times[1], Brief: k.usersBrief})
				list = append(list, &us[len(us)-1])
			}
			if id == nil { // a user without items
				continue
			}
			iid, ok := id.(int64)
			if !ok {
				return fmt.Errorf("users with items: item id %T", id)
			}
			if len(its) == cap(its) {
				its = make([]Item, 0, k.items)
			}
			// The owner is the user of the row: read in the same statement, as WithOwner reads it.
			its = append(its, Item{ID: iid, OwnerID: u, Title: title.String, Owner: list[len(list)-1]})
			it := &its[len(its)-1]
			if !k.itemsBrief {
				if desc.Valid {
					d := desc.String
					it.Description = &d
				}
				it.CreatedAt, it.UpdatedAt = itime[0].Time, itime[1].Time
			}
			rows = append(rows, it)
		}
		return nil
	}
	var err error
	if k.usersLimit > 0 {
		err = k.stmt.Rows(ctx, read, k.usersLimit, k.itemsLimit)
	} else {
		err = k.stmt.Rows(ctx, read)
	}
	return nestedRows{users: list, items: rows}, err
}
