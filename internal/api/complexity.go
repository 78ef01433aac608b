package api

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// countCost is what totalCount adds: a count over the filter.
const countCost = 10

// complexity costs list fields by the number of elements they may return, so a nested page of
// pages costs the product of their sizes. Arguments out of range are costed at the largest page
// (they are refused later anyway).
func complexity() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	page := func(first, last *int) int {
		n := paging.DefaultSize
		if first != nil {
			n = *first
		} else if last != nil {
			n = *last
		}
		return min(max(n, 1), paging.MaxSize)
	}
	list := func(limit int) int { return min(max(limit, 1), users.MaxPageSize) }
	c.Query.Users = func(child, _ int, limit int) int { return 1 + list(limit)*child }
	c.Query.Items = func(child, _ int, limit int, _ *gqlscalar.ID) int { return 1 + list(limit)*child }
	// Every id costs its object, those beyond nodes.MaxIDs too (refused later anyway): a list of
	// thousands is refused here, before the resolver sees it.
	c.Query.Nodes = func(child int, ids []*gqlscalar.ID) int { return 1 + len(ids)*child }
	c.Query.UsersConnection = func(child int, first *int, _ *string, last *int, _ *string, _ *users.Filter, _ *users.Order) int {
		return 1 + page(first, last)*child
	}
	c.Query.ItemsConnection = func(child int, first *int, _ *string, last *int, _ *string, _ *items.Filter, _ *items.Order) int {
		return 1 + page(first, last)*child
	}
	c.User.Items = func(child int, first *int, _ *string, last *int, _ *string, _ *items.Filter, _ *items.Order) int {
		return 1 + page(first, last)*child
	}
	c.UserConnection.TotalCount = func(int) int { return countCost }
	c.ItemConnection.TotalCount = func(int) int { return countCost }
	return c
}

// complexityLimit refuses operations that cost more than limit, with the costs of the
// schema's ComplexityRoot (see complexity) and gqlgen's defaults for the other fields: 1 for a
// leaf, 1 plus its selection for an object. It replaces gqlgen's extension.ComplexityLimit,
// which walks every fragment again wherever it is spread (a document of 700 bytes whose
// fragments each spread the next ten times, eight deep, cost it 15 s of CPU) and costs
// introspection nothing (__schema under 100 aliases passed). Here each fragment's cost is
// computed once per operation, introspection fields cost like any other, and the walk stops
// as soon as the cost is past the limit.
type complexityLimit struct {
	limit int
	es    graphql.ExecutableSchema
}

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = &complexityLimit{}

func (c *complexityLimit) ExtensionName() string { return "ComplexityLimit" }

func (c *complexityLimit) Validate(es graphql.ExecutableSchema) error {
	c.es = es
	return nil
}

func (c *complexityLimit) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	w := &costWalk{ctx: ctx, es: c.es, schema: c.es.Schema(), vars: opCtx.Variables, limit: c.limit, memo: map[string]int{}}
	cost := w.set(opCtx.Operation.SelectionSet)
	opCtx.Stats.SetExtension("ComplexityLimit", &extension.ComplexityStats{Complexity: cost, ComplexityLimit: c.limit})
	if cost > c.limit {
		err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", cost, c.limit)
		if w.stopped {
			err = gqlerror.Errorf("operation has complexity %d or more, which exceeds the limit of %d", cost, c.limit)
		}
		errcode.Set(err, "COMPLEXITY_LIMIT_EXCEEDED")
		return err
	}
	return nil
}

// costWalk computes an operation's cost the way gqlgen's complexity.Calculate does, except as
// said on complexityLimit. A cost past the limit goes straight up without being multiplied or
// added to more than once per level, so nothing overflows.
type costWalk struct {
	ctx    context.Context
	es     graphql.ExecutableSchema
	schema *ast.Schema
	vars   map[string]any
	limit  int
	// memo holds each fragment's cost. A fragment's fields carry the fragment's own type
	// condition as their parent (the validator annotates them once, from the definition), so
	// its cost is the same wherever it is spread.
	memo    map[string]int
	stopped bool // past the limit before the end: the cost is a lower bound
}

func (w *costWalk) set(set ast.SelectionSet) int {
	total := 0
	for i, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			total += w.field(s)
		case *ast.InlineFragment:
			total += w.set(s.SelectionSet)
		case *ast.FragmentSpread:
			total += w.fragment(s)
		}
		if total > w.limit {
			// Enough to refuse: costs only grow from here.
			w.stopped = w.stopped || i < len(set)-1
			return total
		}
	}
	return total
}

func (w *costWalk) fragment(s *ast.FragmentSpread) int {
	if cost, ok := w.memo[s.Name]; ok {
		return cost
	}
	if s.Definition == nil {
		return 0
	}
	w.memo[s.Name] = w.limit + 1 // a cycle (refused by validation anyway) costs too much
	cost := w.set(s.Definition.SelectionSet)
	w.memo[s.Name] = cost
	return cost
}

func (w *costWalk) field(s *ast.Field) int {
	if s.Definition == nil || s.ObjectDefinition == nil {
		return 1
	}
	typ := w.schema.Types[s.Definition.Type.Name()]
	child := 0
	if typ != nil && (typ.Kind == ast.Object || typ.Kind == ast.Interface || typ.Kind == ast.Union) {
		if child = w.set(s.SelectionSet); child > w.limit {
			w.stopped = true // the field's own cost is not computed
			return child
		}
	}
	args := s.ArgumentMap(w.vars)
	cost := 0
	if s.ObjectDefinition.Kind == ast.Interface {
		// Interfaces have no costs of their own: the costliest implementation's.
		for _, t := range w.schema.GetPossibleTypes(s.ObjectDefinition) {
			cost = max(cost, w.fieldCost(t, s.Name, child, args))
		}
	} else {
		cost = w.fieldCost(s.ObjectDefinition, s.Name, child, args)
	}
	return cost
}

func (w *costWalk) fieldCost(parent *ast.Definition, field string, child int, args map[string]any) int {
	if cost, ok := w.es.Complexity(w.ctx, parent.Name, field, child, args); ok && cost >= 1 {
		return cost
	}
	return 1 + child
}
