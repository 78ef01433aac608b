package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/users"
)

// The helpers the rewritten executor calls in place of gqlgen's must answer as gqlgen's do.

func TestObjectFieldsWriteAsGqlgensFieldSet(t *testing.T) {
	field := func(alias string) graphql.CollectedField {
		return graphql.CollectedField{Field: &ast.Field{Alias: alias, Name: alias}}
	}
	for _, tc := range []struct {
		name   string
		fields []graphql.CollectedField
	}{
		{"none", nil},
		{"one", []graphql.CollectedField{field("id")}},
		{"several", []graphql.CollectedField{field("id"), field("username"), field("__typename")}},
		{"a repeated name written once", []graphql.CollectedField{field("id"), field("a"), field("id")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := make([]graphql.Marshaler, len(tc.fields))
			for i := range values {
				values[i] = graphql.MarshalString("v" + string(rune('0'+i)))
			}
			want := graphql.NewFieldSet(tc.fields)
			copy(want.Values, values)
			var wantBuf, gotBuf bytes.Buffer
			want.MarshalGQL(&wantBuf)
			(&objectFields{fields: tc.fields, values: values}).MarshalGQL(&gotBuf)
			assert.Equal(t, wantBuf.String(), gotBuf.String())
		})
	}
}

// responseContext is what gqlgen gives a field: an operation and a response that collects errors.
func responseContext() context.Context {
	ctx := graphql.WithOperationContext(context.Background(), &graphql.OperationContext{
		RecoverFunc: func(_ context.Context, p any) error { return errors.New("panic: " + p.(string)) },
	})
	ctx = graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, func(_ context.Context, p any) error {
		return errors.New("panic: " + p.(string))
	})
	return graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: "Query", Field: graphql.CollectedField{Field: &ast.Field{Alias: "users", Name: "users"}}})
}

func TestMarshalSliceGivesEachElementItsIndexAndNullsOnlyAPanickingOne(t *testing.T) {
	ctx := responseContext()
	var paths []string
	ret := marshalSlice(ctx, 3, func(ctx context.Context, i int) graphql.Marshaler {
		paths = append(paths, graphql.GetPath(ctx).String())
		if i == 1 {
			panic("element 1")
		}
		return graphql.MarshalInt(i)
	})
	require.Len(t, ret, 3)
	assert.Equal(t, []string{"users[0]", "users[1]", "users[2]"}, paths)
	var buf bytes.Buffer
	ret.MarshalGQL(&buf)
	assert.Equal(t, "[0,null,2]", buf.String())
	errs := graphql.GetErrors(ctx)
	require.Len(t, errs, 1)
	assert.Equal(t, "panic: element 1", errs[0].Message)
	assert.Equal(t, ast.Path{ast.PathName("users"), ast.PathIndex(1)}, errs[0].Path)

	assert.Empty(t, marshalSlice(ctx, 0, nil))
}

func TestResolvePlainGivesTheFieldItsContextAndNullsAPanic(t *testing.T) {
	ctx := responseContext()
	field := graphql.CollectedField{Field: &ast.Field{Alias: "node", Name: "node"}}
	var seen *graphql.FieldContext
	got := resolvePlain(nil, ctx, field, "UserEdge", false, "value", func(ctx context.Context, _ ast.SelectionSet, v string) graphql.Marshaler {
		seen = graphql.GetFieldContext(ctx)
		return graphql.MarshalString(v)
	})
	require.NotNil(t, seen)
	assert.Equal(t, "users.node", graphql.GetPath(graphql.WithFieldContext(ctx, seen)).String())
	assert.Equal(t, "value", seen.Result)
	assert.Equal(t, "UserEdge", seen.Object)
	assert.Same(t, graphql.GetFieldContext(ctx), seen.Parent)
	assert.False(t, seen.IsResolver)
	var buf bytes.Buffer
	got.MarshalGQL(&buf)
	assert.Equal(t, `"value"`, buf.String())

	resolvePlain(nil, ctx, field, "Item", true, "value", func(ctx context.Context, _ ast.SelectionSet, v string) graphql.Marshaler {
		seen = graphql.GetFieldContext(ctx)
		return graphql.Null
	})
	assert.True(t, seen.IsResolver && seen.IsMethod, "a preloaded resolver field says so")

	got = resolvePlain(nil, ctx, field, "UserEdge", false, "value", func(context.Context, ast.SelectionSet, string) graphql.Marshaler {
		panic("boom")
	})
	assert.Equal(t, graphql.Null, got)
	errs := graphql.GetErrors(ctx)
	require.Len(t, errs, 1)
	assert.Equal(t, ast.Path{ast.PathName("users"), ast.PathName("node")}, errs[0].Path)
}

func TestFieldCtxIsAContextOfItsParent(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(responseContext(), key{}, "v"))
	c := &fieldCtx{Context: parent}
	c.fc.Object = "User"
	assert.Same(t, &c.fc, graphql.GetFieldContext(c))
	assert.Equal(t, "v", c.Value(key{}))
	assert.NotNil(t, graphql.GetOperationContext(c))

	// A context made from it ends with its parent.
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	inner := graphql.WithFieldContext(child, &graphql.FieldContext{Object: "Item"})
	assert.Same(t, &c.fc, graphql.GetFieldContext(inner).Parent)
	cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a context made from a fieldCtx did not end with its parent")
	}
}

func TestPlainStringWritesWhatMarshalStringWrites(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quo"te`, `back\slash`, "tab\tnew\nline\rret", "\x00\x01\x1f\x7f",
		"é日本語", "\u2028\u2029", "bad \xff\xfe utf8", "</script>&<>", strings.Repeat("x\"", 100),
	} {
		var want, got bytes.Buffer
		graphql.MarshalString(s).MarshalGQL(&want)
		v := s
		(*plainString)(&v).MarshalGQL(&got)
		assert.Equal(t, want.String(), got.String(), "%q", s)
	}
}

func TestDeferredGroupOnlyForDeferredFields(t *testing.T) {
	ctx := responseContext()
	plain := []graphql.CollectedField{{Field: &ast.Field{Name: "id"}}}
	g := newDeferredGroup(ctx, plain)
	assert.Nil(t, g.FieldSet)
	assert.Empty(t, g.Defers)

	deferred := append(plain, graphql.CollectedField{Field: &ast.Field{Name: "owner"}, Deferrables: []*graphql.Deferrable{{Label: "o"}}})
	g = newDeferredGroup(ctx, deferred)
	assert.NotNil(t, g.FieldSet)
	assert.NotNil(t, g.Defers)
	assert.Equal(t, "users", g.Path.String())
}

// The caches in front of CollectFields and argument parsing answer per operation: two
// operations of the same document with other variables get their own answers.
func TestCollectFieldsPerOperation(t *testing.T) {
	doc, err := parser.ParseQuery(&ast.Source{Input: `query($x: Boolean!) { a b @include(if: $x) }`})
	require.NoError(t, err)
	sel := doc.Operations[0].SelectionSet
	with := &graphql.OperationContext{Variables: map[string]any{"x": true}}
	without := &graphql.OperationContext{Variables: map[string]any{"x": false}}
	PrepareOperation(with)
	PrepareOperation(without)
	implementors := []string{"Query"}
	for range 3 {
		assert.Len(t, cacheOf(with).collectFields(with, sel, implementors), 2)
		assert.Len(t, cacheOf(without).collectFields(without, sel, implementors), 1)
	}
	first := cacheOf(with).collectFields(with, sel, implementors)
	assert.Same(t, &first[0], &cacheOf(with).collectFields(with, sel, implementors)[0], "an operation's repeated selection comes from the cache")
}

// Past the few selections looked up without the lock, the others come from the map; from many
// goroutines at once, each selection is collected once and answered alike.
func TestCollectFieldsManySelectionsAtOnce(t *testing.T) {
	var q strings.Builder
	q.WriteString("{")
	for i := range 3 * maxRecent {
		fmt.Fprintf(&q, " f%d { a%d b }", i, i)
	}
	q.WriteString(" }")
	doc, err := parser.ParseQuery(&ast.Source{Input: q.String()})
	require.NoError(t, err)
	op := &graphql.OperationContext{}
	PrepareOperation(op)
	c := cacheOf(op)
	implementors := []string{"T"}
	fields := doc.Operations[0].SelectionSet
	var wg sync.WaitGroup
	got := make([][]*graphql.CollectedField, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range fields {
				sel := fields[i].(*ast.Field).SelectionSet
				collected := c.collectFields(op, sel, implementors)
				require.Len(t, collected, 2)
				assert.Equal(t, fmt.Sprintf("a%d", i), collected[0].Name)
				got[g] = append(got[g], &collected[0])
			}
		}()
	}
	wg.Wait()
	for g := range got {
		for i := range got[g] {
			assert.Same(t, got[0][i], got[g][i], "selection %d collected once", i)
		}
	}
	assert.Len(t, *c.collected.recent.Load(), maxRecent)
	assert.Len(t, c.collected.fields, 3*maxRecent)
}

// The operations of one document share what they collect when no selection has a directive;
// with one (@include reads the variables), each operation collects its own. A document's entry
// goes when the document does.
func TestCollectedFieldsPerDocument(t *testing.T) {
	implementors := []string{"Query"}
	plain, err := parser.ParseQuery(&ast.Source{Input: `query { a b { c } ...F } fragment F on Query { d }`})
	require.NoError(t, err)
	op1, op2 := &graphql.OperationContext{Doc: plain}, &graphql.OperationContext{Doc: plain}
	PrepareOperation(op1)
	PrepareOperation(op2)
	sel := plain.Operations[0].SelectionSet
	got1 := cacheOf(op1).collectFields(op1, sel, implementors)
	got2 := cacheOf(op2).collectFields(op2, sel, implementors)
	require.Len(t, got1, 3)
	assert.Same(t, &got1[0], &got2[0], "collected once for both operations")

	for _, q := range []string{
		`query($x: Boolean!) { a b @include(if: $x) }`,
		`query($x: Boolean!) { a ...F @skip(if: $x) } fragment F on Query { b }`,
		`query($x: Boolean!) { a ...F } fragment F on Query { b @include(if: $x) }`,
		`query($x: Boolean!) { a ... @include(if: $x) { b } }`,
		`query($x: Boolean!) { a { b @skip(if: $x) } }`,
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		require.NoError(t, err)
		assert.True(t, hasDirectives(doc), q)
		with := &graphql.OperationContext{Doc: doc, Variables: map[string]any{"x": true}}
		without := &graphql.OperationContext{Doc: doc, Variables: map[string]any{"x": false}}
		PrepareOperation(with)
		PrepareOperation(without)
		assert.NotSame(t, cacheOf(with).collected, cacheOf(without).collected, q)
	}
	assert.False(t, hasDirectives(plain))

	// The entry goes with the document.
	gone, err := parser.ParseQuery(&ast.Source{Input: `{ a }`})
	require.NoError(t, err)
	op := &graphql.OperationContext{Doc: gone}
	PrepareOperation(op)
	key := weak.Make(gone)
	_, ok := docCaches.Load(key)
	require.True(t, ok)
	gone, op = nil, nil
	require.Eventually(t, func() bool {
		runtime.GC()
		_, ok := docCaches.Load(key)
		return !ok
	}, 10*time.Second, 10*time.Millisecond)
}

func TestFieldArgsParsedOncePerOperation(t *testing.T) {
	field := graphql.CollectedField{Field: &ast.Field{Name: "items"}}
	op1, op2 := &graphql.OperationContext{}, &graphql.OperationContext{}
	PrepareOperation(op1)
	PrepareOperation(op2)
	calls := 0
	parse := func(first int) func() (map[string]any, error) {
		return func() (map[string]any, error) {
			calls++
			return map[string]any{"first": first}, nil
		}
	}
	for range 3 {
		args, err := cacheOf(op1).fieldArgs(op1, field, parse(1))
		require.NoError(t, err)
		assert.Equal(t, 1, args["first"])
	}
	assert.Equal(t, 1, calls)
	args, err := cacheOf(op2).fieldArgs(op2, field, parse(2))
	require.NoError(t, err)
	assert.Equal(t, 2, args["first"], "another operation parses its own")
	assert.Equal(t, 2, calls)

	failing := graphql.CollectedField{Field: &ast.Field{Name: "bad"}}
	for range 2 {
		_, err := cacheOf(op1).fieldArgs(op1, failing, func() (map[string]any, error) { calls++; return nil, errors.New("bad first") })
		assert.Error(t, err)
	}
	assert.Equal(t, 4, calls, "a failure is parsed, and reported, every time")

	unprepared := &graphql.OperationContext{}
	for range 2 {
		_, err := cacheOf(unprepared).fieldArgs(unprepared, field, parse(3))
		require.NoError(t, err)
	}
	assert.Equal(t, 6, calls, "an operation without caches parses every time")
}

// An answer's buffer starts at the size the operation's answer had last time.
func TestMarshalDataStartsAtTheLastSize(t *testing.T) {
	op := &graphql.OperationContext{Operation: &ast.OperationDefinition{Name: "Q"}}
	data := graphql.MarshalString(strings.Repeat("x", 5000))
	var first bytes.Buffer
	marshalData(op, &first, data)
	var second bytes.Buffer
	allocs := testing.AllocsPerRun(10, func() {
		second.Reset()
		second = bytes.Buffer{}
		marshalData(op, &second, data)
	})
	assert.Equal(t, first.String(), second.String())
	assert.Equal(t, `"`+strings.Repeat("x", 5000)+`"`, second.String())
	assert.GreaterOrEqual(t, second.Cap(), 5002, "grown up front")
	assert.LessOrEqual(t, allocs, 3.0, "one buffer, not a doubling series")

	var none bytes.Buffer
	marshalData(nil, &none, data) // no operation: no hint, the same answer
	assert.Equal(t, first.String(), none.String())
}

// A preloaded field (internal/gqlfast's preloaded) is resolved from the object's own field when
// that is set, skipping its resolver: the resolver must answer that same value.
func TestPreloadedResolversAnswerTheObjectsValue(t *testing.T) {
	owner := &users.User{ID: 7, Username: "preloaded"}
	got, err := (&Resolver{}).Item().Owner(context.Background(), &items.Item{ID: 1, OwnerID: 7, Owner: owner})
	require.NoError(t, err)
	assert.Same(t, owner, got, "Item.owner")

	// A brief owner (id and username read) answers only a selection that asks no more of it.
	brief := &users.User{ID: 7, Username: "preloaded", Brief: true}
	it := &items.Item{ID: 1, OwnerID: 7, Owner: brief}
	sel := func(q string) graphql.CollectedField {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		require.NoError(t, err)
		f := doc.Operations[0].SelectionSet[0].(*ast.Field)
		return graphql.CollectedField{Field: f, Selections: f.SelectionSet}
	}
	assert.Same(t, brief, itemOwner(sel(`{ owner { id username } }`), it))
	assert.Nil(t, itemOwner(sel(`{ owner { username email } }`), it))
	assert.Nil(t, itemOwner(sel(`{ owner { ... on User { createdAt } } }`), it))
	assert.Same(t, owner, itemOwner(sel(`{ owner { email } }`), &items.Item{Owner: owner}), "a full owner answers all")
	assert.Nil(t, itemOwner(sel(`{ owner { id } }`), &items.Item{}), "no owner read")
}

// An object's set takes the values of its plain fields as written and those of the fields
// scheduled on gqlgen's field set after Dispatch, with their invalid marks, and writes them in
// the fields' order.
func TestObjectSetJoinsScheduledFields(t *testing.T) {
	ctx := responseContext()
	op := &graphql.OperationContext{RecoverFunc: func(context.Context, any) error { return errors.New("panic") }}
	for _, n := range []int{3, 6} { // within the inline values and beyond
		var fields []graphql.CollectedField
		for i := range n {
			name := string(rune('a' + i))
			fields = append(fields, graphql.CollectedField{Field: &ast.Field{Alias: name, Name: name}})
		}
		o := newObjectSet(context.Background(), fields)
		require.Len(t, o.Values, n)
		o.Values[0] = graphql.MarshalInt(0)
		for i := 1; i < n; i++ {
			if i%2 == 1 {
				o.ResolveConcurrently(op, &graphql.DeferredGroup{}, i, true, true, func(context.Context) graphql.Marshaler {
					return graphql.MarshalInt(i)
				})
			} else {
				o.Values[i] = graphql.MarshalInt(i)
			}
		}
		o.Dispatch(ctx)
		assert.Zero(t, o.Invalids)
		var buf bytes.Buffer
		o.MarshalGQL(&buf)
		want := "{"
		for i := range n {
			if i > 0 {
				want += ","
			}
			want += `"` + string(rune('a'+i)) + `":` + strconv.Itoa(i)
		}
		assert.Equal(t, want+"}", buf.String())
	}

	// A scheduled non-null field that answers null marks the object invalid.
	o := newObjectSet(context.Background(), []graphql.CollectedField{{Field: &ast.Field{Alias: "owner", Name: "owner"}}})
	o.ResolveConcurrently(op, &graphql.DeferredGroup{}, 0, true, true, func(context.Context) graphql.Marshaler { return graphql.Null })
	o.Dispatch(ctx)
	assert.Equal(t, uint32(1), o.Invalids)

	// Nothing scheduled: no gqlgen field set at all.
	o = newObjectSet(context.Background(), []graphql.CollectedField{{Field: &ast.Field{Alias: "id", Name: "id"}}})
	o.Values[0] = graphql.MarshalInt(1)
	o.Dispatch(ctx)
	assert.Nil(t, o.gql)
}

// An object's field set lives in its field's context, once; any other object made in that
// context, or in another kind of context, gets one of its own.
func TestObjectSetInItsFieldContext(t *testing.T) {
	fields := []graphql.CollectedField{{Field: &ast.Field{Alias: "id", Name: "id"}}}
	c := &fieldCtx{Context: context.Background()}
	first := newObjectSet(c, fields)
	assert.Same(t, &c.set, first)
	second := newObjectSet(c, fields)
	assert.NotSame(t, first, second)
	first.Values[0], second.Values[0] = graphql.MarshalInt(1), graphql.MarshalInt(2)
	var a, b bytes.Buffer
	first.MarshalGQL(&a)
	second.MarshalGQL(&b)
	assert.Equal(t, `{"id":1}`, a.String())
	assert.Equal(t, `{"id":2}`, b.String())
	assert.NotSame(t, &c.set, newObjectSet(context.WithValue(c, struct{}{}, 1), fields), "a context made from it is not the field's own")
}

// The pages usersPage reads ahead answer their User.items fields under the usersConnection that
// read them only: the same field of the document under another field (a fragment spread
// elsewhere, another page) resolves as usual.
func TestPreloadedItemsUnderTheirConnectionOnly(t *testing.T) {
	op := &graphql.OperationContext{}
	PrepareOperation(op)
	c := cacheOf(op)
	items1, items2 := &ast.Field{Name: "items"}, &ast.Field{Name: "items"}
	a, b, b2 := &items.Connection{}, &items.Connection{}, &items.Connection{}
	connA, connB := &graphql.FieldContext{Object: "Query"}, &graphql.FieldContext{Object: "Query"}
	under := func(conn *graphql.FieldContext) context.Context { // a user's context: node of an edge of conn
		edges := &graphql.FieldContext{Parent: conn, Object: "UserConnection"}
		elem := &graphql.FieldContext{Parent: edges}
		node := &fieldCtx{Context: context.Background()} // (WithFieldContext would set its own parent)
		node.fc = graphql.FieldContext{Parent: elem, Object: "UserEdge"}
		return node
	}
	c.preloadItems(connA, []*ast.Field{items1}, map[int64]*items.Connection{1: a, 2: b})
	assert.Same(t, a, c.userItems(under(connA), items1, 1))
	assert.Same(t, b, c.userItems(under(connA), items1, 2))
	assert.Nil(t, c.userItems(under(connA), items1, 3), "a user of no page read ahead")
	assert.Nil(t, c.userItems(under(connA), items2, 1), "another items field")
	assert.Nil(t, c.userItems(under(connB), items1, 1), "the same field under another connection")
	assert.Nil(t, c.userItems(context.Background(), items1, 1), "the same field under no connection")

	c.preloadItems(connB, []*ast.Field{items1, items2}, map[int64]*items.Connection{2: b2})
	assert.Same(t, b, c.userItems(under(connA), items1, 2), "each connection its own page")
	assert.Same(t, b2, c.userItems(under(connB), items1, 2))
	assert.Same(t, b2, c.userItems(under(connB), items2, 2))

	var none *opCache
	none.preloadItems(connA, []*ast.Field{items1}, map[int64]*items.Connection{1: a})
	assert.Nil(t, none.userItems(under(connA), items1, 1), "no caches: nothing preloaded")
}

// An object writes the same into an answer's buffer (its fast path) as into any writer.
func TestObjectFieldsWriteAlikeToAnyWriter(t *testing.T) {
	name := plainString(`a "quoted" <name>`)
	plain := plainString("plain")
	o := &objectFields{
		fields: []graphql.CollectedField{
			{Field: &ast.Field{Alias: "id", Name: "id"}}, {Field: &ast.Field{Alias: "name", Name: "name"}},
			{Field: &ast.Field{Alias: "id", Name: "id"}}, {Field: &ast.Field{Alias: "other", Name: "other"}},
		},
		values: []graphql.Marshaler{graphql.MarshalInt(1), &name, graphql.MarshalInt(2), &plain},
	}
	var buf bytes.Buffer
	var sb strings.Builder
	o.MarshalGQL(&buf)
	o.MarshalGQL(&sb)
	assert.Equal(t, `{"id":1,"name":"a \"quoted\" <name>","other":"plain"}`, buf.String())
	assert.Equal(t, buf.String(), sb.String())
}

// An answer's data buffer goes back for the next answer only when it is the one marshalData
// wrote for that operation, once.
func TestReleaseDataOnlyTheOperationsOwn(t *testing.T) {
	op := &graphql.OperationContext{}
	PrepareOperation(op)
	var buf bytes.Buffer
	marshalData(op, &buf, graphql.MarshalString("first"))
	data := buf.Bytes()
	require.Equal(t, `"first"`, string(data))

	ReleaseData(op, []byte(`"first"`)) // a copy: not the operation's buffer
	assert.Same(t, &data[0], cacheOf(op).data.Load())
	other := &graphql.OperationContext{}
	PrepareOperation(other)
	ReleaseData(other, data) // another operation's
	assert.Same(t, &data[0], cacheOf(op).data.Load())

	ReleaseData(op, data)
	assert.Nil(t, cacheOf(op).data.Load(), "given back")
	ReleaseData(op, data) // twice: nothing more
	ReleaseData(nil, data)

	// The next answer is written whole whatever buffer it gets.
	for range 3 {
		next := &graphql.OperationContext{}
		PrepareOperation(next)
		var b bytes.Buffer
		marshalData(next, &b, graphql.MarshalString("second"))
		assert.Equal(t, `"second"`, b.String())
		ReleaseData(next, b.Bytes())
	}
}

// The operation's plain fields take their contexts from shared chunks: each its own, from
// goroutines at once too.
func TestFieldCtxChunks(t *testing.T) {
	op := &graphql.OperationContext{}
	PrepareOperation(op)
	c := cacheOf(op)
	seen := make(map[*fieldCtx]bool)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				f := c.newFieldCtx()
				mu.Lock()
				assert.False(t, seen[f], "handed out twice")
				seen[f] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Len(t, seen, 400)
	assert.GreaterOrEqual(t, c.ctxsMade, 400)

	ctx := responseContext()
	field := graphql.CollectedField{Field: &ast.Field{Alias: "node", Name: "node"}}
	var first, second *graphql.FieldContext
	resolvePlain(c, ctx, field, "UserEdge", false, 1, func(ctx context.Context, _ ast.SelectionSet, v int) graphql.Marshaler {
		first = graphql.GetFieldContext(ctx)
		return graphql.MarshalInt(v)
	})
	resolvePlain(c, ctx, field, "ItemEdge", false, 2, func(ctx context.Context, _ ast.SelectionSet, v int) graphql.Marshaler {
		second = graphql.GetFieldContext(ctx)
		return graphql.MarshalInt(v)
	})
	assert.NotSame(t, first, second)
	assert.Equal(t, []any{"UserEdge", 1}, []any{first.Object, first.Result})
	assert.Equal(t, []any{"ItemEdge", 2}, []any{second.Object, second.Result})
}

// An owner written once is shared by the places that write the same owner for the same
// collected selection of plain fields; other selections, another owner or a selection that
// resolves something write their own.
func TestSharedValueOnlyForPlainSelections(t *testing.T) {
	op := &graphql.OperationContext{}
	PrepareOperation(op)
	c := cacheOf(op)
	doc, err := parser.ParseQuery(&ast.Source{Input: `{ a { owner { id username } } b { owner { username items { id } } } c { owner { ...O } } } fragment O on User { email }`})
	require.NoError(t, err)
	collected := func(i int) graphql.CollectedField {
		owner := doc.Operations[0].SelectionSet[i].(*ast.Field).SelectionSet[0].(*ast.Field)
		return graphql.CollectedField{Field: owner, Selections: slices.Clone(owner.SelectionSet)}
	}
	calls := 0
	resolve := func() graphql.Marshaler { calls++; return graphql.MarshalInt(calls) }
	u1, u2 := &users.User{ID: 1}, &users.User{ID: 2}
	plain, other := collected(0), collected(0) // the same field, collected twice (merged otherwise)
	c.sharedValue(plain, u1, resolve)
	c.sharedValue(plain, u1, resolve)
	assert.Equal(t, 1, calls, "the same owner, field and selection: shared")
	c.sharedValue(plain, u2, resolve)
	c.sharedValue(other, u1, resolve)
	assert.Equal(t, 3, calls, "another owner; another collection of the field")
	withItems := collected(1)
	c.sharedValue(withItems, u1, resolve)
	c.sharedValue(withItems, u1, resolve)
	assert.Equal(t, 5, calls, "a selection with a resolver field is not shared")
	doc.Operations[0].SelectionSet[2].(*ast.Field).SelectionSet[0].(*ast.Field).SelectionSet[0].(*ast.FragmentSpread).Definition = doc.Fragments[0]
	viaFragment := collected(2)
	c.sharedValue(viaFragment, u1, resolve)
	c.sharedValue(viaFragment, u1, resolve)
	assert.Equal(t, 6, calls, "through a fragment of plain fields: shared")
	var none *opCache
	none.sharedValue(plain, u1, resolve)
	assert.Equal(t, 7, calls)
}
