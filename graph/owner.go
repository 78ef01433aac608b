package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/users"
)

// ownerOf is an item's owner as this response already has it: the user whose items field
// listed the item, or the owner read in the same statement as the item (items.WithOwner).
// Either way it is the owner of the same moment as the item, even if both were deleted since.
// nil when the response has neither.
func ownerOf(ctx context.Context, it *items.Item) *users.User {
	var fields graphql.CollectedField // Item.owner's, and what it asks for
	if fc := graphql.GetFieldContext(ctx); fc != nil {
		fields = fc.Field
	}
	if u := itemOwner(fields, it); u != nil {
		return u
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
		case *gqlscalar.Node: // an element of Query.nodes
			u, _ = (*v).(*users.User)
		}
		if u != nil && u.ID == it.OwnerID && usable(u, fields) {
			return u
		}
		return nil
	}
	return nil
}

// itemOwner is the owner read with the item (items.WithOwner, a nested page), when it has what
// field (an Item.owner) asks of it; nil otherwise. It is Item.owner's preloaded value
// (internal/gqlfast).
func itemOwner(field graphql.CollectedField, it *items.Item) *users.User {
	if u := it.Owner; u != nil && usable(u, field) {
		return u
	}
	return nil
}

// usable reports whether u has what field asks of it: all of it, or a brief user (users.User.Brief)
// asked for no more than its id and username.
func usable(u *users.User, field graphql.CollectedField) bool {
	return !u.Brief || !selectsDeep(field.Selections, userDetails)
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
