package graph

import (
	"context"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/loaders"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
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

// usersPage resolves usersConnection. When every user of the page asks for the same usual page
// of its items (no filter, no cursor: the nested read), the users and their items are read in
// one statement (loaders.UsersWithItems); otherwise the users alone, and their items through the
// loaders, in a second.
func usersPage(ctx context.Context, r *Resolver, args paging.Args, filter *users.Filter, order *users.Order) (*users.Connection, error) {
	uq, err := users.NewPageQuery(args, filter, order, brief(ctx, userDetails))
	if err != nil {
		return nil, err
	}
	if uq.Usual() {
		if q, fields, ok := itemsAhead(ctx); ok {
			if l := loaders.From(ctx); l != nil {
				conn, pages, err := l.UsersWithItems(ctx, uq, q)
				if err == nil {
					// The items fields answer these pages without their resolver (preloaded):
					// it would answer them from the loaders, which now hold them.
					cacheOf(graphql.GetOperationContext(ctx)).preloadItems(graphql.GetFieldContext(ctx), fields, pages)
				}
				return conn, err
			}
		}
	}
	return r.reads(ctx).UserLookups.Page(ctx, uq)
}

// itemsAhead looks ahead in the selection of the usersConnection being resolved: the items query
// every items field of its users (edges.node.items, aliases and fragments included) will make,
// when they all make the same usual one. Arguments are read here without gqlgen's coercion,
// so anything but literal or variable integers and orderBy enums declines: the items fields
// then read, and report, their arguments themselves. It returns the query and those fields.
func itemsAhead(ctx context.Context) (items.Query, []*ast.Field, bool) {
	fc := graphql.GetFieldContext(ctx)
	op := graphql.GetOperationContext(ctx)
	var (
		found  items.Query
		key    string
		fields []*ast.Field
	)
	for _, edges := range graphql.CollectFields(op, fc.Field.Selections, []string{"UserConnection"}) {
		if edges.Name != "edges" {
			continue
		}
		for _, node := range graphql.CollectFields(op, edges.Selections, []string{"UserEdge"}) {
			if node.Name != "node" {
				continue
			}
			short := !selectsDeep(node.Selections, itemDetails) // as briefSiblings, from the items field
			for _, f := range graphql.CollectFields(op, node.Selections, []string{"User"}) {
				if f.Name != "items" {
					continue
				}
				q, ok := itemsQuery(f.ArgumentMap(op.Variables))
				if !ok || !q.Usual() {
					return items.Query{}, nil, false
				}
				if short {
					q = q.Brief()
				}
				if key == "" {
					found, key = q, q.Key()
				} else if q.Key() != key {
					return items.Query{}, nil, false
				}
				fields = append(fields, f.Field)
			}
		}
	}
	return found, fields, key != ""
}

// itemsQuery makes the items query of User.items arguments (with their defaults applied).
func itemsQuery(args map[string]any) (items.Query, bool) {
	var pa paging.Args
	var order *items.Order
	for name, v := range args {
		switch name {
		case "first", "last":
			if v == nil {
				continue
			}
			n, ok := integer(v)
			if !ok {
				return items.Query{}, false
			}
			if name == "first" {
				pa.First = &n
			} else {
				pa.Last = &n
			}
		case "orderBy":
			m, ok := v.(map[string]any)
			if !ok {
				return items.Query{}, false
			}
			// ItemOrder's defaults in schema.graphqls (a wrong one here only costs the statement
			// saved: the items fields then load their own query).
			field, dir := "ID", "ASC"
			if f, ok := m["field"]; ok {
				if field, ok = f.(string); !ok {
					return items.Query{}, false
				}
			}
			if d, ok := m["direction"]; ok {
				if dir, ok = d.(string); !ok {
					return items.Query{}, false
				}
			}
			order = &items.Order{}
			if order.Field.UnmarshalGQL(field) != nil || order.Direction.UnmarshalGQL(dir) != nil {
				return items.Query{}, false
			}
		default:
			if v != nil { // after, before, filter
				return items.Query{}, false
			}
		}
	}
	q, err := items.NewQuery(pa, nil, order)
	return q, err == nil
}

// integer reads an Int argument as the parser or the variables carry it.
func integer(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		return int(n), int64(int(n)) == n
	case int:
		return n, true
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil && int64(int(i)) == i
	}
	return 0, false
}
