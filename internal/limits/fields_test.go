package limits_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wikigraph/wikigraph/internal/limits"
)

func TestCount(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString(`{ user { ...F0 } }`)
	for l := range 30 {
		fmt.Fprintf(&bomb, " fragment F%d on User {%s }", l, strings.Repeat(fmt.Sprintf(" ...F%d", l+1), 10))
	}
	bomb.WriteString(" fragment F30 on User { id }")
	cases := []struct {
		name, doc string
		max, want int
	}{
		{"fields", `{ user(id: 1) { id name } }`, 100, 4},
		{"argument values", `{ a(x: {b: [1, 2], c: $v}) { id } }`, 100, 7},
		{"a fragment wherever it is spread", `{ a { ...F } b { ...F } } fragment F on T { id x }`, 100, 8},
		{"an unused fragment", `{ a } fragment F on T { id x }`, 100, 3},
		{"inline fragments", `{ a { ... on T { id } } }`, 100, 3},
		{"a cycle", `{ a { ...F } } fragment F on T { id ...G } fragment G on T { ...F }`, 100, 5},
		{"an unknown fragment", `{ a { ...X } }`, 100, 2},
		{"every operation", `query A { a } query B { b c }`, 100, 3},
		{"10^30 fields, stopped past the limit", bomb.String(), 500, 501},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := parser.ParseQuery(&ast.Source{Input: tc.doc})
			require.NoError(t, err)
			n, _ := limits.Count(doc, tc.max)
			if tc.want > tc.max {
				assert.Greater(t, n, tc.max)
				assert.Less(t, n, 2*tc.max, "stopped soon after the limit")
			} else {
				assert.Equal(t, tc.want, n)
			}
		})
	}
}
