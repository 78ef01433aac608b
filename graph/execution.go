package graph

import (
	"context"
	"io"

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
