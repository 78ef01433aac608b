package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/users"
)

// ownerOf is an item's owner as this response already has it: the user whose items field
// listed the item, or the owner read in the same statement as the item (items.WithOwner).
// Either way it is the owner of the same moment as the item, even if both were deleted since.
// nil when the response has neither.
func ownerOf(ctx context.Context, it *items.Item) *users.User {
	if it.Owner != nil {
		return it.Owner
	}
	for fc := graphql.GetFieldContext(ctx); fc != nil; fc = fc.Parent {
		if fc.Object != "User" || fc.Field.Field == nil || fc.Field.Name != "items" {
			continue
		}
		if fc.Parent == nil {
			return nil
		}
		var u *users.User
		switch v := fc.Parent.Result.(type) {
		case *users.User:
			u = v
		case **users.User: // a list element
			u = *v
		}
		if u != nil && u.ID == it.OwnerID {
			return u
		}
		return nil
	}
	return nil
}

// readOptions asks a read of items for their owners when the selection wants them.
func readOptions(ctx context.Context) []items.ReadOption {
	if selects(graphql.GetFieldContext(ctx).Field.Selections, "owner", 3) {
		return []items.ReadOption{items.WithOwner}
	}
	return nil
}

// selects reports whether a field named name is selected within depth levels of set, through
// fragments too, except deferred ones: what a client defers is not read with the first part.
func selects(set []ast.Selection, name string, depth int) bool {
	if depth == 0 {
		return false
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == name || selects(s.SelectionSet, name, depth-1) {
				return true
			}
		case *ast.InlineFragment:
			if s.Directives.ForName("defer") == nil && selects(s.SelectionSet, name, depth) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Directives.ForName("defer") == nil && s.Definition != nil && selects(s.Definition.SelectionSet, name, depth) {
				return true
			}
		}
	}
	return false
}
