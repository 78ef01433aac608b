package gqlfast

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gqlgen's output for plain scalar fields (a struct field's, a plain method's, a method's that is
// not plain), a plain object field, resolvers, objects and a
// list, as v0.17.98 writes them.
const generated = `package graph

func (ec *executionContext) _Item_id(ctx context.Context, field graphql.CollectedField, obj *items.Item) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_Item_id(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.NodeID(), nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v *gqlscalar.ItemID) graphql.Marshaler {
			return ec.marshalNID2ᚖgithubᚗcomᚋwikigraphᚋwikigraphᚋinternalᚋgqlscalarᚐItemID(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _Item_databaseId(ctx context.Context, field graphql.CollectedField, obj *items.Item) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_Item_databaseId(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.ID, nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v int64) graphql.Marshaler {
			return ec.marshalNInt2int64(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _Item_code(ctx context.Context, field graphql.CollectedField, obj *items.Item) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_Item_code(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.Code(), nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v string) graphql.Marshaler {
			return ec.marshalNString2string(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _ItemEdge_node(ctx context.Context, field graphql.CollectedField, obj *items.Edge) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_ItemEdge_node(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.Node, nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v *items.Item) graphql.Marshaler {
			return ec.marshalNItem2ᚖItem(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _Item_owner(ctx context.Context, field graphql.CollectedField, obj *items.Item) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_Item_owner(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return ec.Resolvers.Item().Owner(ctx, obj)
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v *users.User) graphql.Marshaler {
			return ec.marshalNUser2ᚖUser(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) fieldContext_User_items(ctx context.Context, field graphql.CollectedField) (fc *graphql.FieldContext, err error) {
	fc = &graphql.FieldContext{Object: "User", Field: field, IsResolver: true}
	ctx = graphql.WithFieldContext(ctx, fc)
	if fc.Args, err = ec.field_User_items_args(ctx, field.ArgumentMap(ec.Variables)); err != nil {
		ec.Error(ctx, err)
		return fc, err
	}
	return fc, nil
}

func (ec *executionContext) _Item(ctx context.Context, sel ast.SelectionSet, obj *items.Item) graphql.Marshaler {
	fields := graphql.CollectFields(ec.OperationContext, sel, itemImplementors)

	out := graphql.NewFieldSet(fields)
	deferred := graphql.NewDeferredGroup(ctx)
	for i, field := range fields {
		switch field.Name {
		case "id":
			out.Values[i] = ec._Item_id(ctx, field, obj)
		case "owner":
			out.ResolveConcurrently(ec.OperationContext, &deferred, i,
				true, true,
				func(ctx context.Context) graphql.Marshaler {
					return ec._Item_owner(ctx, field, obj)
				})
		}
	}
	out.Dispatch(ctx)
	if out.Invalids > 0 {
		return graphql.Null
	}
	if n := len(deferred.Defers); n > 0 {
		ec.ProcessDeferredGroup(deferred)
	}
	return out
}

func (ec *executionContext) _User_items(ctx context.Context, field graphql.CollectedField, obj *users.User) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_User_items(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return ec.Resolvers.User().Items(ctx, obj, nil, nil, nil, nil, nil, nil)
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v *items.Connection) graphql.Marshaler {
			return ec.marshalNItemConnection2ᚖConnection(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _User(ctx context.Context, sel ast.SelectionSet, obj *users.User) graphql.Marshaler {
	fields := graphql.CollectFields(ec.OperationContext, sel, userImplementors)

	out := graphql.NewFieldSet(fields)
	deferred := graphql.NewDeferredGroup(ctx)
	for i, field := range fields {
		switch field.Name {
		case "id":
			out.Values[i] = ec._User_id(ctx, field, obj)
		case "items":
			out.ResolveConcurrently(ec.OperationContext, &deferred, i,
				true, true,
				func(ctx context.Context) graphql.Marshaler {
					return ec._User_items(ctx, field, obj)
				})
		}
	}
	out.Dispatch(ctx)
	if out.Invalids > 0 {
		return graphql.Null
	}
	if n := len(deferred.Defers); n > 0 {
		ec.ProcessDeferredGroup(deferred)
	}
	return out
}

func (e *executableSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	ec := executionContext{opCtx, e, 0, 0, make(chan graphql.DeferredResult)}
	data := ec._Query(ctx, opCtx.Operation.SelectionSet)
	var buf bytes.Buffer
	data.MarshalGQL(&buf)
	return graphql.OneShot(&graphql.Response{Data: buf.Bytes()})
}

func (ec *executionContext) marshalNItem2ᚕᚖItemᚄ(ctx context.Context, sel ast.SelectionSet, v []*items.Item) graphql.Marshaler {
	ret := graphql.MarshalSliceConcurrently(ctx, len(v), 0, false, func(ctx context.Context, i int) graphql.Marshaler {
		fc := graphql.GetFieldContext(ctx)
		fc.Result = &v[i]
		return ec.marshalNItem2ᚖItem(ctx, sel, v[i])
	})
	return ret
}

type executionContext struct {
	*graphql.ExecutionContextState[ResolverRoot, DirectiveRoot, ComplexityRoot]
}

func newExecutionContext(
	opCtx *graphql.OperationContext,
	execSchema *executableSchema,
	deferredResults chan graphql.DeferredResult,
) *executionContext {
	return &executionContext{
		ExecutionContextState: graphql.NewExecutionContextState[ResolverRoot, DirectiveRoot, ComplexityRoot](opCtx, nil, nil, deferredResults),
	}
}
`

func TestRewrite(t *testing.T) {
	out, n, err := Rewrite([]byte(generated))
	require.NoError(t, err)
	assert.Equal(t, Counts{Slices: 1, DeferredGroups: 2, PlainScalars: 2, PlainObjects: 1, Objects: 2, CollectFields: 2, Args: 1, Data: 1, Preloaded: 2, Caches: 2}, n)
	src := string(out)
	for _, want := range []string{
		"return ec.marshalNID2ᚖgithubᚗcomᚋwikigraphᚋwikigraphᚋinternalᚋgqlscalarᚐItemID(ctx, field.Selections, obj.NodeID())",
		"return ec.marshalNInt2int64(ctx, field.Selections, obj.ID)",
		"return obj.Code(), nil", // a method not known to be plain keeps gqlgen's path
		"return resolvePlain(ec.caches, ctx, field, \"ItemEdge\", false, obj.Node,",
		"return ec.Resolvers.Item().Owner(ctx, obj)", // a resolver keeps gqlgen's path
		"deferred := newDeferredGroup(ctx, fields)",
		"fields := ec.caches.collectFields(ec.OperationContext, sel, itemImplementors)",
		"if fc.Args, err = ec.caches.fieldArgs(ec.OperationContext, field, func() (map[string]any, error) {\n\t\treturn ec.field_User_items_args(ctx, field.ArgumentMap(ec.Variables))\n\t}); err != nil {",
		"out := newObjectSet(ctx, fields)",
		"ret := marshalSlice(ctx, len(v), func(ctx context.Context, i int) graphql.Marshaler {",
		"marshalData(opCtx, &buf, data)",
		"caches *opCache",
		"caches: cacheOf(opCtx)",
		"if v := itemOwner(field, obj); v != nil && !field.IsDeferred() {\n\t\t\t\tout.Values[i] = ec.caches.sharedValue(field, v, func() graphql.Marshaler {\n\t\t\t\t\treturn resolvePlain(ec.caches, ctx, field, \"Item\", true, v, func(",
		"if v := ec.caches.userItems(ctx, field.Field, obj.ID); v != nil && !field.IsDeferred() {\n\t\t\t\tout.Values[i] = resolvePlain(ec.caches, ctx, field, \"User\", true, v, func(",
	} {
		assert.Contains(t, src, want)
	}
	assert.Equal(t, 3, strings.Count(src, "graphql.ResolveField("), "only the resolvers and Item.code keep graphql.ResolveField")
}

func TestRewriteRefusesAnUnexpectedShape(t *testing.T) {
	// A gqlgen that writes lists differently: the rewrite says so rather than do less.
	src := strings.Replace(generated, "graphql.MarshalSliceConcurrently(ctx, len(v), 0, false,", "graphql.MarshalSliceInOrder(ctx, len(v),", 1)
	_, _, err := Rewrite([]byte(src))
	assert.ErrorContains(t, err, "no longer has the expected shape")
}

// The committed executor is the rewritten one (make test also regenerates it and fails on a diff).
func TestGeneratedExecutorIsRewritten(t *testing.T) {
	src, err := os.ReadFile("../../graph/generated.go")
	require.NoError(t, err)
	for _, gone := range []string{"graphql.MarshalSliceConcurrently(", "graphql.NewDeferredGroup("} {
		assert.NotContains(t, string(src), gone)
	}
	assert.Contains(t, string(src), "return (*plainString)(&obj.Username)")
	assert.Contains(t, string(src), "(ctx, field.Selections, obj.NodeID())", "the global ids are plain fields")
}

func TestObjectOf(t *testing.T) {
	for fn, want := range map[string]string{"_Item_title": "Item", "_ItemEdge_node": "ItemEdge", "___Type_fields": "__Type", "___Schema_types": "__Schema"} {
		got, ok := objectOf(fn)
		assert.True(t, ok, fn)
		assert.Equal(t, want, got, fn)
	}
	_, ok := objectOf("_Item")
	assert.False(t, ok, "an object function, not a field's")
}
