// Package loaders batches the lookups of one GraphQL operation: every Item.owner of a response
// becomes one users query, every User.items one lateral-join query, whatever the page size. A
// fresh set is made per response (a query's, a mutation's, or one subscription event's), so
// nothing is cached beyond it.
//
// Batching does not rely on timing. gqlgen resolves the elements of a list concurrently, and a
// loader that waits a moment for keys splits a batch whenever the scheduler is slower than the
// wait (as on a loaded 2-core machine). So the loaders remember which ids arrived together (the
// users of one page, the owners of one page of items) and, when one of them is asked for, load
// the whole group in one statement, exactly once; its siblings wait for that load. Only ids
// that arrived alone go through dataloadgen's time-window batching.
package loaders

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/vikstrous/dataloadgen"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// wait is how long a loader collects keys of different groups before it queries.
const wait = time.Millisecond

// Loaders are one operation's batch loaders.
type Loaders struct {
	db         bun.IDB
	lookups    *users.Lookups
	pages      *items.Pages
	userByID   *dataloadgen.Loader[int64, *users.User]
	ownerItems *dataloadgen.Loader[ownerKey, *items.Connection]
	ownerCount *dataloadgen.Loader[ownerKey, int]

	once    sync.Once
	mu      sync.Mutex
	queries map[string]items.Query // by Query.Key
	users   groups                 // users listed together: their items load together
	owners  groups                 // owners of items listed together: they load together

	userCalls  map[groupKey]*groupCall[*users.User]
	itemCalls  map[groupKey]*groupCall[*items.Connection]
	countCalls map[groupKey]*groupCall[int]

	// committed is set once a write of this operation has committed: from then on its loads
	// (a mutation's payload) are not bound by the operation's deadline, so a write that is in
	// answers success rather than TIMEOUT.
	committed atomic.Bool
	// afterCommit bounds each load of a committed mutation's payload, in place of the
	// operation's deadline (each statement is also bounded by DB_STATEMENT_TIMEOUT).
	afterCommit time.Duration
}

// bound returns the context for a load: ctx itself, or, once a write of the operation has
// committed, ctx without its deadline or cancellation, under afterCommit.
func (l *Loaders) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if !l.committed.Load() {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), l.afterCommit)
}

// groupKey names one load of one group: the group (by its slice) and the query.
type groupKey struct {
	group *int64
	query string
}

// groupCall is one group load, run once, shared by every member.
type groupCall[V any] struct {
	once sync.Once
	vals map[int64]V
	err  error
}

// loadGroup runs fetch for the group once and returns its result to every caller.
func loadGroup[V any](l *Loaders, calls map[groupKey]*groupCall[V], key groupKey, fetch func() (map[int64]V, error)) (map[int64]V, error) {
	l.mu.Lock()
	c := calls[key]
	if c == nil {
		c = &groupCall[V]{}
		calls[key] = c
	}
	l.mu.Unlock()
	c.once.Do(func() { c.vals, c.err = fetch() })
	return c.vals, c.err
}

type ownerKey struct {
	owner int64
	query string // items.Query.Key
}

// New returns the loaders of one operation, reading users through lookups and item pages through
// pages; afterCommit bounds each load once a write of the operation has committed, in place of
// the operation's deadline. It is cheap: most operations load nothing, so the batch loaders are
// made on first use.
func New(db bun.IDB, lookups *users.Lookups, pages *items.Pages, afterCommit time.Duration) *Loaders {
	return &Loaders{db: db, lookups: lookups, pages: pages, afterCommit: afterCommit}
}

// init makes the loaders; every method that uses them calls it first.
func (l *Loaders) init() {
	l.once.Do(func() {
		l.queries = make(map[string]items.Query)
		l.users, l.owners = groups{}, groups{}
		l.userCalls = make(map[groupKey]*groupCall[*users.User])
		l.itemCalls = make(map[groupKey]*groupCall[*items.Connection])
		l.countCalls = make(map[groupKey]*groupCall[int])
		l.userByID = dataloadgen.NewMappedLoader(l.fetchUsers, dataloadgen.WithWait(wait))
		l.ownerItems = dataloadgen.NewMappedLoader(func(ctx context.Context, keys []ownerKey) (map[ownerKey]*items.Connection, error) {
			out := make(map[ownerKey]*items.Connection, len(keys))
			for key, owners := range byQuery(keys) {
				conns, err := l.fetchPages(ctx, owners, key)
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
			for key, owners := range byQuery(keys) {
				counts, err := l.fetchCounts(ctx, owners, key)
				if err != nil {
					return nil, err
				}
				for owner, n := range counts {
					out[ownerKey{owner, key}] = n
				}
			}
			return out, nil
		}, dataloadgen.WithWait(wait))
	})
}

// fetchUsers loads users by id. The owner of an item in a DELETED event may be gone too (a
// cascade): it comes as it was. Users loaded together list their items together.
func (l *Loaders) fetchUsers(ctx context.Context, ids []int64) (map[int64]*users.User, error) {
	found, err := l.lookups.FindMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(found) < len(ids) {
		var gone []int64
		for _, id := range ids {
			if found[id] == nil {
				gone = append(gone, id)
			}
		}
		deleted, err := events.DeletedUsers(ctx, l.db, gone)
		if err != nil {
			return nil, err
		}
		for id, u := range deleted {
			found[id] = u
		}
	}
	l.mu.Lock()
	l.users.add(ids)
	l.mu.Unlock()
	return found, nil
}

// fetchPages loads the item pages of owners for the query key, in one statement.
func (l *Loaders) fetchPages(ctx context.Context, owners []int64, key string) (map[int64]*items.Connection, error) {
	conns, err := l.pages.ByOwner(ctx, owners, l.query(key), func(ctx context.Context, owner int64) (int, error) {
		return l.count(ctx, owner, key)
	})
	if err != nil {
		return nil, err
	}
	var listed []*items.Item
	for _, conn := range conns {
		for _, e := range conn.Edges {
			listed = append(listed, e.Node)
		}
	}
	l.ObserveItems(listed)
	return conns, nil
}

// fetchCounts counts the items of owners for the query key, in one statement.
func (l *Loaders) fetchCounts(ctx context.Context, owners []int64, key string) (map[int64]int, error) {
	counts, err := items.CountByOwner(ctx, l.db, owners, l.query(key))
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int, len(owners))
	for _, owner := range owners {
		out[owner] = counts[owner] // absent: no items, 0
	}
	return out, nil
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

// members returns the group listed with id, or nil when id arrived alone.
func (l *Loaders) members(g groups, id int64) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return g[id]
}

// pick returns id's value from a group load.
func pick[V any](vals map[int64]V, err error, id int64) (V, error) {
	var zero V
	if err != nil {
		return zero, err
	}
	v, ok := vals[id]
	if !ok {
		return zero, dataloadgen.ErrNotFound
	}
	return v, nil
}

// User loads a user by id, together with the owners listed alongside it. A user that no longer
// exists (deleted since the item that names it was read) is NOT_FOUND.
func (l *Loaders) User(ctx context.Context, id int64) (*users.User, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	l.init()
	var u *users.User
	var err error
	if ids := l.members(l.owners, id); ids == nil {
		u, err = l.userByID.Load(ctx, id)
	} else {
		vals, gerr := loadGroup(l, l.userCalls, groupKey{&ids[0], ""}, func() (map[int64]*users.User, error) {
			return l.fetchUsers(ctx, ids)
		})
		u, err = pick(vals, gerr, id)
	}
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return nil, apperr.Missing("the user was deleted meanwhile")
	}
	return u, err
}

// OwnerItems loads owner's page of the items the filter matches, together with the other users
// listed alongside it, for the same arguments; brief when no field but the id, the title and the
// owner is wanted (items.Query.Brief).
func (l *Loaders) OwnerItems(ctx context.Context, owner int64, args paging.Args, filter *items.Filter, order *items.Order, brief bool) (*items.Connection, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	l.init()
	q, err := items.NewQuery(args, filter, order)
	if err != nil {
		return nil, err
	}
	if brief {
		q = q.Brief()
	}
	key := q.Key()
	l.mu.Lock()
	l.queries[key] = q
	l.mu.Unlock()
	ids := l.members(l.users, owner)
	if ids == nil {
		return l.ownerItems.Load(ctx, ownerKey{owner, key})
	}
	vals, err := loadGroup(l, l.itemCalls, groupKey{&ids[0], key}, func() (map[int64]*items.Connection, error) {
		return l.fetchPages(ctx, ids, key)
	})
	return pick(vals, err, owner)
}

// count loads owner's item count for the query key, together with its group.
func (l *Loaders) count(ctx context.Context, owner int64, key string) (int, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	l.init()
	ids := l.members(l.users, owner)
	if ids == nil {
		return l.ownerCount.Load(ctx, ownerKey{owner, key})
	}
	vals, err := loadGroup(l, l.countCalls, groupKey{&ids[0], key}, func() (map[int64]int, error) {
		return l.fetchCounts(ctx, ids, key)
	})
	return pick(vals, err, owner)
}

// ObserveUsers records users listed together.
func (l *Loaders) ObserveUsers(list []*users.User) {
	l.init()
	ids := make([]int64, len(list))
	for i, u := range list {
		ids[i] = u.ID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.add(ids)
}

// ObserveItems records items listed together: their owners load together, and owners read
// with them (items.WithOwner) are users listed together.
func (l *Loaders) ObserveItems(list []*items.Item) {
	if len(list) == 0 || ownedByOne(len(list), func(i int) int64 { return list[i].OwnerID }) {
		return // a group of one owner records nothing (groups.add)
	}
	l.init()
	var ids, joined []int64 // owners to load; owners read with their items
	seen := make(map[int64]bool, len(list))
	for _, it := range list {
		if !seen[it.OwnerID] {
			seen[it.OwnerID] = true
			if it.Owner != nil { // Item.owner answers from it: nothing to load
				joined = append(joined, it.OwnerID)
			} else {
				ids = append(ids, it.OwnerID)
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owners.add(ids)
	l.users.add(joined)
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
	case []gqlscalar.Node: // Query.nodes: its users, and its items, were listed together
		var us []*users.User
		var its []*items.Item
		seen := make(map[int64]bool, len(v))
		for _, n := range v {
			switch n := n.(type) {
			case *users.User:
				if seen[n.ID] {
					continue
				}
				seen[n.ID] = true
				us = append(us, n)
			case *items.Item:
				its = append(its, n)
			}
		}
		l.ObserveUsers(us)
		l.ObserveItems(its)
	case *items.Connection:
		if ownedByOne(len(v.Edges), func(i int) int64 { return v.Edges[i].Node.OwnerID }) {
			return // a user's items (User.items): one owner, a group of one
		}
		list := make([]*items.Item, len(v.Edges))
		for i, e := range v.Edges {
			list[i] = e.Node
		}
		l.ObserveItems(list)
	}
}

// groups maps an id to the ids listed with it. An id listed twice keeps the larger group, so a
// one-user page seen later does not undo the batch of a whole page.
// ownedByOne reports whether the n items whose owners owner gives have at most one owner.
func ownedByOne(n int, owner func(i int) int64) bool {
	for i := 1; i < n; i++ {
		if owner(i) != owner(0) {
			return false
		}
	}
	return true
}

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

// With returns ctx carrying l; a write committed through it (database.Write) frees l's later
// loads from the operation's deadline.
func With(ctx context.Context, l *Loaders) context.Context {
	ctx = database.OnCommit(ctx, func() { l.committed.Store(true) })
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the operation's loaders, or nil when none were installed.
func From(ctx context.Context) *Loaders {
	l, _ := ctx.Value(ctxKey{}).(*Loaders)
	return l
}

// UsersWithItems reads a page of users and each one's page of items in one statement
// (items.Pages.UsersWithItems), for a response that asks for both: the items are then this
// operation's load of q for the users of the page, and their items fields (OwnerItems with the
// same arguments) read no more. It returns the page, and each user's items by user. Both queries
// must be Usual.
func (l *Loaders) UsersWithItems(ctx context.Context, uq users.PageQuery, q items.Query) (*users.Connection, map[int64]*items.Connection, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	l.init()
	key := q.Key()
	l.mu.Lock()
	l.queries[key] = q
	l.mu.Unlock()
	conn, pages, err := l.pages.UsersWithItems(ctx, uq, q, func(ctx context.Context, owner int64) (int, error) {
		return l.count(ctx, owner, key)
	})
	if err != nil {
		return nil, nil, err
	}
	// The items' owners are the users of the page, read with them (Item.owner answers from
	// them): the page's group is theirs, and no other group is to record.
	ids := make([]int64, len(conn.Edges))
	for i, e := range conn.Edges {
		ids[i] = e.Node.ID
	}
	if len(ids) == 1 { // a user alone loads its items through the batch loader
		l.ownerItems.Prime(ownerKey{ids[0], key}, pages[ids[0]])
	}
	if len(ids) < 2 {
		return conn, pages, nil
	}
	call := &groupCall[*items.Connection]{vals: pages}
	call.once.Do(func() {}) // done: its members only read vals
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.add(ids)
	for _, id := range ids {
		if g := l.users[id]; &g[0] != &ids[0] {
			return conn, pages, nil // listed in a larger group already: that group loads as it would
		}
	}
	l.itemCalls[groupKey{&ids[0], key}] = call
	return conn, pages, nil
}
