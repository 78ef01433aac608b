// Package nodes finds objects of any type by their global ids (gqlscalar.ID): Query.node and
// Query.nodes, through which Relay refetches what it shows.
package nodes

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/users"
)

// MaxIDs bounds the ids of one Query.nodes, as a page's size bounds a list.
const MaxIDs = 100

// Store is where objects are read: users through the process's coalesced lookups, items from db.
type Store struct {
	Users *users.Lookups
	DB    bun.IDB
}

// Find returns the object id names, or nil when there is none. A bare row number, which names
// no type, is BAD_USER_INPUT on field id. opts apply to an item's read.
func Find(ctx context.Context, s Store, id gqlscalar.ID, opts ...items.ReadOption) (gqlscalar.Node, error) {
	switch id.Type {
	case gqlscalar.TypeUser:
		if u, err := s.Users.Find(ctx, id.Row); u != nil || err != nil {
			return u, err
		}
	case gqlscalar.TypeItem:
		if it, err := items.Find(ctx, s.DB, id.Row, opts...); it != nil || err != nil {
			return it, err
		}
	default:
		return nil, untyped("id")
	}
	return nil, nil // not a nil *User in the interface: the answer is null
}

// FindMany returns the objects ids name, in their order, nil where there is none: one statement
// per type however many ids (duplicates included). At most MaxIDs ids; a bare row number among
// them is BAD_USER_INPUT on field ids.
func FindMany(ctx context.Context, s Store, ids []*gqlscalar.ID, opts ...items.ReadOption) ([]gqlscalar.Node, error) {
	if len(ids) > MaxIDs {
		return nil, apperr.Invalid("ids", fmt.Sprintf("must hold at most %d ids (got %d)", MaxIDs, len(ids)))
	}
	var userIDs, itemIDs []int64
	for _, id := range ids {
		switch id.Type {
		case gqlscalar.TypeUser:
			userIDs = append(userIDs, id.Row)
		case gqlscalar.TypeItem:
			itemIDs = append(itemIDs, id.Row)
		default:
			return nil, untyped("ids")
		}
	}
	var (
		foundUsers map[int64]*users.User
		foundItems map[int64]*items.Item
		err        error
	)
	if len(userIDs) > 0 {
		if foundUsers, err = s.Users.FindMany(ctx, userIDs); err != nil {
			return nil, fmt.Errorf("find users: %w", err)
		}
	}
	if len(itemIDs) > 0 {
		if foundItems, err = items.FindMany(ctx, s.DB, itemIDs, opts...); err != nil {
			return nil, err
		}
	}
	out := make([]gqlscalar.Node, len(ids))
	for i, id := range ids {
		switch id.Type {
		case gqlscalar.TypeUser:
			if u := foundUsers[id.Row]; u != nil {
				out[i] = u
			}
		case gqlscalar.TypeItem:
			if it := foundItems[id.Row]; it != nil {
				out[i] = it
			}
		}
	}
	return out, nil
}

func untyped(field string) error {
	return apperr.Invalid(field, "must be a global id, as an object's id field gives it: a row number does not say its type")
}
