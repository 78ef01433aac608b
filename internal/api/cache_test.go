package api

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// The estimate of a parsed document's bytes is close to what the heap holds for it, whatever the
// document's shape (so a bound in bytes is a bound on memory; its text alone would be 25 to 75
// times under).
func TestDocumentSizeEstimate(t *testing.T) {
	for name, q := range map[string]string{
		"typical":         `query Q($id: ID!) { user(id: $id) { id username email items(limit: 10) { id title owner { username } } } }`,
		"500 fields":      "{ " + strings.Repeat(`user(id:"1") { id username email } `, 500) + "}",
		"5000 short ones": "{ " + strings.Repeat(`id `, 5000) + "}",
		"aliases":         "{ " + strings.Repeat(`a1234: user(id:"1") { id } `, 2000) + "}",
		"comment":         "# " + strings.Repeat("x", 200<<10) + "\n{ __typename }",
		"strings":         "{ " + strings.Repeat(`userByUsername(username: "a\nb`+strings.Repeat("y", 100)+`") { id } `, 300) + "}",
		"fragments":       "query { ...F } fragment F on Query { " + strings.Repeat(`users(limit: 1, filter: {usernamePrefix: "p", emailDomain: "d"}) @include(if: true) { id } `, 300) + "}",
		"variables":       `query($a: [[ID!]!] = [["1"]], $b: String @deprecated) { __typename }`,
	} {
		t.Run(name, func(t *testing.T) {
			// Enough copies that the heap they hold dwarfs what the rest of the process allocates
			// meanwhile (30 copies of the typical document, 26 KB, failed one run in three).
			copies := max(30, (1<<20)/len(q))
			docs := make([]*ast.QueryDocument, copies)
			queries := make([]string, copies)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range docs {
				queries[i] = strings.Clone(q) // each its own text, as distinct requests have
				doc, err := parser.ParseQuery(&ast.Source{Input: queries[i]})
				require.NoError(t, err)
				docs[i] = doc
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			held := float64(after.HeapAlloc-before.HeapAlloc) / float64(copies)
			estimate := float64(documentSize(q, docs[0]))
			t.Logf("%d bytes of text: %.0f bytes held, %.0f estimated (%.2f)", len(q), held, estimate, estimate/held)
			// Never much under; over for small documents (the cache entry's own overhead).
			assert.GreaterOrEqual(t, estimate, 0.8*held)
			assert.LessOrEqual(t, estimate, 1.3*held+1500)
			runtime.KeepAlive(docs)
		})
	}
}

// However many large distinct documents are added, the cache never holds more than its bound,
// keeps the ones used last, and keeps no document larger than its per-entry limit.
func TestSizedCacheBoundedByBytes(t *testing.T) {
	const maxBytes, maxEntry = 4 << 20, 256 << 10
	ctx := context.Background()
	c := newSizedCache(maxBytes, maxEntry, 0, documentSize)
	parse := func(q string) *ast.QueryDocument {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		require.NoError(t, err)
		return doc
	}
	hot := `{ users(limit: 1) { id } }`
	c.Add(ctx, hot, parse(hot))
	added, peak := 0, 0
	for i := range 500 {
		q := fmt.Sprintf("query Q%d { %s }", i, strings.Repeat(`user(id:"1") { id username } `, 100))
		doc := parse(q)
		c.Add(ctx, q, doc)
		added += documentSize(q, doc)
		peak = max(peak, c.Bytes())
		require.LessOrEqual(t, c.Bytes(), maxBytes, "after %d documents", i+1)
		_, ok := c.Get(ctx, hot) // used all along: never evicted
		require.True(t, ok, "after %d documents", i+1)
	}
	t.Logf("added %d MB of documents, the cache peaked at %d KB in %d entries", added>>20, peak>>10, c.Len())
	require.Greater(t, added, 10*maxBytes)
	assert.Greater(t, peak, maxBytes/2, "the bound is used")

	// The byte count is the sum of what the entries hold.
	sum := 0
	for el := c.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*cacheEntry[*ast.QueryDocument])
		sum += documentSize(e.key, e.value)
	}
	assert.Equal(t, sum, c.Bytes())

	// Too large for one entry: parsed each time, never kept, and evicts nothing.
	before := c.Len()
	big := "{ " + strings.Repeat(`user(id:"1") { id username email } `, 500) + "}"
	require.Greater(t, documentSize(big, parse(big)), maxEntry)
	c.Add(ctx, big, parse(big))
	_, ok := c.Get(ctx, big)
	assert.False(t, ok)
	assert.Equal(t, before, c.Len())

	// The entry count bounds it too, when set.
	few := newSizedCache(maxBytes, maxEntry, 3, persistedSize)
	for i := range 10 {
		few.Add(ctx, fmt.Sprint(i), "{ __typename }")
	}
	assert.Equal(t, 3, few.Len())
	_, ok = few.Get(ctx, "9")
	assert.True(t, ok)
}
