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
