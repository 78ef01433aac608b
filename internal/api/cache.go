package api

import (
	"container/list"
	"context"
	"sync"
	"unsafe"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// sizedCache is a least-recently-used graphql.Cache bounded by the bytes its entries hold (and,
// if maxEntries > 0, by their number). An entry larger than maxEntry is not kept: a client
// sending large documents pays for parsing each of them, and cannot fill the cache with a few.
// A count alone bounds nothing: 1,000 distinct 900 KB documents held 735 MB.
type sizedCache[T any] struct {
	size       func(key string, v T) int // bytes an entry holds, its key included
	maxBytes   int
	maxEntry   int
	maxEntries int

	mu    sync.Mutex
	bytes int
	order *list.List // front: most recently used
	items map[string]*list.Element
}

type cacheEntry[T any] struct {
	key   string
	value T
	size  int
}

var _ graphql.Cache[any] = (*sizedCache[any])(nil)

func newSizedCache[T any](maxBytes, maxEntry, maxEntries int, size func(string, T) int) *sizedCache[T] {
	return &sizedCache[T]{
		size: size, maxBytes: maxBytes, maxEntry: min(maxEntry, maxBytes), maxEntries: maxEntries,
		order: list.New(), items: make(map[string]*list.Element),
	}
}

func (c *sizedCache[T]) Get(_ context.Context, key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*cacheEntry[T]).value, true
	}
	var zero T
	return zero, false
}

func (c *sizedCache[T]) Add(_ context.Context, key string, value T) {
	n := c.size(key, value)
	if n > c.maxEntry {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	for c.order.Len() > 0 && (c.bytes+n > c.maxBytes || (c.maxEntries > 0 && c.order.Len() >= c.maxEntries)) {
		c.remove(c.order.Back())
	}
	c.items[key] = c.order.PushFront(&cacheEntry[T]{key: key, value: value, size: n})
	c.bytes += n
}

func (c *sizedCache[T]) remove(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry[T])
	delete(c.items, e.key)
	c.bytes -= e.size
}

// Bytes is what the entries hold, by their size function; never more than maxBytes.
func (c *sizedCache[T]) Bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Len is the number of entries.
func (c *sizedCache[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// entryOverhead is what an entry costs besides its key and value: the list element, the entry,
// the map slot.
const entryOverhead = 160

// persistedSize is the bytes of an automatic persisted query: its hash and its text.
func persistedSize(key, query string) int { return entryOverhead + len(key) + len(query) }

// documentSize estimates the bytes a parsed document holds: its text (the key, which the
// document's positions also point into) and its nodes. The nodes are most of it: a parsed
// document takes 25 to 75 times its text, depending on how short its tokens are, so the text's
// length alone would let 64 KB documents of one-letter fields hold 3 MB each.
func documentSize(query string, doc *ast.QueryDocument) int {
	n := entryOverhead + len(query) + int(unsafe.Sizeof(*doc))
	if doc == nil {
		return n
	}
	for _, op := range doc.Operations {
		n += node(unsafe.Sizeof(*op)) + sizeofPtr + varsSize(op.VariableDefinitions) +
			directivesSize(op.Directives) + selectionsSize(op.SelectionSet) + commentSize(op.Comment)
	}
	for _, f := range doc.Fragments {
		n += node(unsafe.Sizeof(*f)) + sizeofPtr + varsSize(f.VariableDefinition) +
			directivesSize(f.Directives) + selectionsSize(f.SelectionSet) + commentSize(f.Comment)
	}
	return n + commentSize(doc.Comment)
}

const sizeofPtr = int(unsafe.Sizeof(uintptr(0)))

var positionSize = alloc(unsafe.Sizeof(ast.Position{}))

// node is one allocation of a node of size s and its *Position, rounded up as the allocator
// would (to 16 bytes; size classes between are close enough for an estimate).
func node(s uintptr) int { return alloc(s) + positionSize }

func alloc(s uintptr) int { return (int(s) + 15) &^ 15 }

func selectionsSize(set ast.SelectionSet) int {
	n := len(set) * 2 * sizeofPtr // interface values in the slice
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			n += node(unsafe.Sizeof(*s)) + directivesSize(s.Directives) + selectionsSize(s.SelectionSet) + commentSize(s.Comment)
			for _, a := range s.Arguments {
				n += sizeofPtr + node(unsafe.Sizeof(*a)) + valueSize(a.Value) + commentSize(a.Comment)
			}
		case *ast.InlineFragment:
			n += node(unsafe.Sizeof(*s)) + directivesSize(s.Directives) + selectionsSize(s.SelectionSet) + commentSize(s.Comment)
		case *ast.FragmentSpread:
			n += node(unsafe.Sizeof(*s)) + directivesSize(s.Directives) + commentSize(s.Comment)
		}
	}
	return n
}

func directivesSize(ds ast.DirectiveList) int {
	n := 0
	for _, d := range ds {
		n += sizeofPtr + node(unsafe.Sizeof(*d))
		for _, a := range d.Arguments {
			n += sizeofPtr + node(unsafe.Sizeof(*a)) + valueSize(a.Value) + commentSize(a.Comment)
		}
	}
	return n
}

func varsSize(vs ast.VariableDefinitionList) int {
	n := 0
	for _, v := range vs {
		n += sizeofPtr + node(unsafe.Sizeof(*v)) + directivesSize(v.Directives) + valueSize(v.DefaultValue) + commentSize(v.Comment)
		for t := v.Type; t != nil; t = t.Elem {
			n += node(unsafe.Sizeof(*t))
		}
	}
	return n
}

func valueSize(v *ast.Value) int {
	if v == nil {
		return 0
	}
	n := node(unsafe.Sizeof(*v)) + commentSize(v.Comment)
	if v.Kind == ast.StringValue || v.Kind == ast.BlockValue {
		n += len(v.Raw) // unescaped: a copy, not a slice of the text
	}
	for _, c := range v.Children {
		n += sizeofPtr + node(unsafe.Sizeof(*c)) + valueSize(c.Value) + commentSize(c.Comment)
	}
	return n
}

func commentSize(c *ast.CommentGroup) int {
	if c == nil {
		return 0
	}
	n := int(unsafe.Sizeof(*c))
	for _, cm := range c.List {
		n += sizeofPtr + node(unsafe.Sizeof(*cm))
	}
	return n
}
