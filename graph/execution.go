package graph

import (
	"context"
	"hash/maphash"
	"io"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// The generated executor calls these in place of gqlgen's own helpers: cmd/gqlgen rewrites
// generated.go after gqlgen wrote it (see internal/gqlfast). Both do what gqlgen's do, without the
// work a response of this API never needs.

// marshalSlice marshals a list's elements one after another, where gqlgen starts a goroutine per
// element (graphql.MarshalSliceConcurrently). Nothing a list element resolves waits for its
// siblings: the loaders load a whole group on its first member's call (internal/loaders), so a
// page's nested fields cost the same statements either way, and a goroutine per element cost more
// CPU (stack growth, scheduling) than everything else the element does. Each element still gets
// its own field context (its index in error paths), and a panic nulls only that element, as in
// gqlgen.
func marshalSlice(ctx context.Context, length int, marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	ret := make(graphql.Array, length)
	if length == 0 {
		return ret
	}
	// One allocation each for every element's index and field context.
	index := make([]int, length)
	fcs := make([]graphql.FieldContext, length)
	for i := range length {
		index[i] = i
		fcs[i].Index = &index[i]
		ret[i] = marshalElement1(graphql.WithFieldContext(ctx, &fcs[i]), i, marshalElement)
	}
	return ret
}

func marshalElement1(ctx context.Context, i int, marshalElement func(ctx context.Context, i int) graphql.Marshaler) (ret graphql.Marshaler) {
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, graphql.Recover(ctx, r))
			ret = graphql.Null
		}
	}()
	return marshalElement(ctx, i)
}

// newDeferredGroup is graphql.NewDeferredGroup for an object whose selected fields include a
// deferred one; otherwise an empty group, which the generated code only reads the length of.
// gqlgen made one for every object of a response (its path, a field set and a map).
func newDeferredGroup(ctx context.Context, fields []graphql.CollectedField) graphql.DeferredGroup {
	for i := range fields {
		if fields[i].IsDeferred() {
			return graphql.NewDeferredGroup(ctx)
		}
	}
	return graphql.DeferredGroup{}
}

// resolvePlain resolves a field that reads a struct field of its object (ItemEdge.node,
// ItemConnection.edges, ...) as graphql.ResolveField does, without the field middleware, which
// acts on resolvers only (internal/api): the field gets its field context (its children's paths
// and parents), its value and its marshaller's answer; a panic nulls it.
func resolvePlain[T any](ctx context.Context, field graphql.CollectedField,
	fieldContext func(context.Context, graphql.CollectedField) (*graphql.FieldContext, error),
	v T, marshal func(context.Context, ast.SelectionSet, T) graphql.Marshaler,
) (ret graphql.Marshaler) {
	fc, err := fieldContext(ctx, field)
	if err != nil {
		return graphql.Null
	}
	ctx = graphql.WithFieldContext(ctx, fc)
	defer func() {
		if r := recover(); r != nil {
			oc := graphql.GetOperationContext(ctx)
			oc.Error(ctx, oc.Recover(ctx, r))
			ret = graphql.Null
		}
	}()
	fc.Result = v
	return marshal(ctx, field.Selections, v)
}

// objectFields writes an object's resolved fields, as graphql.FieldSet does, without the map of
// written names and the copy of every collected field it allocates per object.
type objectFields struct {
	fields []graphql.CollectedField
	values []graphql.Marshaler
}

func newObjectFields(fields []graphql.CollectedField, values []graphql.Marshaler) *objectFields {
	return &objectFields{fields: fields, values: values}
}

// MarshalGQL implements graphql.Marshaler. Field aliases are GraphQL names, which need no
// escaping; a name written already is skipped, as in gqlgen (CollectFields merges fields of the
// same name, so it does not happen).
func (o *objectFields) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, "{")
	written := 0
fields:
	for i := range o.fields {
		alias := o.fields[i].Alias
		for j := range i {
			if o.fields[j].Alias == alias {
				continue fields
			}
		}
		if written > 0 {
			_, _ = io.WriteString(w, ",")
		}
		written++
		_, _ = io.WriteString(w, `"`)
		_, _ = io.WriteString(w, alias)
		_, _ = io.WriteString(w, `":`)
		o.values[i].MarshalGQL(w)
	}
	_, _ = io.WriteString(w, "}")
}

// collectFields is graphql.CollectFields with a small cache in front: the elements of a list
// share their selection, and gqlgen's own cache (per operation, behind a lock, keyed by a hash it
// allocates) cost 10% of the server's CPU on a nested page, looked up once per object. An entry
// is one operation's (its variables decide @skip and @include) fields of one selection for one
// type; it keeps its operation alive until replaced, so the pointers it compares cannot be
// reused meanwhile. 1,024 entries: 32 operations at once, each with a few selections, collided
// often in 256 (a third of the lookups missed).
func collectFields(op *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	if len(sel) == 0 || len(satisfies) == 0 {
		return graphql.CollectFields(op, sel, satisfies)
	}
	key := collectKey{op: op, sel: &sel[0], n: len(sel), satisfies: &satisfies[0]}
	slot := &collected[maphash.Comparable(collectSeed, key)%uint64(len(collected))]
	if e := slot.Load(); e != nil && e.key == key {
		return e.fields
	}
	fields := graphql.CollectFields(op, sel, satisfies)
	slot.Store(&collectEntry{key: key, fields: fields})
	return fields
}

type collectKey struct {
	op        *graphql.OperationContext
	sel       *ast.Selection
	n         int
	satisfies *string
}

type collectEntry struct {
	key    collectKey
	fields []graphql.CollectedField
}

var (
	collectSeed = maphash.MakeSeed()
	collected   [1024]atomic.Pointer[collectEntry]
)

// fieldArgs is a field's arguments, parsed once per operation and field of the document: the
// field of every element of a list has the same (gqlgen parsed them again for each, 20 times
// for the items of a page of 20 users). Arguments that fail are parsed, and reported, each
// time, as before. The map is shared: nothing writes to it.
func fieldArgs(op *graphql.OperationContext, field graphql.CollectedField, parse func() (map[string]any, error)) (map[string]any, error) {
	if field.Field == nil {
		return parse()
	}
	key := argsKey{op: op, field: field.Field}
	slot := &parsedArgs[maphash.Comparable(collectSeed, key)%uint64(len(parsedArgs))]
	if e := slot.Load(); e != nil && e.key == key {
		return e.args, nil
	}
	args, err := parse()
	if err == nil {
		slot.Store(&argsEntry{key: key, args: args})
	}
	return args, err
}

type argsKey struct {
	op    *graphql.OperationContext
	field *ast.Field
}

type argsEntry struct {
	key  argsKey
	args map[string]any
}

var parsedArgs [1024]atomic.Pointer[argsEntry]
