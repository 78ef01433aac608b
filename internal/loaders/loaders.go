// Package loaders batches the lookups of one GraphQL operation: every Item.owner of a response
// becomes one users query, every User.items one lateral-join query, whatever the page size. A
// fresh set is made per response (a query's, a mutation's, or one subscription event's), so
// nothing is cached beyond it.
//
// Batching does not rely on timing alone. gqlgen resolves the elements of a list concurrently,
// and a loader that waits a moment for keys splits a batch whenever the scheduler is slower than
// the wait (as on a loaded 2-core machine). So the loaders remember which ids arrived together
// (the users of one page, the owners of one page of items) and, when one of them is asked for,
// load the whole group at once; its siblings then find their value already on its way.
package loaders

import (
	"context"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/vikstrous/dataloadgen"

	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// wait is how long a loader collects keys of different groups before it queries.
const wait = time.Millisecond

// Loaders are one operation's batch loaders.
type Loaders struct {
	userByID   *dataloadgen.Loader[int64, *users.User]
	ownerItems *dataloadgen.Loader[ownerKey, *items.Connection]
	ownerCount *dataloadgen.Loader[ownerKey, int]

	mu      sync.Mutex
	queries map[string]items.Query // by Query.Key
	users   groups                 // users listed together: their items load together
	owners  groups                 // owners of items listed together: they load together
}

type ownerKey struct {
	owner int64
	query string // items.Query.Key
}

// New returns the loaders of one operation.
func New(db bun.IDB) *Loaders {
	l := &Loaders{queries: make(map[string]items.Query), users: groups{}, owners: groups{}}
	l.userByID = dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*users.User, error) {
		found, err := users.FindMany(ctx, db, ids)
		if err != nil || len(found) == len(ids) {
			return found, err
		}
		// The owner of an item in a DELETED event may be gone too (a cascade): as it was.
		var gone []int64
		for _, id := range ids {
			if found[id] == nil {
				gone = append(gone, id)
			}
		}
		deleted, err := events.DeletedUsers(ctx, db, gone)
		for id, u := range deleted {
			found[id] = u
		}
		return found, err
	}, dataloadgen.WithWait(wait))
	l.ownerItems = dataloadgen.NewMappedLoader(func(ctx context.Context, keys []ownerKey) (map[ownerKey]*items.Connection, error) {
		out := make(map[ownerKey]*items.Connection, len(keys))
		for key, owners := range byQuery(keys) {
			conns, err := items.PagesByOwner(ctx, db, owners, l.query(key), func(ctx context.Context, owner int64) (int, error) {
				keys, at := l.ownerKeys(owner, key)
				return loadAt(ctx, l.ownerCount, keys, at)
			})
			if err != nil {
				return nil, err
			}
			var listed []*items.Item
			for owner, conn := range conns {
				out[ownerKey{owner, key}] = conn
				for _, e := range conn.Edges {
					listed = append(listed, e.Node)
				}
			}
			l.ObserveItems(listed)
		}
		return out, nil
	}, dataloadgen.WithWait(wait))
	l.ownerCount = dataloadgen.NewMappedLoader(func(ctx context.Context, keys []ownerKey) (map[ownerKey]int, error) {
		out := make(map[ownerKey]int, len(keys))
		for key, owners := range byQuery(keys) {
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

// byQuery splits keys by query: one statement per distinct query.
func byQuery(keys []ownerKey) map[string][]int64 {
	out := make(map[string][]int64)
	for _, k := range keys {
		out[k.query] = append(out[k.query], k.owner)
	}
	return out
}

func (l *Loaders) query(key string) items.Query {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queries[key]
}

// members returns the ids listed with id (at least id itself) and id's index among them.
func (l *Loaders) members(g groups, id int64) ([]int64, int) {
	l.mu.Lock()
	ids := g[id]
	l.mu.Unlock()
	for i, m := range ids {
		if m == id {
			return ids, i
		}
	}
	return []int64{id}, 0
}

// ownerKeys returns the keys of owner's group for query key, and owner's index among them.
func (l *Loaders) ownerKeys(owner int64, key string) ([]ownerKey, int) {
	ids, at := l.members(l.users, owner)
	keys := make([]ownerKey, len(ids))
	for i, id := range ids {
		keys[i] = ownerKey{id, key}
	}
	return keys, at
}

// loadAt loads every key in one batch and returns the value at index at.
func loadAt[K comparable, V any](ctx context.Context, loader *dataloadgen.Loader[K, V], keys []K, at int) (V, error) {
	values, err := loader.LoadAll(ctx, keys)
	if err != nil {
		// The error covers the whole group; this key's own result is cached, value or error.
		return loader.Load(ctx, keys[at])
	}
	return values[at], nil
}

// User loads a user by id, together with the owners listed alongside it.
func (l *Loaders) User(ctx context.Context, id int64) (*users.User, error) {
	ids, at := l.members(l.owners, id)
	return loadAt(ctx, l.userByID, ids, at)
}

// OwnerItems loads owner's page of the items the filter matches, together with the other users
// listed alongside it, for the same arguments.
func (l *Loaders) OwnerItems(ctx context.Context, owner int64, args paging.Args, filter *items.Filter, order *items.Order) (*items.Connection, error) {
	q, err := items.NewQuery(args, filter, order)
	if err != nil {
		return nil, err
	}
	key := q.Key()
	l.mu.Lock()
	l.queries[key] = q
	l.mu.Unlock()
	keys, at := l.ownerKeys(owner, key)
	return loadAt(ctx, l.ownerItems, keys, at)
}

// ObserveUsers records users listed together.
func (l *Loaders) ObserveUsers(list []*users.User) {
	ids := make([]int64, len(list))
	for i, u := range list {
		ids[i] = u.ID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.add(ids)
}

// ObserveItems records items listed together: their owners load together.
func (l *Loaders) ObserveItems(list []*items.Item) {
	ids := make([]int64, 0, len(list))
	seen := make(map[int64]bool, len(list))
	for _, it := range list {
		if !seen[it.OwnerID] {
			seen[it.OwnerID] = true
			ids = append(ids, it.OwnerID)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owners.add(ids)
}

// Observe records the lists a resolver returned; other values are ignored.
func (l *Loaders) Observe(v any) {
	switch v := v.(type) {
	case []*users.User:
		l.ObserveUsers(v)
	case *users.Connection:
		list := make([]*users.User, len(v.Edges))
		for i, e := range v.Edges {
			list[i] = e.Node
		}
		l.ObserveUsers(list)
	case []*items.Item:
		l.ObserveItems(v)
	case *items.Connection:
		list := make([]*items.Item, len(v.Edges))
		for i, e := range v.Edges {
			list[i] = e.Node
		}
		l.ObserveItems(list)
	}
}

// groups maps an id to the ids listed with it. An id listed twice keeps the larger group, so a
// one-user page seen later does not undo the batch of a whole page.
type groups map[int64][]int64

func (g groups) add(ids []int64) {
	if len(ids) < 2 {
		return
	}
	for _, id := range ids {
		if len(g[id]) < len(ids) {
			g[id] = ids
		}
	}
}

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the operation's loaders, or nil when none were installed.
func From(ctx context.Context) *Loaders {
	l, _ := ctx.Value(ctxKey{}).(*Loaders)
	return l
}
