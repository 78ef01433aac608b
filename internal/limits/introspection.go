package limits

import (
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
)

// IntrospectionRule names the rule of Introspection; the error presenter gives its errors
// their own code.
const IntrospectionRule = "MaxIntrospection"

// Introspection refuses operations that ask for __schema more than schemas times or for __type
// more than types times (distinct response names: copies without an alias run once). Each
// __schema answers the whole schema (tens of KB): under 100 aliases a document of 18 KB asked
// for 4.3 MB.
func Introspection(schemas, types int) core.Rule {
	return core.Rule{Name: IntrospectionRule, RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		observers.OnOperation(func(walker *core.Walker, op *ast.OperationDefinition) {
			roots := map[string]map[string]bool{"__schema": {}, "__type": {}}
			seen := map[string]bool{}
			// Introspection fields exist only on the query type: only the operation's own
			// selection and the fragments spread into it (on Query) can hold them.
			var walk func(ast.SelectionSet)
			walk = func(set ast.SelectionSet) {
				for _, sel := range set {
					switch sel := sel.(type) {
					case *ast.Field:
						if names, ok := roots[sel.Name]; ok {
							names[sel.Alias] = true // the parser sets Alias to Name when none is given
						}
					case *ast.InlineFragment:
						walk(sel.SelectionSet)
					case *ast.FragmentSpread:
						if !seen[sel.Name] && sel.Definition != nil {
							seen[sel.Name] = true
							walk(sel.Definition.SelectionSet)
						}
					}
				}
			}
			walk(op.SelectionSet)
			if n := len(roots["__schema"]); n > schemas {
				addError(core.Message("the operation asks for __schema %d times; the limit is %d", n, schemas), core.At(op.Position))
			}
			if n := len(roots["__type"]); n > types {
				addError(core.Message("the operation asks for __type %d times; the limit is %d", n, types), core.At(op.Position))
			}
		})
	}}
}
