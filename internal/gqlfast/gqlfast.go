// Package gqlfast rewrites the executor gqlgen generates (graph/generated.go) so that a response
// costs less per field, without changing what it answers. It runs in `go generate` right after
// gqlgen (cmd/gqlgen), on the syntax tree, and fails when gqlgen's output no longer has the shape
// it expects, so a gqlgen upgrade cannot silently drop a rewrite.
//
// The rewrites, each measured with `make gobench BENCH=Handler/nested` and `make bench` (issue 12):
//
//   - Lists: graphql.MarshalSliceConcurrently (a goroutine per element) becomes the package's own
//     marshalSlice (the elements one after another). See graph/execution.go for why nothing waits.
//   - Deferred groups: graphql.NewDeferredGroup(ctx) (a path, a field set and a map for every
//     object) becomes newDeferredGroup(ctx, fields), which makes one only when a selected field is
//     deferred.
//   - Plain fields: a scalar read from a struct field (User.username, Item.databaseId, ...) or
//     given by one of plainMethods (User.id, Item.id: their global ids) with no arguments, no
//     directives and no resolver is marshalled directly, where gqlgen made a field context, ran
//     the field middleware and boxed the value for every one. Nothing observes those fields: the
//     API's field middleware acts on resolvers only, such a field cannot fail (its marshaller is
//     one of plainMarshalers, which never answer null for a value), and a panic is impossible
//     reading a field of a non-nil object (or calling one of plainMethods on it).
//     A String! among them is written from its object's struct field when the answer is written
//     (plainString), without a closure holding a copy.
//   - Plain object fields (ItemEdge.node, ...) keep their field context, made in one allocation
//     with its context, but skip the field middleware (resolvePlain); objects fill an objectSet, which makes gqlgen's field set only
//     for resolver fields and writes the object without gqlgen's map;
//     an object's fields are collected, and a field's arguments parsed, through small caches
//     shared by a list's elements (collectFields, fieldArgs); an answer's buffer starts at the
//     size the operation's answer had last time (marshalData).
//   - Preloaded resolver fields (see preloaded: Item.owner when the item came with its owner)
//     resolve as plain object fields when the value is there and the field is not deferred.
package gqlfast

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
)

// plainMarshalers are the generated marshallers of scalars whose output is never null for a
// value of the Go type (they would otherwise record an error against the field's path).
var plainMarshalers = map[string]bool{
	"marshalNBoolean2bool": true,
	"marshalOBoolean2bool": true,
	// User.id and Item.id: their NodeID methods never answer nil.
	"marshalNID2ᚖgithubᚗcomᚋwikigraphᚋwikigraphᚋinternalᚋgqlscalarᚐUserID": true,
	"marshalNID2ᚖgithubᚗcomᚋwikigraphᚋwikigraphᚋinternalᚋgqlscalarᚐItemID": true,
	"marshalNInt2int":        true,
	"marshalNInt2int64":      true, // gqlscalar.MarshalRow
	"marshalNString2string":  true,
	"marshalOString2ᚖstring": true, // nil is null, as the field's value
	"marshalNTime2timeᚐTime": true, // gqlscalar.MarshalTime
	"marshalNChangeKind2githubᚗcomᚋwikigraphᚋwikigraphᚋinternalᚋeventsᚐChangeKind": true,
}

// plainMethods are the methods a field may be bound to (gqlgen.yml's fieldName) and still be a
// plain field: they read their object's fields and cannot fail or panic (the global ids,
// User.NodeID and Item.NodeID).
var plainMethods = map[string]bool{"NodeID": true}

// preloaded are the resolver fields whose value the response may have already: "Type.field" ->
// the expression that gives it (nil when not), in the object function (obj, field, ec). Such a
// field, when the value is there and the field is not deferred, is resolved as a plain object
// field (resolvePlain) instead of through the resolver machinery; its resolver must answer the
// same value (graph's tests hold each to it).
var preloaded = map[string]string{
	// The user whose page listed the item, or the owner read with it, when it has what the field
	// asks for (graph.itemOwner).
	"Item.owner": "itemOwner(field, obj)",
	// The user's page of items read with the users (graph.usersPage); its resolver would answer
	// it from the loaders, which hold it.
	"User.items": "ec.caches.userItems(ctx, field.Field, obj.ID)",
}

// Counts are how many places each rewrite changed.
type Counts struct {
	Slices, DeferredGroups, PlainScalars, PlainObjects, Objects, CollectFields, Args, Data, Preloaded int
	// The operation's caches in the execution context: its field, and its value in the constructor.
	Caches int
}

type plainKind int

const (
	plainNone plainKind = iota
	plainScalar
	plainObject
)

// Rewrite returns src (a generated executor) rewritten, and what it changed.
func Rewrite(src []byte) ([]byte, Counts, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "generated.go", src, parser.ParseComments)
	if err != nil {
		return nil, Counts{}, err
	}
	var n Counts
	marshals := resolverMarshals(file)
	for _, decl := range file.Decls {
		n.Caches += addCaches(decl)
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		n.Preloaded += preload(fn, marshals)
		switch plainField(fn) {
		case plainScalar:
			n.PlainScalars++
			continue
		case plainObject:
			n.PlainObjects++
			continue
		}
		objects := declares(fn, "out") && declares(fn, "fields")
		ast.Inspect(fn.Body, func(node ast.Node) bool {
			call, ok := node.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch {
			case isCall(call, "graphql", "MarshalSliceConcurrently") && len(call.Args) == 5:
				// (ctx, len(v), workerLimit, omitPanicHandler, marshalElement)
				call.Fun = ast.NewIdent("marshalSlice")
				call.Args = []ast.Expr{call.Args[0], call.Args[1], call.Args[4]}
				n.Slices++
			case isMethodCall(call, "data", "MarshalGQL") && len(call.Args) == 1:
				// data.MarshalGQL(&buf) -> marshalData(opCtx, &buf, data)
				call.Args = []ast.Expr{ast.NewIdent("opCtx"), call.Args[0], ast.NewIdent("data")}
				call.Fun = ast.NewIdent("marshalData")
				n.Data++
			case isCall(call, "graphql", "CollectFields") && len(call.Args) == 3 && isIdent(call.Args[1], "sel"):
				call.Fun = cachesMethod("collectFields")
				n.CollectFields++
			case isCall(call, "graphql", "NewDeferredGroup") && len(call.Args) == 1 && declares(fn, "fields"):
				call.Fun = ast.NewIdent("newDeferredGroup")
				call.Args = append(call.Args, ast.NewIdent("fields"))
				n.DeferredGroups++
			}
			return true
		})
		// fc.Args, err = ec.field_X_args(ctx, field.ArgumentMap(ec.Variables))
		// -> fc.Args, err = fieldArgs(ec.OperationContext, field, func() (map[string]any, error) { return <that call> })
		ast.Inspect(fn.Body, func(node ast.Node) bool {
			as, ok := node.(*ast.AssignStmt)
			if !ok || len(as.Lhs) != 2 || len(as.Rhs) != 1 {
				return true
			}
			sel, ok := as.Lhs[0].(*ast.SelectorExpr)
			if !ok || !isIdent(sel.X, "fc") || sel.Sel.Name != "Args" {
				return true
			}
			call, ok := as.Rhs[0].(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			if fun, ok := call.Fun.(*ast.SelectorExpr); !ok || !isIdent(fun.X, "ec") || !strings.HasPrefix(fun.Sel.Name, "field_") {
				return true
			}
			argMap, ok := call.Args[1].(*ast.CallExpr)
			if ok {
				fun, ok2 := argMap.Fun.(*ast.SelectorExpr)
				ok = ok2 && isIdent(fun.X, "field") && fun.Sel.Name == "ArgumentMap"
			}
			if !ok {
				return true
			}
			mapType := &ast.MapType{Key: ast.NewIdent("string"), Value: ast.NewIdent("any")}
			as.Rhs[0] = &ast.CallExpr{Fun: cachesMethod("fieldArgs"), Args: []ast.Expr{
				&ast.SelectorExpr{X: ast.NewIdent("ec"), Sel: ast.NewIdent("OperationContext")},
				ast.NewIdent("field"),
				&ast.FuncLit{
					Type: &ast.FuncType{Params: &ast.FieldList{}, Results: &ast.FieldList{List: []*ast.Field{
						{Type: mapType}, {Type: ast.NewIdent("error")},
					}}},
					Body: &ast.BlockStmt{List: []ast.Stmt{&ast.ReturnStmt{Results: []ast.Expr{call}}}},
				},
			}}
			n.Args++
			return true
		})
		if objects {
			// out := graphql.NewFieldSet(fields) -> out := newObjectSet(ctx, fields)
			ast.Inspect(fn.Body, func(node ast.Node) bool {
				as, ok := node.(*ast.AssignStmt)
				if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 || !isIdent(as.Lhs[0], "out") {
					return true
				}
				if call, ok := as.Rhs[0].(*ast.CallExpr); ok && isCall(call, "graphql", "NewFieldSet") && len(call.Args) == 1 {
					call.Fun = ast.NewIdent("newObjectSet")
					call.Args = append([]ast.Expr{ast.NewIdent("ctx")}, call.Args...)
					n.Objects++
				}
				return true
			})
		}
	}
	if n.Slices == 0 || n.DeferredGroups == 0 || n.PlainScalars == 0 || n.PlainObjects == 0 || n.Objects == 0 || n.CollectFields == 0 || n.Args == 0 || n.Data == 0 || n.Preloaded != len(preloaded) || n.Caches != 2 {
		return nil, n, fmt.Errorf("gqlfast: the generated code no longer has the expected shape (rewrote %+v); see internal/gqlfast", n)
	}
	if countCalls(file, "MarshalSliceConcurrently") > 0 {
		return nil, n, fmt.Errorf("gqlfast: a MarshalSliceConcurrently call was left unrewritten")
	}
	var out bytes.Buffer
	if err := format.Node(&out, fset, file); err != nil {
		return nil, n, err
	}
	return out.Bytes(), n, nil
}

// plainField rewrites, in place, the body of a generated field function of this shape:
//
//	func (ec *executionContext) _User_username(ctx context.Context, field graphql.CollectedField, obj *users.User) (ret graphql.Marshaler) {
//		return graphql.ResolveField(ctx, ec.OperationContext, field, <field context>,
//			func(ctx context.Context) (any, error) { return obj.Username, nil },
//			nil, // no directives
//			func(ctx context.Context, selections ast.SelectionSet, v string) graphql.Marshaler {
//				return ec.marshalNString2string(ctx, selections, v)
//			}, true, true)
//	}
//
// into `return ec.marshalNString2string(ctx, field.Selections, obj.Username)` for a scalar
// whose marshaller is one of plainMarshalers, or into a call of resolvePlain (graph/execution.go)
// for an object or a list, and reports which it did.
func plainField(fn *ast.FuncDecl) plainKind {
	if fn.Recv == nil || !strings.HasPrefix(fn.Name.Name, "_") || len(fn.Body.List) != 1 {
		return plainNone
	}
	ret, ok := fn.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return plainNone
	}
	call, ok := ret.Results[0].(*ast.CallExpr)
	if !ok || !isCall(call, "graphql", "ResolveField") || len(call.Args) != 9 {
		return plainNone
	}
	if id, ok := call.Args[5].(*ast.Ident); !ok || id.Name != "nil" {
		return plainNone // the field has directives
	}
	// The resolver: return obj.<Field>, nil
	resolver, ok := call.Args[4].(*ast.FuncLit)
	if !ok || len(resolver.Body.List) != 1 {
		return plainNone
	}
	rret, ok := resolver.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(rret.Results) != 2 {
		return plainNone
	}
	value := rret.Results[0]
	field, _ := value.(*ast.SelectorExpr)
	method := false
	if call, ok := value.(*ast.CallExpr); ok && len(call.Args) == 0 { // obj.<plain method>()
		if field, ok = call.Fun.(*ast.SelectorExpr); !ok || !plainMethods[field.Sel.Name] {
			return plainNone
		}
		method = true
	}
	if field == nil {
		return plainNone // a resolver
	}
	if obj, ok := field.X.(*ast.Ident); !ok || obj.Name != "obj" {
		return plainNone
	}
	if id, ok := rret.Results[1].(*ast.Ident); !ok || id.Name != "nil" {
		return plainNone
	}
	// The marshaller: return ec.<plain marshaller>(ctx, selections, v)
	marshal, ok := call.Args[6].(*ast.FuncLit)
	if !ok || len(marshal.Body.List) != 1 {
		return plainNone
	}
	mret, ok := marshal.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(mret.Results) != 1 {
		return plainNone
	}
	mcall, ok := mret.Results[0].(*ast.CallExpr)
	if !ok || len(mcall.Args) != 3 {
		return plainNone
	}
	sel, ok := mcall.Fun.(*ast.SelectorExpr)
	if !ok {
		return plainNone
	}
	if ec, ok := sel.X.(*ast.Ident); !ok || ec.Name != "ec" {
		return plainNone
	}
	if sel.Sel.Name == "marshalNString2string" && !method {
		// return (*plainString)(&obj.<Field>): written from the object, without a closure
		fn.Body.List[0] = &ast.ReturnStmt{Results: []ast.Expr{&ast.CallExpr{
			Fun:  &ast.ParenExpr{X: &ast.StarExpr{X: ast.NewIdent("plainString")}},
			Args: []ast.Expr{&ast.UnaryExpr{Op: token.AND, X: value}},
		}}}
		fn.Body.Rbrace = token.NoPos
		return plainScalar
	}
	if plainMarshalers[sel.Sel.Name] {
		fn.Body.List[0] = &ast.ReturnStmt{Results: []ast.Expr{&ast.CallExpr{
			Fun: sel,
			Args: []ast.Expr{
				ast.NewIdent("ctx"),
				&ast.SelectorExpr{X: ast.NewIdent("field"), Sel: ast.NewIdent("Selections")},
				value,
			},
		}}}
		fn.Body.Rbrace = token.NoPos
		return plainScalar
	}
	// An object or a list: it keeps its field context, without the field middleware.
	typ, ok := objectOf(fn.Name.Name)
	if !ok {
		return plainNone
	}
	fn.Body.List[0] = &ast.ReturnStmt{Results: []ast.Expr{&ast.CallExpr{
		Fun:  ast.NewIdent("resolvePlain"),
		Args: []ast.Expr{cachesExpr(), ast.NewIdent("ctx"), ast.NewIdent("field"), stringLit(typ), ast.NewIdent("false"), value, marshal},
	}}}
	return plainObject
}

// resolverMarshals maps each "Type.field" of preloaded to the marshaller its generated field
// function hands graphql.ResolveField.
func resolverMarshals(file *ast.File) map[string]*ast.FuncLit {
	out := make(map[string]*ast.FuncLit)
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil || len(fn.Body.List) != 1 {
			continue
		}
		typ, field, ok := strings.Cut(strings.TrimPrefix(fn.Name.Name, "_"), "_")
		if !ok || preloaded[typ+"."+field] == "" {
			continue
		}
		ret, ok := fn.Body.List[0].(*ast.ReturnStmt)
		if !ok || len(ret.Results) != 1 {
			continue
		}
		call, ok := ret.Results[0].(*ast.CallExpr)
		if !ok || !isCall(call, "graphql", "ResolveField") || len(call.Args) != 9 {
			continue
		}
		if lit, ok := call.Args[6].(*ast.FuncLit); ok {
			out[typ+"."+field] = lit
		}
	}
	return out
}

// preload rewrites, in the object function of a type with preloaded fields, each such field's
// case
//
//	case "owner":
//		out.ResolveConcurrently(ec.OperationContext, &deferred, i, true, true, func(ctx context.Context) graphql.Marshaler { ... })
//
// into one that first uses the value preloaded gives, when there is one and the field is not
// deferred:
//
//	case "owner":
//		if v := obj.Owner; v != nil && !field.IsDeferred() {
//			out.Values[i] = resolvePlain(ctx, field, "Item", true, v, <marshaller>)
//			...
//			break
//		}
//		out.ResolveConcurrently(...)
//
// and reports how many it rewrote.
func preload(fn *ast.FuncDecl, marshals map[string]*ast.FuncLit) int {
	typ := strings.TrimPrefix(fn.Name.Name, "_")
	if fn.Recv == nil || strings.Contains(typ, "_") || !declares(fn, "out") {
		return 0
	}
	n := 0
	ast.Inspect(fn.Body, func(node ast.Node) bool {
		cc, ok := node.(*ast.CaseClause)
		if !ok || len(cc.List) != 1 || len(cc.Body) != 1 {
			return true
		}
		lit, ok := cc.List[0].(*ast.BasicLit)
		if !ok {
			return true
		}
		name := strings.Trim(lit.Value, `"`)
		expr, marshal := preloaded[typ+"."+name], marshals[typ+"."+name]
		if expr == "" || marshal == nil {
			return true
		}
		given, err := parser.ParseExpr(expr)
		if err != nil {
			return true // counted out: Rewrite fails
		}
		clearPositions(given)
		stmt, ok := cc.Body[0].(*ast.ExprStmt)
		if !ok {
			return true
		}
		call, ok := stmt.X.(*ast.CallExpr)
		if !ok || !isMethodCall(call, "out", "ResolveConcurrently") || len(call.Args) != 6 {
			return true
		}
		value := ast.NewIdent("v")
		slot := &ast.IndexExpr{X: &ast.SelectorExpr{X: ast.NewIdent("out"), Sel: ast.NewIdent("Values")}, Index: ast.NewIdent("i")}
		cc.Body = []ast.Stmt{
			&ast.IfStmt{
				Init: &ast.AssignStmt{Lhs: []ast.Expr{ast.NewIdent("v")}, Tok: token.DEFINE, Rhs: []ast.Expr{given}},
				Cond: &ast.BinaryExpr{
					X:  &ast.BinaryExpr{X: value, Op: token.NEQ, Y: ast.NewIdent("nil")},
					Op: token.LAND,
					Y:  &ast.UnaryExpr{Op: token.NOT, X: &ast.CallExpr{Fun: &ast.SelectorExpr{X: ast.NewIdent("field"), Sel: ast.NewIdent("IsDeferred")}}},
				},
				Body: &ast.BlockStmt{List: []ast.Stmt{
					&ast.AssignStmt{Lhs: []ast.Expr{slot}, Tok: token.ASSIGN, Rhs: []ast.Expr{sharedResolve(typ+"."+name, &ast.CallExpr{
						Fun:  ast.NewIdent("resolvePlain"),
						Args: []ast.Expr{cachesExpr(), ast.NewIdent("ctx"), ast.NewIdent("field"), stringLit(typ), ast.NewIdent("true"), value, marshal},
					})}},
					&ast.IfStmt{
						Cond: &ast.BinaryExpr{X: slot, Op: token.EQL, Y: &ast.SelectorExpr{X: ast.NewIdent("graphql"), Sel: ast.NewIdent("Null")}},
						Body: &ast.BlockStmt{List: []ast.Stmt{&ast.ExprStmt{X: &ast.CallExpr{
							Fun:  &ast.SelectorExpr{X: ast.NewIdent("atomic"), Sel: ast.NewIdent("AddUint32")},
							Args: []ast.Expr{&ast.UnaryExpr{Op: token.AND, X: &ast.SelectorExpr{X: ast.NewIdent("out"), Sel: ast.NewIdent("Invalids")}}, ast.NewIdent("1")},
						}}}},
					},
					&ast.BranchStmt{Tok: token.BREAK},
				}},
			},
			stmt,
		}
		n++
		return false
	})
	return n
}

// addCaches gives the execution context (one per operation) the operation's caches, so that
// finding them costs a field read where it cost a lookup by name in the operation's stats (6.5%
// of a nested page's CPU): the field caches in the struct, cacheOf(opCtx) in its constructor.
// It reports how many of the two decl is.
func addCaches(decl ast.Decl) int {
	if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.TYPE {
		for _, spec := range gd.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok || ts.Name.Name != "executionContext" {
				continue
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return 0
			}
			st.Fields.List = append(st.Fields.List, &ast.Field{
				Names: []*ast.Ident{ast.NewIdent("caches")},
				Type:  &ast.StarExpr{X: ast.NewIdent("opCache")},
			})
			return 1
		}
		return 0
	}
	fn, ok := decl.(*ast.FuncDecl)
	if !ok || fn.Recv != nil || fn.Name.Name != "newExecutionContext" || len(fn.Body.List) != 1 {
		return 0
	}
	ret, ok := fn.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return 0
	}
	addr, ok := ret.Results[0].(*ast.UnaryExpr)
	if !ok || addr.Op != token.AND {
		return 0
	}
	lit, ok := addr.X.(*ast.CompositeLit)
	if !ok || !isIdent(lit.Type, "executionContext") {
		return 0
	}
	lit.Elts = append(lit.Elts, &ast.KeyValueExpr{
		Key:   ast.NewIdent("caches"),
		Value: &ast.CallExpr{Fun: ast.NewIdent("cacheOf"), Args: []ast.Expr{ast.NewIdent("opCtx")}},
	})
	return 1
}

// cachesExpr is ec.caches.
func cachesExpr() ast.Expr {
	return &ast.SelectorExpr{X: ast.NewIdent("ec"), Sel: ast.NewIdent("caches")}
}

// cachesMethod is ec.caches.<name>.
func cachesMethod(name string) ast.Expr {
	return &ast.SelectorExpr{X: &ast.SelectorExpr{X: ast.NewIdent("ec"), Sel: ast.NewIdent("caches")}, Sel: ast.NewIdent(name)}
}

// shared are the preloaded fields whose value one object shares across the response: the same
// owner of five items of a page is written once, then shared (graph's opCache.sharedValue, for
// selections of plain fields only).
var shared = map[string]bool{"Item.owner": true}

// sharedResolve is resolve, or for a shared field ec.caches.sharedValue(field, v, func()
// graphql.Marshaler { return resolve }).
func sharedResolve(name string, resolve ast.Expr) ast.Expr {
	if !shared[name] {
		return resolve
	}
	marshaler := &ast.SelectorExpr{X: ast.NewIdent("graphql"), Sel: ast.NewIdent("Marshaler")}
	return &ast.CallExpr{
		Fun: &ast.SelectorExpr{X: cachesExpr(), Sel: ast.NewIdent("sharedValue")},
		Args: []ast.Expr{ast.NewIdent("field"), ast.NewIdent("v"), &ast.FuncLit{
			Type: &ast.FuncType{Params: &ast.FieldList{}, Results: &ast.FieldList{List: []*ast.Field{{Type: marshaler}}}},
			Body: &ast.BlockStmt{List: []ast.Stmt{&ast.ReturnStmt{Results: []ast.Expr{resolve}}}},
		}},
	}
}

// objectOf is the type of a generated field function: "Item" of _Item_title, "__Type" of
// ___Type_fields (introspection's types begin with two underscores).
func objectOf(fn string) (string, bool) {
	rest, prefix := strings.TrimPrefix(fn, "_"), ""
	if strings.HasPrefix(rest, "__") {
		rest, prefix = rest[2:], "__"
	}
	typ, _, ok := strings.Cut(rest, "_")
	return prefix + typ, ok && typ != ""
}

// clearPositions drops the positions of a parsed expression (they are those of its own text, not
// of the file it goes into, and would make the printer break lines).
func clearPositions(e ast.Expr) {
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Ident:
			n.NamePos = token.NoPos
		case *ast.BasicLit:
			n.ValuePos = token.NoPos
		case *ast.CallExpr:
			n.Lparen, n.Rparen, n.Ellipsis = token.NoPos, token.NoPos, token.NoPos
		case *ast.StarExpr:
			n.Star = token.NoPos
		case *ast.UnaryExpr:
			n.OpPos = token.NoPos
		case *ast.BinaryExpr:
			n.OpPos = token.NoPos
		case *ast.ParenExpr:
			n.Lparen, n.Rparen = token.NoPos, token.NoPos
		case *ast.IndexExpr:
			n.Lbrack, n.Rbrack = token.NoPos, token.NoPos
		}
		return true
	})
}

func stringLit(s string) *ast.BasicLit {
	return &ast.BasicLit{Kind: token.STRING, Value: strconv.Quote(s)}
}

func isMethodCall(call *ast.CallExpr, recv, name string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == name && isIdent(sel.X, recv)
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func isCall(call *ast.CallExpr, pkg, name string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// declares reports whether fn's body assigns the variable name with :=.
func declares(fn *ast.FuncDecl, name string) bool {
	found := false
	ast.Inspect(fn.Body, func(node ast.Node) bool {
		if as, ok := node.(*ast.AssignStmt); ok && as.Tok == token.DEFINE {
			for _, lhs := range as.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && id.Name == name {
					found = true
				}
			}
		}
		return !found
	})
	return found
}

func countCalls(file *ast.File, name string) int {
	n := 0
	ast.Inspect(file, func(node ast.Node) bool {
		if call, ok := node.(*ast.CallExpr); ok && isCall(call, "graphql", name) {
			n++
		}
		return true
	})
	return n
}
