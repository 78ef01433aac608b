package limits

import (
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
)

// FieldsRule names the rule of Fields; the error presenter gives its errors their own code.
const FieldsRule = "MaxFields"

// Fields refuses documents that select more than max fields, and runs the rules it is given
// only on documents within that limit.
//
// Fields are counted as they would run: a fragment counts wherever it is spread (memoised, so
// counting costs one pass over the document, however many times fragments spread one another).
// A fragment spread, an inline fragment, a directive and each node of an argument's value count
// one too, and so do the fields of a fragment no operation spreads. Counting stops once past max.
//
// The gated rules are those whose cost grows faster than the document: gqlparser's
// OverlappingFieldsCanBeMerged compares every pair of fields that share a response name, so
// 4,900 copies of `id` in one selection (15 KB, within every other limit) cost it 1.6 s of CPU,
// and 140 copies of a field with an object argument of 30 fields cost it 70 ms.
// gqlparser walks the document once for all rules, each rule's observers seeing every node,
// so a rule cannot stop another's work: the gated rules are given observers of their own and
// walk the document separately, when the first node of the shared walk shows it within max.
func Fields(max int, gated ...core.Rule) core.Rule {
	return core.Rule{Name: FieldsRule, RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		done := false
		// Every operation and fragment definition has its directive list walked before its
		// selections, so this runs before the shared walk reaches any field.
		observers.OnDirectiveList(func(walker *core.Walker, _ []*ast.Directive) {
			if done {
				return
			}
			done = true
			doc := walker.Document
			if n, pos := Count(doc, max); n > max {
				addError(core.Message("the document selects %d fields or more (fragment spreads and argument values "+
					"included, a fragment counted wherever it is spread); the limit is %d", n, max), core.At(pos))
				return
			}
			own := &core.Events{}
			for _, rule := range gated {
				rule.RuleFunc(own, func(options ...core.ErrorOption) {
					addError(append(options, func(err *gqlerror.Error) { err.Rule = rule.Name })...)
				})
			}
			core.Walk(walker.Schema, doc, own)
		})
	}}
}

// Count returns how many selections doc makes (as Fields counts them), and where the count went
// past max (then it is at least max+1 and counting stopped).
func Count(doc *ast.QueryDocument, max int) (int, *ast.Position) {
	c := &counter{
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		memo:      map[string]int{},
		visiting:  map[string]bool{},
		max:       max,
	}
	for _, f := range doc.Fragments {
		if _, dup := c.fragments[f.Name]; !dup {
			c.fragments[f.Name] = f // the first of duplicate names, as the walker takes it
		}
	}
	n := 0
	for _, op := range doc.Operations {
		if n += c.of(op.SelectionSet, max-n); n > max {
			return n, op.Position
		}
	}
	// Fragments no operation spreads are validated too (NoUnusedFragments reports them, and
	// every rule walks them meanwhile).
	for _, f := range doc.Fragments {
		if _, spread := c.memo[f.Name]; spread {
			continue
		}
		if n += c.fragment(f.Name, max-n); n > max {
			return n, f.Position
		}
	}
	return n, nil
}

type counter struct {
	fragments map[string]*ast.FragmentDefinition
	memo      map[string]int // fragment name -> selections it makes, expanded
	visiting  map[string]bool
	max       int
}

// of counts the selections of set, stopping once past budget.
func (c *counter) of(set ast.SelectionSet, budget int) int {
	n := 0
	for _, sel := range set {
		n++
		switch sel := sel.(type) {
		case *ast.Field:
			for _, arg := range sel.Arguments {
				n += values(arg.Value)
			}
			n += directives(sel.Directives)
			n += c.of(sel.SelectionSet, budget-n)
		case *ast.InlineFragment:
			n += directives(sel.Directives)
			n += c.of(sel.SelectionSet, budget-n)
		case *ast.FragmentSpread:
			n += directives(sel.Directives)
			n += c.fragment(sel.Name, budget-n)
		}
		if n > budget {
			return n
		}
	}
	return n
}

func (c *counter) fragment(name string, budget int) int {
	if n, ok := c.memo[name]; ok {
		return n
	}
	def := c.fragments[name]
	if def == nil || c.visiting[name] {
		return 0 // unknown or cyclic: KnownFragmentNames and NoFragmentCycles report it
	}
	c.visiting[name] = true
	// Counted in full up to the whole limit, so the memo holds a count that any later spread
	// may reuse (a count past the limit ends the whole count anyway).
	n := c.of(def.SelectionSet, c.max)
	delete(c.visiting, name)
	c.memo[name] = n
	return n
}

// directives counts each directive and the nodes of its arguments: validation checks each one
// wherever its fragment is spread (an unknown or repeated one is an error each time).
func directives(ds ast.DirectiveList) int {
	n := 0
	for _, d := range ds {
		n++
		for _, arg := range d.Arguments {
			n += values(arg.Value)
		}
	}
	return n
}

// values counts the nodes of an argument's value: 1 for a scalar or a variable, 1 plus its
// elements for a list or an input object. Fields with the same response name are compared
// argument by argument, so argument values make them costlier to validate.
func values(v *ast.Value) int {
	if v == nil {
		return 1
	}
	n := 1
	for _, child := range v.Children {
		n += values(child.Value)
	}
	return n
}
