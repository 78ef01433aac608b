package graph

import (
	"bytes"
	"context"
	"hash/maphash"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/internal/items"
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
	// One allocation for every element's context, field context and index.
	parent := graphql.GetFieldContext(ctx)
	elems := make([]fieldCtx, length)
	for i := range elems {
		e := &elems[i]
		e.Context, e.index = ctx, i
		e.fc.Parent, e.fc.Index = parent, &e.index
		ret[i] = marshalElement1(e, i, marshalElement)
	}
	return ret
}

// fieldCtx is a context holding a field context, in one allocation with it and its index, where
// graphql.WithFieldContext allocates the value context apart (and gqlgen the field context and
// its Child function apart again): three allocations per object of a response, a fifth of a
// nested page's. graphql.GetFieldContext finds it as it finds gqlgen's own.
type fieldCtx struct {
	context.Context
	fc    graphql.FieldContext
	index int
	// The field set of the object that is the field's value (newObjectSet), in the same
	// allocation: an object in a list or under a plain field costs none of its own.
	set objectSet
}

// Value implements context.Context.
func (c *fieldCtx) Value(key any) any {
	if key == fieldContextKey {
		return &c.fc
	}
	return c.Context.Value(key)
}

// fieldContextKey is the key gqlgen keeps field contexts under (unexported there): the key
// graphql.GetFieldContext asks a context for.
var fieldContextKey = func() any {
	var p keyProbe
	graphql.GetFieldContext(&p)
	if p.key == nil {
		panic("graph: graphql.GetFieldContext asks for no key")
	}
	return p.key
}()

// keyProbe is a context that records the key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
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
// and parents: object, field, result, and resolver set for a preloaded resolver field), its value
// and its marshaller's answer; a panic nulls it. The field context has no Child function (gqlgen
// made one per field for middleware that asks for its children's contexts: ours does not).
func resolvePlain[T any](caches *opCache, ctx context.Context, field graphql.CollectedField, object string, resolver bool,
	v T, marshal func(context.Context, ast.SelectionSet, T) graphql.Marshaler,
) (ret graphql.Marshaler) {
	c := caches.newFieldCtx()
	c.Context = ctx
	c.fc = graphql.FieldContext{
		Parent:     graphql.GetFieldContext(ctx),
		Object:     object,
		Field:      field,
		IsMethod:   resolver,
		IsResolver: resolver,
		Result:     v,
	}
	defer func() {
		if r := recover(); r != nil {
			oc := graphql.GetOperationContext(ctx)
			oc.Error(c, oc.Recover(c, r))
			ret = graphql.Null
		}
	}()
	return marshal(c, field.Selections, v)
}

// newFieldCtx returns a new field context for a plain field of the operation, from chunks its
// plain fields share (c nil: an allocation of its own): a nested page has 220 of them, each an
// allocation of its own before.
func (c *opCache) newFieldCtx() *fieldCtx {
	if c == nil {
		return &fieldCtx{}
	}
	c.ctxMu.Lock()
	defer c.ctxMu.Unlock()
	if len(c.ctxs) == 0 {
		n := min(max(4, 2*c.ctxsMade), 64) // small operations take small chunks
		c.ctxs = make([]fieldCtx, n)
		c.ctxsMade += n
	}
	f := &c.ctxs[0]
	c.ctxs = c.ctxs[1:]
	return f
}

// plainString is a String! field read from its object's struct, written from there when the
// answer is written: graphql.MarshalString boxed a copy in a closure for every string of a
// response (a tenth of a nested page's allocations). Objects are not changed once read.
type plainString string

// MarshalGQL implements graphql.Marshaler, writing what graphql.MarshalString writes.
func (s *plainString) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok && !needsQuoting(string(*s)) {
		buf.WriteByte('"')
		buf.WriteString(string(*s))
		buf.WriteByte('"')
		return
	}
	writeQuotedString(w, string(*s))
}

// needsQuoting reports whether writeQuotedString escapes anything in s.
func needsQuoting(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '\\' || c == '"' {
			return true
		}
	}
	return false
}

// writeQuotedString is gqlgen's (graphql/string.go), scanning bytes where gqlgen decoded runes:
// only ASCII is escaped, and bytes of other characters (valid or not) are copied as they are,
// as there.
func writeQuotedString(w io.Writer, s string) {
	start := 0
	_, _ = io.WriteString(w, `"`)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '\\' && c != '"' {
			continue
		}
		_, _ = io.WriteString(w, s[start:i])
		switch c {
		case '\t':
			_, _ = io.WriteString(w, `\t`)
		case '\r':
			_, _ = io.WriteString(w, `\r`)
		case '\n':
			_, _ = io.WriteString(w, `\n`)
		case '\\':
			_, _ = io.WriteString(w, `\\`)
		case '"':
			_, _ = io.WriteString(w, `\"`)
		default:
			_, _ = w.Write([]byte{'\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf]})
		}
		start = i + 1
	}
	_, _ = io.WriteString(w, s[start:])
	_, _ = io.WriteString(w, `"`)
}

const hexDigits = "0123456789ABCDEF"

// objectFields writes an object's resolved fields, as graphql.FieldSet does, without the map of
// written names and the copy of every collected field it allocates per object.
type objectFields struct {
	fields []graphql.CollectedField
	values []graphql.Marshaler
}

// objectSet is what the generated object functions fill in place of a graphql.FieldSet: the
// values of the object's fields, and what marks it invalid. gqlgen's field set (two allocations,
// and a third for the writer) is made only when a resolver field is scheduled on it, and its
// results join the object's after Dispatch; an object of plain fields (an edge, an owner's
// username) costs one allocation.
type objectSet struct {
	fields   []graphql.CollectedField
	Values   []graphql.Marshaler
	Invalids uint32
	taken    atomic.Bool // in a fieldCtx: the set is the field's object's
	gql      *graphql.FieldSet
	inline   [4]graphql.Marshaler
}

// newObjectSet returns the field set of an object with these fields, in the field context ctx
// when that is the object's field's own (fieldCtx) and its set is free.
func newObjectSet(ctx context.Context, fields []graphql.CollectedField) *objectSet {
	var o *objectSet
	if c, ok := ctx.(*fieldCtx); ok && c.set.taken.CompareAndSwap(false, true) {
		o = &c.set
		o.fields = fields
	} else {
		o = &objectSet{fields: fields}
	}
	if len(fields) <= len(o.inline) {
		o.Values = o.inline[:len(fields)]
	} else {
		o.Values = make([]graphql.Marshaler, len(fields))
	}
	return o
}

func (o *objectSet) set() *graphql.FieldSet {
	if o.gql == nil {
		o.gql = graphql.NewFieldSet(o.fields)
	}
	return o.gql
}

// ResolveConcurrently is graphql.FieldSet's, on the object's gqlgen field set.
func (o *objectSet) ResolveConcurrently(oc *graphql.OperationContext, deferred *graphql.DeferredGroup, i int,
	recoverFromPanic, nonNull bool, resolve func(ctx context.Context) graphql.Marshaler,
) {
	o.set().ResolveConcurrently(oc, deferred, i, recoverFromPanic, nonNull, resolve)
}

// ResolveRootConcurrently is graphql.FieldSet's, on the object's gqlgen field set.
func (o *objectSet) ResolveRootConcurrently(ctx context.Context, oc *graphql.OperationContext, i int,
	recoverFromPanic, nonNull bool, resolve func(ctx context.Context) graphql.Marshaler,
) {
	o.set().ResolveRootConcurrently(ctx, oc, i, recoverFromPanic, nonNull, resolve)
}

// Dispatch runs the scheduled fields (graphql.FieldSet.Dispatch) and takes their values and
// invalid marks into the object's.
func (o *objectSet) Dispatch(ctx context.Context) {
	if o.gql == nil {
		return
	}
	o.gql.Dispatch(ctx)
	for i, v := range o.gql.Values {
		if v != nil {
			o.Values[i] = v
		}
	}
	o.Invalids += atomic.LoadUint32(&o.gql.Invalids)
}

// MarshalGQL implements graphql.Marshaler.
func (o *objectSet) MarshalGQL(w io.Writer) {
	(&objectFields{fields: o.fields, values: o.Values}).MarshalGQL(w)
}

// MarshalGQL implements graphql.Marshaler. Field aliases are GraphQL names, which need no
// escaping; a name written already is skipped, as in gqlgen (CollectFields merges fields of the
// same name, so it does not happen).
func (o *objectFields) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok { // an answer's buffer (marshalData): calls, not interface calls
		o.marshalBuffer(buf)
		return
	}
	var buf bytes.Buffer
	o.marshalBuffer(&buf)
	_, _ = w.Write(buf.Bytes())
}

// marshalBuffer is MarshalGQL into a buffer.
func (o *objectFields) marshalBuffer(buf *bytes.Buffer) {
	buf.WriteByte('{')
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
			buf.WriteByte(',')
		}
		written++
		buf.WriteByte('"')
		buf.WriteString(alias)
		buf.WriteString(`":`)
		o.values[i].MarshalGQL(buf)
	}
	buf.WriteByte('}')
}

// The operation's caches in front of graphql.CollectFields and of argument parsing. The elements
// of a list share their selection and their fields' arguments: gqlgen's own CollectFields cache
// (behind a lock, keyed by a hash it allocates) cost 10% of the server's CPU on a nested page,
// and User.items' arguments were parsed once per user. They live in the operation's context, so
// they end with it; the fields collected are the document's when they do not depend on the
// variables (docFields).
type opCache struct {
	// The fields collected: the document's when the operations running it collect alike
	// (docFields), else the operation's own.
	collected *fieldsCache

	mu   sync.Mutex
	args map[*ast.Field]map[string]any
	// The pages of User.items fields read ahead with their users (usersPage).
	items []itemsPreload
	// Answers shared by the places of the response that write the same object (sharedValue).
	shared map[sharedKey]graphql.Marshaler
	// The first byte of the answer data marshalData wrote last (ReleaseData).
	data atomic.Pointer[byte]

	ctxMu    sync.Mutex
	ctxs     []fieldCtx // the field contexts newFieldCtx hands out next
	ctxsMade int
}

// fieldsCache holds graphql.CollectFields' answers by selection and type.
type fieldsCache struct {
	// The first selections collected, read without the lock (a copy replaces the list when one
	// is added): a nested page looks its few selections up 360 times, and the lock and the map
	// cost 6% of its CPU.
	recent atomic.Pointer[[]collected]

	mu     sync.Mutex
	fields map[collectKey][]graphql.CollectedField
}

type collected struct {
	key    collectKey
	fields []graphql.CollectedField
}

// maxRecent bounds fieldsCache.recent: an operation of many selections finds the others in the
// map.
const maxRecent = 16

type collectKey struct {
	sel       *ast.Selection
	n         int
	satisfies *string
}

// cacheExtension names the caches among the operation's stats extensions.
const cacheExtension = "wikigraph.executionCaches"

// PrepareOperation gives op its caches; call it before op executes (an OperationContextMutator
// does). An operation without them is executed without caching.
func PrepareOperation(op *graphql.OperationContext) {
	c := &opCache{collected: docFields(op.Doc), args: make(map[*ast.Field]map[string]any)}
	if c.collected == nil {
		c.collected = newFieldsCache()
	}
	op.Stats.SetExtension(cacheExtension, c)
}

func newFieldsCache() *fieldsCache {
	return &fieldsCache{fields: make(map[collectKey][]graphql.CollectedField)}
}

// The fields collected per parsed document, for the operations that run it (the query cache
// hands them the same document): collecting them cost 6% of a nested page's CPU, once per
// operation. Only a document whose selections carry no directive collects alike for every
// operation (@skip, @include and @defer read the variables); the others collect per operation.
// An entry goes with its document (a weak key, removed when the document is collected; the
// entry does not hold the document itself, only parts of it).
var docCaches sync.Map // weak.Pointer[ast.QueryDocument] -> *docCache

type docCache struct {
	shared *fieldsCache // nil: the operations collect their own
}

// docFields is the fields cache the operations of doc share; nil when they may not.
func docFields(doc *ast.QueryDocument) *fieldsCache {
	if doc == nil {
		return nil
	}
	key := weak.Make(doc)
	if v, ok := docCaches.Load(key); ok {
		return v.(*docCache).shared
	}
	dc := &docCache{}
	if !hasDirectives(doc) {
		dc.shared = newFieldsCache()
	}
	v, loaded := docCaches.LoadOrStore(key, dc)
	if !loaded {
		runtime.AddCleanup(doc, func(key weak.Pointer[ast.QueryDocument]) { docCaches.Delete(key) }, key)
	}
	return v.(*docCache).shared
}

// hasDirectives reports whether any selection of doc (operations and fragments) has a
// directive.
func hasDirectives(doc *ast.QueryDocument) bool {
	var walk func(set ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if len(s.Directives) > 0 || walk(s.SelectionSet) {
					return true
				}
			case *ast.InlineFragment:
				if len(s.Directives) > 0 || walk(s.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if len(s.Directives) > 0 {
					return true
				}
			}
		}
		return false
	}
	for _, op := range doc.Operations {
		if walk(op.SelectionSet) {
			return true
		}
	}
	for _, f := range doc.Fragments {
		if walk(f.SelectionSet) {
			return true
		}
	}
	return false
}

func cacheOf(op *graphql.OperationContext) *opCache {
	if op == nil {
		return nil
	}
	c, _ := op.Stats.GetExtension(cacheExtension).(*opCache)
	return c
}

// collectFields is graphql.CollectFields, once per selection and type in an operation (c nil:
// each time).
func (c *opCache) collectFields(op *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	if c == nil || len(sel) == 0 || len(satisfies) == 0 {
		return graphql.CollectFields(op, sel, satisfies)
	}
	return c.collected.get(op, sel, satisfies)
}

// get is graphql.CollectFields(op, sel, satisfies), once. The answer is shared: nothing writes
// to it.
func (c *fieldsCache) get(op *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	key := collectKey{sel: &sel[0], n: len(sel), satisfies: &satisfies[0]}
	if recent := c.recent.Load(); recent != nil {
		for i := range *recent {
			if (*recent)[i].key == key {
				return (*recent)[i].fields
			}
		}
	}
	c.mu.Lock()
	fields, ok := c.fields[key]
	c.mu.Unlock()
	if ok {
		return fields
	}
	fields = graphql.CollectFields(op, sel, satisfies)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.fields[key]; ok {
		return c.fields[key] // collected meanwhile: the same fields, once
	}
	c.fields[key] = fields
	var next []collected
	if recent := c.recent.Load(); recent != nil {
		next = *recent
	}
	if len(next) < maxRecent {
		next = append(next[:len(next):len(next)], collected{key, fields})
		c.recent.Store(&next)
	}
	return fields
}

// preloadItems records pages, by user, as the value of the User.items fields under the
// usersConnection being resolved (conn, its field context) that read them ahead (c nil: nothing).
// Its own descendants only: the same field of the document can also stand elsewhere (a fragment
// spread under another field), merged there with fields that ask for more than this page read.
func (c *opCache) preloadItems(conn *graphql.FieldContext, fields []*ast.Field, pages map[int64]*items.Connection) {
	if c == nil || conn == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = append(c.items, itemsPreload{conn: conn, fields: fields, pages: pages})
}

// itemsPreload is what one usersConnection read ahead for the items fields of its users.
type itemsPreload struct {
	conn   *graphql.FieldContext
	fields []*ast.Field
	pages  map[int64]*items.Connection // shared with the loaders: read only
}

// userItems is the page preloadItems recorded for this User.items field of this user, resolved
// under the usersConnection that read it (ctx: the user's); nil when none, and the field resolves
// as usual.
func (c *opCache) userItems(ctx context.Context, field *ast.Field, user int64) *items.Connection {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	preloads := c.items
	c.mu.Unlock()
	for _, p := range preloads {
		if !slices.Contains(p.fields, field) {
			continue
		}
		for fc := graphql.GetFieldContext(ctx); fc != nil; fc = fc.Parent {
			if fc == p.conn {
				return p.pages[user]
			}
		}
	}
	return nil
}

// sharedValue is the answer of field (a preloaded Item.owner) for the object v, resolved once per
// field of the document and object when its selection is of plain fields only (no resolver, no
// directive: its answer cannot differ, err or be deferred), and then shared: the five items of a
// page's user have one owner, which each wrote anew. Otherwise, and without caches, resolve().
func (c *opCache) sharedValue(field graphql.CollectedField, v any, resolve func() graphql.Marshaler) graphql.Marshaler {
	if c == nil || field.Field == nil || len(field.Selections) == 0 || !plainUser(field.Selections) {
		return resolve()
	}
	// The field's collected selections too: one field of the document merged with others (from
	// other fragments) under one parent asks for more than under another.
	key := sharedKey{field.Field, &field.Selections[0], len(field.Selections), v}
	c.mu.Lock()
	m, ok := c.shared[key]
	c.mu.Unlock()
	if ok {
		return m
	}
	m = resolve()
	if m == graphql.Null { // (a panic, reported at this path: not shared)
		return m
	}
	c.mu.Lock()
	if c.shared == nil {
		c.shared = make(map[sharedKey]graphql.Marshaler)
	}
	c.shared[key] = m
	c.mu.Unlock()
	return m
}

type sharedKey struct {
	field *ast.Field
	sel   *ast.Selection
	n     int
	v     any
}

// plainUser reports whether a selection on a User asks only for its plain fields, without
// directives, through fragments.
func plainUser(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.Directives) > 0 || len(s.SelectionSet) > 0 {
				return false
			}
			switch s.Name {
			case "id", "databaseId", "username", "email", "createdAt", "updatedAt", "__typename":
			default:
				return false
			}
		case *ast.InlineFragment:
			if len(s.Directives) > 0 || !plainUser(s.SelectionSet) {
				return false
			}
		case *ast.FragmentSpread:
			if len(s.Directives) > 0 || s.Definition == nil || !plainUser(s.Definition.SelectionSet) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// fieldArgs is a field's arguments, parsed once per field of the document in an operation (c
// nil: each time). Arguments that fail are parsed, and reported, each time, as before. The map is
// shared: nothing writes to it.
func (c *opCache) fieldArgs(_ *graphql.OperationContext, field graphql.CollectedField, parse func() (map[string]any, error)) (map[string]any, error) {
	if c == nil || field.Field == nil {
		return parse()
	}
	c.mu.Lock()
	args, ok := c.args[field.Field]
	c.mu.Unlock()
	if ok {
		return args, nil
	}
	args, err := parse()
	if err == nil {
		c.mu.Lock()
		c.args[field.Field] = args
		c.mu.Unlock()
	}
	return args, err
}

// marshalData writes an operation's data into buf, grown first to the size this operation's
// answer had last time: a buffer growing from nothing to a nested page's 10 KB allocated and
// copied five times its size (a sixth of the bytes a nested page allocated). The hint is only a
// size: a collision in its table costs a grow, never a wrong answer.
func marshalData(op *graphql.OperationContext, buf *bytes.Buffer, data graphql.Marshaler) {
	var slot *atomic.Uint64
	var key uint64
	c := cacheOf(op)
	if c != nil && buf.Cap() == 0 {
		if b, ok := dataBuffers.Get().(*[]byte); ok { // one an earlier answer gave back (ReleaseData)
			*buf = *bytes.NewBuffer((*b)[:0])
		}
	}
	if op != nil && op.Operation != nil {
		h := maphash.Comparable(hintSeed, op.Operation)
		slot, key = &sizeHints[h%uint64(len(sizeHints))], h>>32
		if v := slot.Load(); v>>32 == key {
			buf.Grow(int(v & (1<<32 - 1)))
		}
	}
	data.MarshalGQL(buf)
	if slot != nil {
		size := uint64(min(buf.Len()+buf.Len()/8, maxSizeHint))
		slot.Store(key<<32 | size)
	}
	if c != nil && buf.Len() > 0 {
		c.data.Store(&buf.Bytes()[0])
	}
}

// ReleaseData gives back the buffer of op's answer data, once the answer is written and nothing
// holds it (the POST transport, after writing it whole): the next answer is written into it. A
// slice that is not the one marshalData wrote for op is left alone.
func ReleaseData(op *graphql.OperationContext, data []byte) {
	c := cacheOf(op)
	if c == nil || len(data) == 0 || cap(data) > maxSizeHint || c.data.Load() != &data[0] || !c.data.CompareAndSwap(&data[0], nil) {
		return
	}
	b := data[:0]
	dataBuffers.Put(&b)
}

// dataBuffers are buffers answers were written in, for the next ones.
var dataBuffers sync.Pool

// maxSizeHint bounds what a hint makes an answer allocate before it is written.
const maxSizeHint = 1 << 20

var (
	hintSeed  = maphash.MakeSeed()
	sizeHints [1024]atomic.Uint64
)
