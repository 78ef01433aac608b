package httpserver_test

// Review of internal/api/wsconn.go and internal/api/fanout.go: each test here demonstrates a
// defect (it fails on the code reviewed).

import (
	"context"
	"fmt"
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

// drainFor collects every message until none came for quiet.
func (c *wsClient) drainFor(quiet time.Duration) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	for {
		msg := c.read(quiet)
		if msg["type"] == "timeout" || msg["type"] == "closed" {
			return out
		}
		out = append(out, msg)
	}
}

func (c *wsClient) send(msg map[string]any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(c.t, wsjson.Write(ctx, c.conn, msg))
}

// graphql-transport-ws (PROTOCOL.md, Complete): "Even if the client sent a Complete message for a
// single-result-operation before it resolved, the result should not be sent through once it
// does." wsOp.execute (wsconn.go:391-397) sends every response the executor returns without
// looking at op.over: a query the client completed while it ran still gets its `next`, after the
// `complete` the server already sent for it (and, were the id reused, it would land on the new
// operation).
func TestNoResultAfterTheClientCompletes(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	ctx := context.Background()
	// The query waits on a lock the test holds: it is certainly running when the client completes it.
	tx, err := in.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	c.subscribe("q", `{ users(limit: 1) { id } }`, nil)
	require.Eventually(t, func() bool {
		var n int
		_ = in.db.NewRaw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(ctx, &n)
		return n > 0
	}, 10*time.Second, 10*time.Millisecond, "the query never waited on the lock")

	c.send(map[string]any{"id": "q", "type": "complete"})
	_ = tx.Rollback() // whatever the query still does, it may do now
	for _, m := range c.drainFor(3 * time.Second) {
		assert.NotEqual(t, "q", m["id"], "a message for q after the client completed it: %v", m)
	}
}

// A client that completes an operation may reuse its id at once (the id is free on the client's
// side as soon as it sends complete: graphql-ws' client drops the id's listener then). The server
// answers the client's complete with a complete of its own (wsconn.go:242 via wsOp.finish,
// wsconn.go:427), which the reference server (graphql-ws) does not send: a client that reused the
// id takes it for the end of its new subscription, and the new subscription's events then come
// after its complete.
func TestReusedIDIsNotEndedByAnEcho(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	const doc = `subscription { userCreated { username } }`
	c.subscribe("x", doc, nil)
	in.waitSubscribers(t, 1)
	// The client ends x and subscribes again with the same id, at once.
	c.send(map[string]any{"id": "x", "type": "complete"})
	c.subscribe("x", doc, nil)

	var forX []string
	for i := 0; ; i++ {
		require.Less(t, i, 50, "the new subscription never got an event: %v", forX)
		in.createUser(t, fmt.Sprintf("reuse_%d_%d", i, time.Now().UnixNano()%1e9))
		msg := c.read(time.Second)
		for msg["type"] != "timeout" {
			require.NotEqual(t, "closed", msg["type"])
			if msg["id"] == "x" {
				forX = append(forX, msg["type"].(string))
			}
			if msg["type"] == "next" {
				break
			}
			msg = c.read(time.Second)
		}
		if len(forX) > 0 && forX[len(forX)-1] == "next" {
			break
		}
	}
	assert.Equal(t, "next", forX[0],
		"after the client's own complete, the first message for the reused id x is the new subscription's event; got %v", forX)
}

// The write timeout is meant for "a write that takes longer" (wsServer.writeTimeout): a client
// that does not read. drain (wsconn.go:553-557) arms it once per batch, and a batch is everything
// queued while the previous one was written: a burst of events is one batch, and a client that
// reads steadily, only slower than the burst came, is cut (1006) once writing the whole batch
// took writeTimeout (10 s at least), with events still queued that it was reading.
func TestSteadyReaderOfABurstIsNotCut(t *testing.T) {
	const n = 600
	// A keep-alive of 5 s: a write timeout of 10 s (max(10s, 2*keepAlive)), and a missed pong
	// (the ping waits behind the burst too) no sooner than 15 s.
	in := startInstanceOptions(t, dbtest.URL(t), api.Options{QueryCacheSize: 10, KeepAlive: 5 * time.Second})
	owner := in.createUser(t, fmt.Sprintf("steady_%d", time.Now().UnixNano()%1e12))
	ctx := context.Background()
	_, err := in.db.ExecContext(ctx, "INSERT INTO items (owner_id, title) SELECT ?, rpad('steady ' || i || ' ', 200, 'x') FROM generate_series(1, ?) i",
		rowOf(t, owner), n)
	require.NoError(t, err)
	var aliases strings.Builder
	for i := range 60 {
		fmt.Fprintf(&aliases, " t%d: title", i)
	}
	doc := `subscription($o: ID) { itemChanged(ownerId: $o) { kind item { id` + aliases.String() + ` } } }`
	c, err := dial(t, in, "graphql-transport-ws", "", receiveBuffer(1024))
	require.NoError(t, err)
	c.subscribe("steady", doc, map[string]any{"o": owner})
	in.waitSubscribers(t, 1)
	_, err = in.db.ExecContext(ctx, "DELETE FROM items WHERE owner_id = ?", rowOf(t, owner))
	require.NoError(t, err)

	// The client reads every event, one each 30 ms: about 18 s for the burst (some 12 KB each).
	got := 0
	for got < n {
		msg := c.read(30 * time.Second)
		if msg["type"] != "next" {
			t.Logf("server log: %s", grepLines(in.logs.String(), "websocket closed"))
			require.Equal(t, "next", msg["type"], "a client reading steadily, after %d of %d events: %v (%v)", got, n, msg, c.err)
		}
		got++
		time.Sleep(30 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Fanout pushes an event into a wsOp (wsOp.push, wsconn.go:437-451): it checks op.over under
// op.mu, lets go of it, then queues the event (enqueue takes wsConn.mu). A client's complete
// (handle -> wsOp.finish) may run in between: it marks the op over and queues `complete`, and
// the event is queued after it: a `next` after `complete` for the same id. Many operations of one
// group on one connection, completed one by one during a burst of events; for each id, nothing
// may follow the server's complete. (A race: this test may need several runs, or -race, to hit it.)
func TestNoEventAfterComplete(t *testing.T) {
	const (
		ops = 90
		n   = 1000 // within the broker's buffer
	)
	in := startInstanceOptions(t, dbtest.URL(t), api.Options{QueryCacheSize: 10, KeepAlive: time.Minute})
	for round := range 3 {
		owner := in.createUser(t, fmt.Sprintf("race_%d_%d", round, time.Now().UnixNano()%1e12))
		ctx := context.Background()
		_, err := in.db.ExecContext(ctx, "INSERT INTO items (owner_id, title) SELECT ?, 'race ' || i FROM generate_series(1, ?) i",
			rowOf(t, owner), n)
		require.NoError(t, err)
		c, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		doc := `subscription($o: ID) { itemChanged(ownerId: $o) { kind item { id title } } }`
		for i := range ops {
			c.subscribe(fmt.Sprint("s", i), doc, map[string]any{"o": owner})
		}
		in.waitSubscribers(t, ops)
		// The burst, and the completes while it is sent.
		go func() { _, _ = in.db.ExecContext(ctx, "DELETE FROM items WHERE owner_id = ?", rowOf(t, owner)) }()
		completed, clientCompleted := map[string]bool{}, map[string]bool{} // by the server, by the client
		var bad []string
		// observe notes a next after the server ended its operation, and the server's ends.
		observe := func(msg map[string]any) {
			id, _ := msg["id"].(string)
			if completed[id] && msg["type"] == "next" {
				bad = append(bad, id)
			}
			if msg["type"] == "complete" || msg["type"] == "error" {
				if msg["type"] == "error" {
					t.Logf("round %d: error for %s: %v", round, id, msg["payload"])
				}
				completed[id] = true
			}
		}
		seen := 0
		for i := range ops {
			// Wait for a few events, so that completes land during the burst.
			for seen < (i+1)*(n*ops/ops/ops+5) && seen < n*ops/2 {
				msg := c.read(30 * time.Second)
				require.NotContains(t, []any{"timeout", "closed"}, msg["type"])
				observe(msg)
				seen++
			}
			c.send(map[string]any{"id": fmt.Sprint("s", i), "type": "complete"})
			clientCompleted[fmt.Sprint("s", i)] = true
		}
		for _, msg := range c.drainFor(2 * time.Second) {
			observe(msg)
		}
		require.Empty(t, bad, "round %d: ids with a next after their complete", round)
		// Every operation ended: by the server (an error, a complete) or by the client, which
		// the server does not answer.
		assert.Len(t, clientCompleted, ops)
		in.waitSubscribers(t, 0)
		_ = c.conn.CloseNow()
		in.waitSubscribers(t, 0)
	}
}

// The legacy path (gqlgen's transport, a pull subscriber of Fanout): a graphql-ws subscriber
// that falls behind by the whole buffer ends alone with an error message carrying
// EVENTS_DROPPED, after what fitted, while a fast graphql-transport-ws subscriber of the same
// group keeps everything.
func TestLegacySlowSubscriberEndsAlone(t *testing.T) {
	const (
		buffer = 16
		n      = 1000
	)
	in, owner, fast, slow := slowAndFast(t, "legacy_slow", "graphql-ws", n, buffer)
	ctx := context.Background()
	_, err := in.db.ExecContext(ctx, "DELETE FROM items WHERE owner_id = ?", rowOf(t, owner))
	require.NoError(t, err)
	for i := range n {
		msg := fast.read(30 * time.Second)
		require.Equal(t, "next", msg["type"], "after %d: %v", i, msg)
	}
	in.waitSubscribers(t, 1)
	got := 0
	for {
		msg := slow.read(30 * time.Second)
		if msg["type"] != "data" {
			assert.Equal(t, "EVENTS_DROPPED", droppedError(t, msg, "slow"), "after %d events", got)
			break
		}
		got++
		require.Less(t, got, n)
	}
	t.Logf("legacy slow subscriber: %d events, then EVENTS_DROPPED", got)
	assert.Equal(t, "timeout", slow.read(500 * time.Millisecond)["type"], "nothing after the error")
}

// A client that sends pings and reads nothing: each ping's pong echoes its payload (up to the
// read limit, 1 MiB), and is queued (wsconn.go:226) while the writer waits on the client. The
// queue is bounded by count only (maxQueued = 4096 messages, wsconn.go:507-519), not by bytes,
// and the reader never waits for the writer (gqlgen's transport wrote the pong on the reading
// goroutine: a client that did not read stopped being read). So one connection makes the server
// hold up to 4 GiB, byte for byte what it sent, for up to the write timeout. Here 300 pings of
// 1 MB: the server's heap grows by some 300 MB for one connection, still open.
func TestUnreadPongsAreBounded(t *testing.T) {
	const (
		pings = 300
		size  = 1000_000
		bound = 32 << 20 // what one connection that reads nothing may make the server hold
	)
	in := startInstance(t, dbtest.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"}, HTTPClient: receiveBufferClient(1024),
	})
	require.NoError(t, err)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(-1)
	require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}))
	var ack map[string]any
	require.NoError(t, wsjson.Read(ctx, conn, &ack))
	require.Equal(t, "connection_ack", ack["type"])

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	// The heap is watched while the pings go and a while after (the kernel's buffers hold a few
	// MB): the most it grew by.
	var grown uint64
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for quiet := 0; quiet < 20; {
			if h := heap(); h > before && h-before > grown {
				grown = h - before
			}
			select {
			case <-done:
				quiet++
			default:
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	msg := []byte(`{"type":"ping","payload":{"p":"` + strings.Repeat("x", size) + `"}}`)
	for range pings {
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			break // closed: what the server should do before it holds much
		}
	}
	close(done)
	<-watched
	t.Logf("the server's heap grew by %d MB for one connection that reads nothing", grown>>20)
	assert.LessOrEqual(t, grown, uint64(bound), "one connection that reads nothing made the server hold %d MB", grown>>20)
}

func receiveBufferClient(n int) *http.Client {
	opts := &websocket.DialOptions{}
	receiveBuffer(n)(opts)
	return opts.HTTPClient
}

// SubscriptionsPerConnection: "complete one first". A client at the limit that completes one and
// subscribes another in the same breath is refused with TOO_MANY_SUBSCRIPTIONS: the reader
// handles complete (wsOp.finish, wsconn.go:420: op.cancel) and then the subscribe at once, while
// the count is given back by subscriptionLimits' context.AfterFunc, on a goroutine of its own,
// some time later. (The server's own complete is no better a signal: it is queued right after
// op.cancel, before that goroutine need have run.)
func TestCompleteThenSubscribeAtTheLimit(t *testing.T) {
	// (graphql-ws, through gqlgen's transport, is refused too: subscriptionLimits is older than
	// wsconn.go; the new reader could have given the count back before reading on.)
	for _, proto := range []string{"graphql-transport-ws"} {
		t.Run(proto, func(t *testing.T) { completeThenSubscribe(t, proto) })
	}
}

func completeThenSubscribe(t *testing.T, proto string) {
	in := startInstanceWith(t, dbtest.URL(t), api.Limits{SubscriptionsPerConnection: 1})
	c, err := dial(t, in, proto, "")
	require.NoError(t, err)
	const doc = `subscription { userCreated { username } }`
	c.subscribe("s0", doc, nil)
	in.waitSubscribers(t, 1)
	refused := 0
	for i := 1; i <= 20; i++ {
		prev, id := fmt.Sprint("s", i-1), fmt.Sprint("s", i)
		stop := "complete"
		if proto == "graphql-ws" {
			stop = "stop"
		}
		c.send(map[string]any{"id": prev, "type": stop})
		c.subscribe(id, doc, nil)
		if proto == "graphql-ws" { // gqlgen answers a stop with complete
			msg := c.read(5 * time.Second)
			require.Equal(t, "complete", msg["type"], "%v", msg)
			require.Equal(t, prev, msg["id"])
		}
		if msg := c.read(300 * time.Millisecond); msg["type"] == "error" {
			refused++
			require.Equal(t, id, msg["id"])
			// Subscribe again until admitted, so that the next round starts at the limit.
			for j := 0; ; j++ {
				require.Less(t, j, 50)
				c.subscribe(id, doc, nil)
				if m := c.read(300 * time.Millisecond); m["type"] == "timeout" {
					break
				}
			}
		}
		in.waitSubscribers(t, 1)
	}
	assert.Zero(t, refused, "of 20 complete-then-subscribe at the limit, %d were refused TOO_MANY_SUBSCRIPTIONS", refused)
}
