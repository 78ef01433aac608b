package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// refusedCode returns the extensions.code of an error message for the operation id.
func refusedCode(t *testing.T, msg map[string]any, id string) string {
	t.Helper()
	require.Equal(t, "error", msg["type"], "an error for the subscribe, not a silent accept: %v", msg)
	code, message := operationError(t, msg, id)
	assert.NotEmpty(t, message)
	return code
}

// closeCode waits for the server to close the connection and returns the close code and reason.
func (c *wsClient) closeCode(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	for {
		switch msg := c.read(timeout); msg["type"] {
		case "closed":
			var ce websocket.CloseError
			require.ErrorAs(c.t, c.err, &ce, "closed without a close frame")
			return ce.Code, ce.Reason
		case "timeout":
			c.t.Fatalf("the connection stayed open for %s", timeout)
		}
	}
}

// One websocket holds at most SubscriptionsPerConnection operations: the next subscribe gets an
// error with TOO_MANY_SUBSCRIPTIONS (10,000 were accepted before, +150 MB), and the connection
// stays usable: ending one makes room for another.
func TestSubscriptionsPerConnectionCapped(t *testing.T) {
	in := startInstanceWith(t, dbtest.URL(t), api.Limits{SubscriptionsPerConnection: 3})
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			c, err := dial(t, in, proto, "")
			require.NoError(t, err)
			for i := range 3 {
				c.subscribe(fmt.Sprint("s", i), `subscription { userCreated { username } }`, nil)
			}
			in.waitSubscribers(t, 3)
			for i := 3; i < 6; i++ {
				c.subscribe(fmt.Sprint("s", i), `subscription { userCreated { username } }`, nil)
				assert.Equal(t, "TOO_MANY_SUBSCRIPTIONS", refusedCode(t, c.read(5*time.Second), fmt.Sprint("s", i)))
			}
			assert.Equal(t, 3, in.fanout.Subscribers())

			// Ending one makes room for the next.
			stop := "complete"
			if proto == "graphql-ws" {
				stop = "stop"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, wsjson.Write(ctx, c.conn, map[string]any{"id": "s0", "type": stop}))
			if proto == "graphql-ws" { // gqlgen answers a stop; graphql-transport-ws answers nothing
				msg := c.read(5 * time.Second)
				require.Equal(t, "complete", msg["type"], "%v", msg)
			}
			in.waitSubscribers(t, 2)
			c.subscribe("s6", `subscription { userCreated { username } }`, nil)
			in.waitSubscribers(t, 3)
			in.createUser(t, "capped_"+strings.ReplaceAll(proto, "-", "_"))
			got := map[any]bool{}
			for range 3 {
				msg := c.read(5 * time.Second)
				require.Contains(t, []any{"next", "data"}, msg["type"], "%v", msg)
				got[msg["id"]] = true
			}
			assert.Equal(t, map[any]bool{"s1": true, "s2": true, "s6": true}, got)
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
			in.waitSubscribers(t, 0)
		})
	}
}

// The instance holds at most Subscriptions subscriptions, websockets and server-sent events
// together; queries still run; a subscription that ends makes room.
func TestSubscriptionsPerInstanceCapped(t *testing.T) {
	in := startInstanceWith(t, dbtest.URL(t), api.Limits{Subscriptions: 3})
	a, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	b, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	a.subscribe("a1", `subscription { userCreated { username } }`, nil)
	a.subscribe("a2", `subscription { userDeleted }`, nil)
	b.subscribe("b1", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 3)

	b.subscribe("b2", `subscription { userCreated { username } }`, nil)
	assert.Equal(t, "TOO_MANY_SUBSCRIPTIONS", refusedCode(t, b.read(5*time.Second), "b2"))
	lines := sse(t, in, `subscription { itemChanged { kind } }`)
	line := nextLine(lines, 5*time.Second)
	if line == "event: next" {
		line = nextLine(lines, 5*time.Second)
	}
	assert.Contains(t, line, `"code":"TOO_MANY_SUBSCRIPTIONS"`)

	b.subscribe("q", `{ users(limit: 1) { id } }`, nil)
	assert.Equal(t, "next", b.read(5 * time.Second)["type"], "queries are not subscriptions")
	assert.Equal(t, "complete", b.read(5 * time.Second)["type"])

	_ = a.conn.Close(websocket.StatusNormalClosure, "")
	in.waitSubscribers(t, 1)
	for i := 0; ; i++ {
		require.Less(t, i, 50, "no room after a connection with two subscriptions closed")
		id := fmt.Sprint("again", i)
		b.subscribe(id, `subscription { userCreated { username } }`, nil)
		if msg := b.read(100 * time.Millisecond); msg["type"] == "timeout" {
			break // accepted
		} else {
			refusedCode(t, msg, id) // released a moment after the broker's count: try again
		}
	}
	in.waitSubscribers(t, 2)
}

// graphql-transport-ws: a subscribe with the id of an operation still open closes the socket
// with 4409; an id whose operation completed may be used again.
func TestDuplicateSubscriptionIDCloses4409(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	c.subscribe("q", `{ users(limit: 1) { id } }`, nil)
	require.Equal(t, "next", c.read(5 * time.Second)["type"])
	require.Equal(t, "complete", c.read(5 * time.Second)["type"])
	c.subscribe("q", `{ users(limit: 1) { id } }`, nil)
	require.Equal(t, "next", c.read(5 * time.Second)["type"], "a completed id may be used again")
	require.Equal(t, "complete", c.read(5 * time.Second)["type"])

	c.subscribe("a", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)
	c.subscribe("a", `subscription { userDeleted }`, nil)
	code, reason := c.closeCode(5 * time.Second)
	assert.Equal(t, websocket.StatusCode(4409), code)
	assert.Equal(t, "Subscriber for a already exists", reason)
	in.waitSubscribers(t, 0)
}

// graphql-transport-ws: no connection_init within the init timeout closes with 4408 (was 1002).
func TestWebsocketInitTimeoutCloses4408(t *testing.T) {
	in := startInstanceWith(t, dbtest.URL(t), api.Limits{WebsocketInitTimeout: 300 * time.Millisecond})
	for proto, want := range map[string]websocket.StatusCode{"graphql-transport-ws": 4408, "graphql-ws": websocket.StatusProtocolError} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{Subprotocols: []string{proto}})
		require.NoError(t, err)
		start := time.Now()
		_, _, err = conn.Read(ctx)
		var ce websocket.CloseError
		require.ErrorAs(t, err, &ce, proto)
		assert.Equal(t, want, ce.Code, proto)
		if proto == "graphql-transport-ws" {
			assert.Equal(t, "Connection initialisation timeout", ce.Reason)
		}
		assert.Less(t, time.Since(start), 3*time.Second, proto)
		_ = conn.CloseNow()
	}
	// A client that says connection_init in time is not closed.
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	assert.Equal(t, "timeout", c.read(time.Second)["type"])
}

// Distinct valid documents with large comments (each answered at once) fill the parsed-query
// cache only up to its bytes, not up to its count: the heap grows by about the bound (was: by
// every document kept, 1,000 of them by default).
func TestQueryCacheBoundedByBytes(t *testing.T) {
	const bound = 4 << 20
	const n = 300 // 30 MB of documents
	in := startInstanceOptions(t, dbtest.URL(t), api.Options{QueryCacheBytes: bound, QueryCacheSize: 1000})
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	comment := "# " + strings.Repeat("x", 100<<10) + "\n"
	send := func(i int) {
		body, _ := json.Marshal(map[string]any{"query": fmt.Sprintf("%s query Q%d { __typename }", comment, i)})
		resp, err := http.Post("http://"+in.base+"/query", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.NotContains(t, string(b), "errors")
	}
	send(n) // warm up
	before := heap()
	for i := range n {
		send(i)
	}
	grown := int64(heap()) - int64(before)
	t.Logf("%d documents of %d KB: the heap grew by %d KB (bound %d KB)", n, len(comment)>>10, grown>>10, bound>>10)
	assert.Less(t, grown, int64(3*bound))
}
