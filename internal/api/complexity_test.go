package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gqlcomplexity "github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"

	"github.com/wikigraph/wikigraph/graph"
)

// The complexity limit costs every operation as gqlgen's complexity.Calculate did, fragments
// included, introspection aside (it cost nothing there).
func TestComplexityAsGqlgenCostsIt(t *testing.T) {
	es := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}, Complexity: complexity()})
	c := &complexityLimit{limit: 1 << 40}
	require.NoError(t, c.Validate(es))
	vars := map[string]any{"n": 7, "f": 3}
	for _, q := range []string{
		`{ users(limit: 29) { id username } }`,
		`{ usersConnection(first: 20) { totalCount edges { node { items(first: 5) { edges { node { id title owner { id } } } } } } } }`,
		`query($n: Int!, $f: Int) { users(limit: $n) { ...U } itemsConnection(last: $f) { ...on ItemConnection { totalCount pageInfo { hasNextPage } } } }
		 fragment U on User { id items(first: 2) { edges { node { ...I } } } } fragment I on Item { id owner { ...O } } fragment O on User { username }`,
		`{ a: user(id: "1") { ...U } b: user(id: "2") { ...U } } fragment U on User { id items { edges { cursor } } }`,
		`mutation { createUser(input: {username: "u", email: "u@x.example"}) { id items(first: 3) { totalCount } } }`,
		`{ __typename me { __typename } }`,
	} {
		doc, errs := gqlparser.LoadQueryWithRules(es.Schema(), q, nil)
		require.Empty(t, errs, q)
		op := doc.Operations[0]
		want := gqlcomplexity.Calculate(context.Background(), es, op, vars)
		opCtx := &graphql.OperationContext{Doc: doc, Operation: op, Variables: vars}
		require.Nil(t, c.MutateOperationContext(context.Background(), opCtx), q)
		w := &costWalk{ctx: context.Background(), es: es, schema: es.Schema(), vars: vars, limit: 1 << 40, memo: map[string]int{}}
		assert.Equal(t, want, w.set(op.SelectionSet), q)
	}
}

// A fragment's cost is computed once, however often it is spread; the walk stops past the limit.
func TestComplexityOfFragmentBomb(t *testing.T) {
	es := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}, Complexity: complexity()})
	// Each fragment spreads the next 10 times, 12 deep: 10^12 ids.
	var b strings.Builder
	b.WriteString(`{ user(id: "1") { ...F0 } }`)
	for l := range 12 {
		fmt.Fprintf(&b, " fragment F%d on User {%s }", l, strings.Repeat(fmt.Sprintf(" ...F%d", l+1), 10))
	}
	b.WriteString(" fragment F12 on User { id }")
	q := b.String()
	doc, errs := gqlparser.LoadQueryWithRules(es.Schema(), q, nil)
	require.Empty(t, errs)
	w := &costWalk{ctx: context.Background(), es: es, schema: es.Schema(), limit: 1 << 50, memo: map[string]int{}}
	assert.Equal(t, 1+1_000_000_000_000, w.set(doc.Operations[0].SelectionSet), "user plus 10^12 ids")
	assert.Len(t, w.memo, 13)

	c := &complexityLimit{limit: 5000}
	require.NoError(t, c.Validate(es))
	err := c.MutateOperationContext(context.Background(), &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0]})
	require.NotNil(t, err)
	assert.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", err.Extensions["code"])
	assert.Contains(t, err.Message, "or more, which exceeds the limit of 5000")
}
