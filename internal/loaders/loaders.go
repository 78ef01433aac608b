// Package loaders batches the lookups of one GraphQL operation: every Item.owner of a response
// becomes one users query, every User.items one lateral-join query, whatever the page size. A
// fresh set is made per operation (HTTP request or websocket subscription), so nothing is cached
// across operations.
package loaders

import (
	"context"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/vikstrous/dataloadgen"

	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// wait is how long a loader collects keys before it queries. Sibling resolvers run concurrently
// and ask within microseconds of each other, so a short wait batches them without adding latency.
const wait = time.Millisecond

// Loaders are one operation's batch loaders.
type Loaders struct {
	userByID   *dataloadgen.Loader[int64, *users.User]
	ownerItems *dataloadgen.Loader[ownerKey, *items.Connection]
	ownerCount *dataloadgen.Loader[ownerKey, int]

	mu      sync.Mutex
	queries map[string]items.Query // by Query.Key
}

type ownerKey struct {
	owner int64
	query string // items.Query.Key
}

// New returns the loaders of one operation.
func New(db bun.IDB) *Loaders {
	l := &Loaders{queries: make(map[string]items.Query)}
	l.userByID = dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*users.User, error) {
		return users.FindMany(ctx, db, ids)
	}, dataloadgen.WithWait(wait))
	l.ownerItems = dataloadgen.NewMappedLoader(func(ctx context.Context, keys []ownerKey) (map[ownerKey]*items.Connection, error) {
		out := make(map[ownerKey]*items.Connection, len(keys))
		for key, owners := range l.group(keys) {
			conns, err := items.PagesByOwner(ctx, db, owners, l.query(key), func(ctx context.Context, owner int64) (int, error) {
				return l.ownerCount.Load(ctx, ownerKey{owner, key})
			})
			if err != nil {
				return nil, err
			}
			for owner, conn := range conns {
				out[ownerKey{owner, key}] = conn
			}
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
	l.ownerCount = dataloadgen.NewMappedLoader(func(ctx context.Context, keys []ownerKey) (map[ownerKey]int, error) {
		out := make(map[ownerKey]int, len(keys))
		for key, owners := range l.group(keys) {
			counts, err := items.CountByOwner(ctx, db, owners, l.query(key))
			if err != nil {
				return nil, err
			}
			for _, owner := range owners {
				out[ownerKey{owner, key}] = counts[owner] // absent: no items, 0
			}
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
	return l
}

// group splits keys by query: one statement per distinct query.
func (l *Loaders) group(keys []ownerKey) map[string][]int64 {
	groups := make(map[string][]int64)
	for _, k := range keys {
		groups[k.query] = append(groups[k.query], k.owner)
	}
	return groups
}

func (l *Loaders) query(key string) items.Query {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queries[key]
}

// User loads a user by id, batched with the operation's other user loads.
func (l *Loaders) User(ctx context.Context, id int64) (*users.User, error) {
	return l.userByID.Load(ctx, id)
}

// OwnerItems loads owner's page of the items the filter matches, batched with the operation's
// other owners for the same arguments.
func (l *Loaders) OwnerItems(ctx context.Context, owner int64, args paging.Args, filter *items.Filter, order *items.Order) (*items.Connection, error) {
	q, err := items.NewQuery(args, filter, order)
	if err != nil {
		return nil, err
	}
	key := q.Key()
	l.mu.Lock()
	l.queries[key] = q
	l.mu.Unlock()
	return l.ownerItems.Load(ctx, ownerKey{owner, key})
}

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the operation's loaders. It panics when none were installed: that is a wiring bug.
func From(ctx context.Context) *Loaders {
	return ctx.Value(ctxKey{}).(*Loaders)
}
