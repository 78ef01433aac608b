package items

import (
	"context"
	"fmt"
	"sync"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/database"
)

// Pages reads owners' pages of items for every request of the process. A nested read (users, each
// with their first items) asks for the same shape again and again: no filter, no cursor, one of
// six orders, forward or backward, all columns or Brief. That shape runs as a prepared
// statement, one per order, direction and column list (at most 24), with the owners and the page
// size as parameters; PostgreSQL parses and plans it once per connection. Any other query is built as PagesByOwner builds it.
type Pages struct {
	db    *bun.DB
	mu    sync.Mutex
	stmts map[string]*database.Prepared // by ORDER BY and columns
}

// NewPages returns the page reader of db.
func NewPages(db *bun.DB) *Pages { return &Pages{db: db, stmts: make(map[string]*database.Prepared)} }

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
	if q.filter != (Filter{}) || q.page.Cursor != nil || len(owners) == 0 {
		return PagesByOwner(ctx, p.db, owners, q, count)
	}
	rows := make([]*Item, 0, len(owners)*(q.page.Size+1))
	if err := p.stmt(q.page.OrderBy(q.sort(), "i.id"), q.columns()).Scan(ctx, &rows, database.Int64Array(owners), q.page.Size+1); err != nil {
		return nil, fmt.Errorf("items pages by owner: %w", err)
	}
	return q.connections(owners, rows, count), nil
}

func (p *Pages) stmt(order, columns string) *database.Prepared {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stmts[order+columns]
	if s == nil {
		// The statement PagesByOwner builds for this shape (a lateral join: each owner's page is
		// an index range scan), with parameters in place of the owners and the limit.
		s = database.Prepare(p.db, "SELECT "+columns+" FROM unnest($1::bigint[]) AS o(owner_id) "+
			"CROSS JOIN LATERAL (SELECT "+columns+", row_number() OVER (ORDER BY "+order+") AS rn "+
			"FROM items AS i WHERE i.owner_id = o.owner_id ORDER BY "+order+" LIMIT $2) AS i "+
			"ORDER BY o.owner_id, i.rn")
		p.stmts[order+columns] = s
	}
	return s
}
