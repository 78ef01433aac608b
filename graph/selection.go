package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// The fields a brief read leaves out (items.Query.Brief, users.Brief): a read may skip their
// columns when none of these names is selected anywhere below the field being resolved.
var (
	itemDetails = []string{"description", "createdAt", "updatedAt"}
	userDetails = []string{"email", "createdAt", "updatedAt"}
)

// brief reports whether nothing below the field being resolved selects any of names, at any
// depth, through fragments, deferred ones included (a deferred part reads the same objects).
// Deep, because the objects a read returns are handed on: a user of a page is also the owner of
// its items (ownerOf).
func brief(ctx context.Context, names []string) bool {
	return !selectsDeep(graphql.GetFieldContext(ctx).Field.Selections, names)
}

// briefSiblings is brief over the whole selection of the object whose field is being resolved,
// so that every field of that object reading the same rows (aliases of User.items with the same
// arguments) reads them alike, in one statement.
func briefSiblings(ctx context.Context, names []string) bool {
	fc := graphql.GetFieldContext(ctx).Parent
	for fc != nil && fc.Field.Field == nil { // a list element: the list's field has the selection
		fc = fc.Parent
	}
	return fc != nil && !selectsDeep(fc.Field.Selections, names)
}

func selectsDeep(set ast.SelectionSet, names []string) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			for _, name := range names {
				if s.Name == name {
					return true
				}
			}
			if selectsDeep(s.SelectionSet, names) {
				return true
			}
		case *ast.InlineFragment:
			if selectsDeep(s.SelectionSet, names) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition != nil && selectsDeep(s.Definition.SelectionSet, names) {
				return true
			}
		}
	}
	return false
}
