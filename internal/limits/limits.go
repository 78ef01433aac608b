// Package limits holds the validation rules that refuse a costly document before it runs:
// too deep a nesting, too many aliases, too many fields (which also bounds the validation rules
// whose cost grows faster than the document) and too much introspection. (The parser-token limit
// is gqlgen's; the complexity limit is internal/api's.)
package limits

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
)

// Rule names; the error presenter gives their errors their own codes.
const (
	DepthRule   = "MaxDepth"
	AliasesRule = "MaxAliases"
)

// Depth refuses operations whose fields nest deeper than max. Introspection fields are left to
// gqlparser's own MaxIntrospectionDepth, so GraphiQL's schema query always passes.
func Depth(max int) core.Rule {
	return core.Rule{Name: DepthRule, RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		observers.OnOperation(func(walker *core.Walker, op *ast.OperationDefinition) {
			d := &depth{doc: walker.Document, memo: map[string]int{}, visiting: map[string]bool{}, max: max}
			if got := d.of(op.SelectionSet); got > max {
				addError(core.Message("query nests %d levels deep; the limit is %d", got, max), core.At(op.Position))
			}
		})
	}}
}

type depth struct {
	doc      *ast.QueryDocument
	memo     map[string]int // fragment name -> depth of its selection set
	visiting map[string]bool
	max      int
}

func (d *depth) of(set ast.SelectionSet) int {
	deepest := 0
	for _, sel := range set {
		var n int
		switch sel := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(sel.Name, "__") {
				continue
			}
			n = 1 + d.of(sel.SelectionSet)
		case *ast.InlineFragment:
			n = d.of(sel.SelectionSet)
		case *ast.FragmentSpread:
			n = d.fragment(sel.Name)
		}
		deepest = max(deepest, n)
		if deepest > d.max {
			return deepest // deep enough to refuse: stop walking
		}
	}
	return deepest
}

func (d *depth) fragment(name string) int {
	if n, ok := d.memo[name]; ok {
		return n
	}
	if d.visiting[name] {
		return d.max + 1 // a cycle nests without end (NoFragmentCycles reports it too)
	}
	def := d.doc.Fragments.ForName(name)
	if def == nil {
		return 0 // KnownFragmentNames reports it
	}
	d.visiting[name] = true
	n := d.of(def.SelectionSet)
	delete(d.visiting, name)
	d.memo[name] = n
	return n
}

// Aliases refuses operations with more than max aliased fields, fragments counted wherever they
// are spread: aliases let one small document ask for the same costly field thousands of times.
func Aliases(max int) core.Rule {
	return core.Rule{Name: AliasesRule, RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		observers.OnOperation(func(walker *core.Walker, op *ast.OperationDefinition) {
			a := &aliases{doc: walker.Document, memo: map[string]int{}, visiting: map[string]bool{}, max: max}
			if n := a.of(op.SelectionSet); n > max {
				addError(core.Message("the operation has %d aliases; the limit is %d", n, max), core.At(op.Position))
			}
		})
	}}
}

type aliases struct {
	doc      *ast.QueryDocument
	memo     map[string]int
	visiting map[string]bool
	max      int
}

func (a *aliases) of(set ast.SelectionSet) int {
	n := 0
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Alias != "" && sel.Alias != sel.Name {
				n++
			}
			n += a.of(sel.SelectionSet)
		case *ast.InlineFragment:
			n += a.of(sel.SelectionSet)
		case *ast.FragmentSpread:
			n += a.fragment(sel.Name)
		}
		if n > a.max {
			return n // enough to refuse: stop counting
		}
	}
	return n
}

func (a *aliases) fragment(name string) int {
	if n, ok := a.memo[name]; ok {
		return n
	}
	def := a.doc.Fragments.ForName(name)
	if def == nil || a.visiting[name] {
		return 0 // unknown or cyclic: other rules report it
	}
	a.visiting[name] = true
	n := a.of(def.SelectionSet)
	delete(a.visiting, name)
	a.memo[name] = n
	return n
}
