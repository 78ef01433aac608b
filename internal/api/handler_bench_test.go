package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/users"
)

// BenchmarkHandler runs the operations of make bench through the in-process handler (no network,
// the real database), one at a time, to track time, CPU time and allocations per request:
//
//	make gobench BENCH=Handler
func BenchmarkHandler(b *testing.B) {
	const seeded = 2_000
	ctx := context.Background()
	db := dbtest.Migrated(b)
	for _, stmt := range []string{
		"SET session_replication_role = replica", // no change notifications for the seed
		fmt.Sprintf(`INSERT INTO users (username, email) SELECT 'user_' || g, 'user_' || g || '@bench.example' FROM generate_series(1, %d) g`, seeded),
		fmt.Sprintf(`INSERT INTO items (owner_id, title) SELECT 1 + (g - 1) %% %d, 'item ' || g FROM generate_series(1, %d) g`, seeded, 5*seeded),
		"RESET session_replication_role",
		"ANALYZE users", "ANALYZE items",
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(b, err)
	}
	h := api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 100, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	deep := users.CursorOf(&users.User{ID: seeded / 2}, users.OrderByID)

	var run int64 // a new value per sub-benchmark run: created names never repeat
	cases := []struct {
		name string
		body func(i int) string
	}{
		{"user(id)", func(i int) string {
			return `{"query":"query($id: ID!) { user(id: $id) { id username email } }","variables":{"id":"` + strconv.Itoa(1+i%seeded) + `"}}`
		}},
		{"users(limit:10)", func(int) string { return `{"query":"{ users(limit: 10) { id username email } }"}` }},
		{"users(limit:20)", func(int) string { return `{"query":"{ users(limit: 20) { id username email } }"}` }},
		{"usersConnection page 1", func(int) string {
			return `{"query":"{ usersConnection(first: 10) { edges { cursor node { id username email } } pageInfo { hasNextPage endCursor } } }"}`
		}},
		{"usersConnection deep", func(int) string {
			return `{"query":"query($after: String) { usersConnection(first: 10, after: $after) { edges { cursor node { id username email } } pageInfo { hasNextPage endCursor } } }","variables":{"after":"` + deep + `"}}`
		}},
		{"nested 20×5×owner", func(int) string {
			return `{"query":"{ users(limit: 20) { id username items(first: 5) { edges { node { id title owner { id username } } } } } }"}`
		}},
		{"nested connection 20×5×owner", func(int) string { // issue 12's query, as PostGraphile is asked it
			return `{"query":"{ usersConnection(first: 20) { edges { node { id username items(first: 5) { edges { node { id title owner { username } } } } } } } }"}`
		}},
		{"createUser", func(i int) string {
			return fmt.Sprintf(`{"query":"mutation($in: NewUser!) { createUser(input: $in) { id } }","variables":{"in":{"username":"hb%d_%d","email":"hb%d_%d@bench.example"}}}`, run, i, run, i)
		}},
		{"updateUser", func(i int) string {
			return fmt.Sprintf(`{"query":"mutation($id: ID!) { updateUser(id: $id, input: {email: \"u%d_%d@bench.example\"}) { id } }","variables":{"id":"%d"}}`, run, i, 1+i%seeded)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			run = time.Now().UnixNano() % 1e9
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewBufferString(c.body(i)))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
					b.Fatalf("%d: %s", w.Code, w.Body.String())
				}
				i++
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(i), "cpu-µs/op")
		})
	}
}

// cpuTime is the CPU time the process has used (user and system): per operation, what a request
// costs the server's process, without the time it waits for PostgreSQL, which ns/op includes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
