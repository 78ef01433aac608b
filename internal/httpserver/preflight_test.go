package httpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/httpserver"
)

// A request whose client has left is not parsed or validated: that work takes no context, so
// it is skipped before it starts. (Before, every such document was parsed and validated, then
// dropped.)
func TestNothingIsParsedForAClientThatLeft(t *testing.T) {
	db, err := dbtest.Open(dbtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	logger := slog.New(slog.DiscardHandler)
	h := httpserver.Handler(httpserver.Routes{GraphQL: api.New(&graph.Resolver{DB: db}, api.Options{Logger: logger}), Logger: logger})

	// Distinct documents (no cache hit) near the field limit: each costs milliseconds to parse
	// and validate.
	doc := func(i int) string {
		return fmt.Sprintf(`query Q%d { users(limit: 1) { %s } }`, i, strings.Repeat("id ", 480))
	}
	serve := func(ctx context.Context, i int) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]any{"query": doc(i)})
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/query", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// The same documents for a client that stays cost this much.
	const n = 60
	before := cpuTime(t)
	for i := range n {
		require.Equal(t, http.StatusOK, serve(context.Background(), i).Code)
	}
	served := cpuTime(t) - before

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	before = cpuTime(t)
	for i := range n {
		rec := serve(gone, n+i)
		assert.Contains(t, rec.Body.String(), "CLIENT_CLOSED_REQUEST", "refused before it was read")
	}
	skipped := cpuTime(t) - before
	t.Logf("%d documents: %v of CPU served, %v for a client that left", n, served, skipped)
	assert.Less(t, skipped, served/4, "the documents of a client that left were not parsed")
	assert.Less(t, skipped, 250*time.Millisecond)
}
