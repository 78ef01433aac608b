// Package graph is the GraphQL adapter: gqlgen's generated executor plus thin resolvers that parse
// arguments, call one domain function and return its result. No SQL and no rules live here.
package graph

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/nodes"
	"github.com/wikigraph/wikigraph/internal/users"
)

// Resolver holds the dependencies of every resolver; it is the one place they are injected.
type Resolver struct {
	DB     *bun.DB
	Events *events.Broker
	// UserLookups finds users by id, coalescing concurrent lookups (api.New makes one when nil).
	UserLookups *users.Lookups
	// ItemPages reads owners' pages of items (api.New makes one when nil).
	ItemPages *items.Pages
	// Router chooses where queries read (nil: every read on DB); Replicas are what reads on
	// each of its replicas go through, in its order.
	Router   *database.Router
	Replicas []Reads
}

// Reads are the stores an operation reads through: the primary's (DB and the lookups and pages
// on it) or a replica's. Mutations, their payloads and subscriptions read the primary's.
type Reads struct {
	DB          *bun.DB
	UserLookups *users.Lookups
	ItemPages   *items.Pages
}

type readsKey struct{}

// WithReads returns ctx whose queries read through reads.
func WithReads(ctx context.Context, reads Reads) context.Context {
	return context.WithValue(ctx, readsKey{}, reads)
}

// Primary are the primary's stores.
func (r *Resolver) Primary() Reads {
	return Reads{DB: r.DB, UserLookups: r.UserLookups, ItemPages: r.ItemPages}
}

// reads are the stores the operation of ctx reads through: without replicas, the primary's
// (ctx is not looked at: that walks it, on every resolver).
func (r *Resolver) reads(ctx context.Context) Reads {
	if len(r.Replicas) > 0 {
		if reads, ok := ctx.Value(readsKey{}).(Reads); ok {
			return reads
		}
	}
	return r.Primary()
}

// nodeStore is where node and nodes read, for the operation of ctx.
func (r *Resolver) nodeStore(ctx context.Context) nodes.Store {
	reads := r.reads(ctx)
	return nodes.Store{Users: reads.UserLookups, DB: reads.DB}
}

// optionalRow is the row an optional ID argument names, which must be of type t (nil when the
// argument is absent); another type's global id is BAD_USER_INPUT on field.
func optionalRow(id *gqlscalar.ID, t gqlscalar.Type, field string) (*int64, error) {
	if id == nil {
		return nil, nil
	}
	row, err := id.RowOf(t, field)
	if err != nil {
		return nil, err
	}
	return &row, nil
}

// Root returns r as the executor's resolver root, with each type's resolver made once: the
// generated executor asks the root for a type's resolver on every field it resolves (Item.owner
// of every item), and each answer of r's own methods is a new allocation.
func (r *Resolver) Root() ResolverRoot {
	return root{item: r.Item(), mutation: r.Mutation(), query: r.Query(), subscription: r.Subscription(), user: r.User()}
}

type root struct {
	item         ItemResolver
	mutation     MutationResolver
	query        QueryResolver
	subscription SubscriptionResolver
	user         UserResolver
}

func (r root) Item() ItemResolver                 { return r.item }
func (r root) Mutation() MutationResolver         { return r.mutation }
func (r root) Query() QueryResolver               { return r.query }
func (r root) Subscription() SubscriptionResolver { return r.subscription }
func (r root) User() UserResolver                 { return r.user }
