// Package graph is the GraphQL adapter: gqlgen's generated executor plus thin resolvers that parse
// arguments, call one domain function and return its result. No SQL and no rules live here.
package graph

import (
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/items"
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
