package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/httpserver"
	"github.com/wikigraph/wikigraph/internal/logging"
)

// writer is a server (pool, GraphQL, HTTP) on 127.0.0.1 for the tests of write outcomes.
type writer struct {
	base string
	db   *bun.DB
	logs *syncBuffer
}

type writerOptions struct {
	timeout time.Duration // the operation deadline (default 10s)
	wrap    func(db *bun.DB, next http.Handler) http.Handler
}

func startWriter(t *testing.T, dbURL string, o writerOptions) *writer {
	t.Helper()
	db, err := dbtest.Open(dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	w := &writer{db: db, logs: &syncBuffer{}}
	logger := logging.New(w.logs, "json", slog.LevelInfo)
	var gql http.Handler = api.New(&graph.Resolver{DB: db}, api.Options{
		QueryCacheSize: 10, Logger: logger, Limits: api.Limits{Timeout: o.timeout},
	})
	routes := httpserver.Routes{
		GraphQL: gql, Logger: logger,
		Ready: func(ctx context.Context) error { return database.Ready(ctx, db) },
	}
	if o.wrap != nil {
		routes.Idempotency = func(next http.Handler) http.Handler { return o.wrap(db, next) }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpserver.Serve(ctx, httpserver.Server(httpserver.Handler(routes), logger, httpserver.Timeouts{}), ln, 5*time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	w.base = "http://" + ln.Addr().String()
	return w
}

// answer is one HTTP answer of /query.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var out struct {
		Errors []struct{ Extensions map[string]any }
	}
	_ = json.Unmarshal(a.body, &out)
	if len(out.Errors) == 0 {
		return ""
	}
	c, _ := out.Errors[0].Extensions["code"].(string)
	return c
}

func (a answer) data(t *testing.T) map[string]any {
	t.Helper()
	var out struct{ Data map[string]any }
	require.NoError(t, json.Unmarshal(a.body, &out), "%s", a.body)
	return out.Data
}

func body(t *testing.T, query string, vars map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	return b
}

// post sends body to base's /query with the headers (name, value pairs).
func post(t *testing.T, base string, b []byte, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/query", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: got}
}

// lockTable holds an ACCESS EXCLUSIVE lock on table in a transaction of its own until the
// returned function is called (or the test ends).
func lockTable(t *testing.T, db *bun.DB, table, mode string) (release func()) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(context.Background(), "LOCK TABLE "+table+" IN "+mode+" MODE")
	require.NoError(t, err)
	released := false
	release = func() {
		if !released {
			released = true
			_ = tx.Rollback()
		}
	}
	t.Cleanup(release)
	return release
}

// waitBlocked waits until a statement matching pattern waits for a lock.
func waitBlocked(t *testing.T, db *bun.DB, pattern string) {
	t.Helper()
	require.Eventually(t, func() bool { return lockWaiters(db, pattern) > 0 }, 20*time.Second, 10*time.Millisecond,
		"no statement like %q waits for its lock", pattern)
}

// lockWaiters counts the statements like pattern that wait for a lock (-1 on error).
func lockWaiters(db *bun.DB, pattern string) int {
	n := -1
	// This database's only: the packages' tests run at once, each in a database of the cluster.
	_ = db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND query ILIKE ?`, pattern).
		Scan(context.Background(), &n)
	return n
}

func count(t *testing.T, db *bun.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.NewRaw(query, args...).Scan(context.Background(), &n))
	return n
}

// A mutation whose write committed answers success even when its deadline fires while the
// payload's nested fields load: the payload's reads are not bound by the deadline once the
// write is in. (It answered TIMEOUT, data null, with the user written.)
func TestCommittedWriteAnswersSuccessPastItsDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	w := startWriter(t, dbtest.URL(t), writerOptions{timeout: timeout})
	// Inserting a user does not touch items; reading the new user's items waits for the lock.
	release := lockTable(t, w.db, "items", "ACCESS EXCLUSIVE")
	name := fmt.Sprintf("late%d", time.Now().UnixNano()%1e9)
	got := make(chan answer, 1)
	go func() {
		got <- post(t, w.base, body(t, `mutation($u: String!, $e: String!) {
			createUser(input: {username: $u, email: $e}) { id username items { totalCount } } }`,
			map[string]any{"u": name, "e": name + "@example.com"}))
	}()
	waitBlocked(t, w.db, "%items%")
	time.Sleep(3 * timeout) // the deadline fires while the payload waits
	release()
	a := <-got
	require.Equal(t, 1, count(t, w.db, "SELECT count(*) FROM users WHERE username = ?", name), "the user was written")
	assert.Equal(t, "", a.code(), "%s", a.body)
	user, _ := a.data(t)["createUser"].(map[string]any)
	require.NotNil(t, user, "%s", a.body)
	assert.Equal(t, name, user["username"])
	assert.Equal(t, map[string]any{"totalCount": float64(0)}, user["items"])
}

// A write whose statement was sent when its deadline fired may or may not have been applied:
// it answers OUTCOME_UNKNOWN (it answered TIMEOUT, and a client retried it). A write that never
// reached the database keeps its code, and so does a read past its deadline.
func TestUnknownOutcomeHasItsOwnCode(t *testing.T) {
	const timeout = 300 * time.Millisecond
	w := startWriter(t, dbtest.URL(t), writerOptions{timeout: timeout})
	var owner int64
	name := fmt.Sprintf("unk%d", time.Now().UnixNano()%1e9)
	require.NoError(t, w.db.NewRaw("INSERT INTO users (username, email) VALUES (?, ?) RETURNING id", name, name+"@example.com").
		Scan(context.Background(), &owner))
	createItem := body(t, `mutation($o: ID!) { createItem(input: {ownerId: $o, title: "maybe"}) { id } }`,
		map[string]any{"o": fmt.Sprint(owner)})

	t.Run("sent, no reply by the deadline", func(t *testing.T) {
		release := lockTable(t, w.db, "items", "SHARE") // an INSERT waits; reads do not
		a := post(t, w.base, createItem)
		release()
		assert.Equal(t, "OUTCOME_UNKNOWN", a.code(), "%s", a.body)
		assert.Contains(t, string(a.body), "may or may not have been applied")
	})
	t.Run("a read past its deadline", func(t *testing.T) {
		release := lockTable(t, w.db, "items", "ACCESS EXCLUSIVE")
		a := post(t, w.base, body(t, `{ items(limit: 1) { id } }`, nil))
		release()
		assert.Equal(t, "TIMEOUT", a.code(), "%s", a.body)
	})
	t.Run("never sent: no database", func(t *testing.T) {
		down := startWriter(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable", writerOptions{timeout: timeout})
		a := post(t, down.base, createItem)
		assert.Equal(t, "SERVICE_UNAVAILABLE", a.code(), "%s", a.body)
	})
}
