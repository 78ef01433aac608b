package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// Subscribers of the same document with the same variables share one subscription in the broker,
// over both websocket protocols and server-sent events; other variables make another. Each gets
// every event; the group lives until its last subscriber leaves.
func TestIdenticalSubscriptionsShareOneBrokerSubscription(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	const doc = `subscription { userCreated { username } }`
	var clients []*wsClient
	for i, proto := range []string{"graphql-transport-ws", "graphql-transport-ws", "graphql-ws"} {
		c, err := dial(t, in, proto, "")
		require.NoError(t, err)
		c.subscribe(fmt.Sprint("s", i), doc, nil)
		clients = append(clients, c)
	}
	// Two on one connection, with another id.
	clients[0].subscribe("again", doc, nil)
	lines := sse(t, in, doc)
	in.waitSubscribers(t, 5)
	assert.Equal(t, 1, in.broker.Subscribers(), "five subscribers, one subscription in the broker")
	assert.Equal(t, 1, in.fanout.Groups())

	other, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	other.subscribe("own", `subscription($id: ID) { userUpdated(id: $id) { username } }`, map[string]any{"id": nil})
	in.waitSubscribers(t, 6)
	assert.Equal(t, 2, in.broker.Subscribers(), "another document is another subscription")

	in.createUser(t, "shared_event")
	want := map[string]any{"userCreated": map[string]any{"username": "shared_event"}}
	got := map[string]int{}
	for i, c := range clients {
		for range map[int]int{0: 2, 1: 1, 2: 1}[i] {
			msg := c.read(5 * time.Second)
			require.Contains(t, []any{"next", "data"}, msg["type"], "%v", msg)
			assert.Equal(t, want, msg["payload"].(map[string]any)["data"])
			got[msg["id"].(string)]++
		}
	}
	assert.Equal(t, map[string]int{"s0": 1, "again": 1, "s1": 1, "s2": 1}, got, "each subscriber once")
	for {
		line := nextLine(lines, 5*time.Second)
		if line == `data: {"data":{"userCreated":{"username":"shared_event"}}}` {
			break
		}
		require.NotEqual(t, "timeout", line)
	}

	// Leaving one by one: the broker keeps the group's subscription until the last one leaves.
	_ = clients[0].conn.Close(websocket.StatusNormalClosure, "bye")
	in.waitSubscribers(t, 4)
	assert.Equal(t, 2, in.broker.Subscribers())
	in.createUser(t, "after_two_left")
	assert.Equal(t, "after_two_left", clients[1].next(5 * time.Second)["userCreated"].(map[string]any)["username"])
	for _, c := range clients[1:] {
		_ = c.conn.Close(websocket.StatusNormalClosure, "bye")
	}
	_ = other.conn.Close(websocket.StatusNormalClosure, "bye")
	in.waitSubscribers(t, 1) // the server-sent events stream
	require.Eventually(t, func() bool { return in.broker.Subscribers() == 1 }, 10*time.Second, 10*time.Millisecond)
}

// receiveBuffer dials with a receive buffer of n bytes on the client's socket: a client that
// stops reading makes the server's writes to it block soon.
func receiveBuffer(n int) dialOption {
	return func(opts *websocket.DialOptions) {
		d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
			}); cerr != nil {
				return cerr
			}
			return err
		}}
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
}

// Two subscribers share a group; one reads every event of a burst, the other reads nothing. The
// slow one's queue overflows: it ends alone, with EVENTS_DROPPED after what fitted, while the
// fast one gets every event and stays subscribed.
func TestSlowSubscriberEndsAlone(t *testing.T) {
	const (
		buffer = 16
		n      = 1000 // within the broker's buffer (1024): the group itself loses nothing
	)
	in, owner, fast, slow := slowAndFast(t, "slow", "graphql-transport-ws", n, buffer)
	ctx := context.Background()
	require.Equal(t, 1, in.broker.Subscribers(), "one group, one subscription in the broker")
	require.Equal(t, 1, in.fanout.Groups())

	// The burst: each item's deletion is announced. The test reads the fast one only.
	_, err := in.db.ExecContext(ctx, "DELETE FROM items WHERE owner_id = ?", rowOf(t, owner))
	require.NoError(t, err)
	// deleted returns the title of a message's event, an item's deletion.
	deleted := func(msg map[string]any, id string) string {
		t.Helper()
		require.Equal(t, id, msg["id"])
		payload := msg["payload"].(map[string]any)
		require.Nil(t, payload["errors"], "event errors: %v", payload["errors"])
		ev := payload["data"].(map[string]any)["itemChanged"].(map[string]any)
		require.Equal(t, "DELETED", ev["kind"])
		return ev["item"].(map[string]any)["title"].(string)
	}
	var order []string // the fast one's events, in order
	seen := map[string]bool{}
	for range n {
		msg := fast.read(30 * time.Second)
		require.Equal(t, "next", msg["type"], "after %d of %d events: %v", len(order), n, msg)
		title := deleted(msg, "fast")
		order, seen[title] = append(order, title), true
	}
	assert.Len(t, seen, n, "the fast subscriber got every event of the burst, each once")

	// The slow one left its group; the group and its subscription in the broker stay for the
	// fast one, which hears what comes next.
	in.waitSubscribers(t, 1)
	assert.Equal(t, 1, in.broker.Subscribers())
	in.mutate(t, `mutation($o: ID!) { createItem(input: {ownerId: $o, title: "after the burst"}) { id } }`, map[string]any{"o": owner})
	ev := fast.next(10 * time.Second)["itemChanged"].(map[string]any)
	assert.Equal(t, "CREATED", ev["kind"])
	assert.Equal(t, "after the burst", ev["item"].(map[string]any)["title"])

	// The slow one, read at last: what fitted (what the sockets held, then its whole queue),
	// the beginning of the burst in the same order with no gap, then an error for its
	// operation, not complete.
	got := 0
	for {
		msg := slow.read(30 * time.Second)
		if msg["type"] != "next" {
			assert.Equal(t, "EVENTS_DROPPED", droppedError(t, msg, "slow"), "after %d events", got)
			break
		}
		require.Less(t, got, n, "the slow subscriber got the whole burst: it never fell behind")
		require.Equal(t, order[got], deleted(msg, "slow"), "event %d", got)
		got++
	}
	t.Logf("the slow subscriber got %d of %d events, then EVENTS_DROPPED", got, n)
	assert.GreaterOrEqual(t, got, buffer, "its full queue is sent before its error")
	assert.Equal(t, "timeout", slow.read(500 * time.Millisecond)["type"], "nothing after the error")
	assert.Equal(t, 1, in.fanout.Subscribers())
}

// A client may send its first message in the same packet as its upgrade request: the server
// has then read it along with the request, and must still take it (found when the server's
// transport began to give coder/websocket buffers of its own: the message was lost, and the
// socket waited for a connection_init that had come).
func TestFirstMessageWithTheUpgradeRequest(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	conn, err := net.Dial("tcp", in.base)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	init := []byte(`{"type":"connection_init"}`)
	mask := []byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(init))}, mask...) // a final text frame, masked
	for i, b := range init {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET /query HTTP/1.1\r\nHost: " + in.base + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	_, err = conn.Write(append([]byte(req), frame...)) // one write: one packet on loopback
	require.NoError(t, err)

	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	for {
		head := make([]byte, 2)
		_, err := io.ReadFull(r, head)
		require.NoError(t, err, "the server answers the connection_init")
		n := int(head[1] & 0x7f)
		require.Less(t, n, 126, "a short message")
		payload := make([]byte, n)
		_, err = io.ReadFull(r, payload)
		require.NoError(t, err)
		var msg map[string]any
		require.NoError(t, json.Unmarshal(payload, &msg))
		if msg["type"] == "connection_ack" {
			return
		}
		require.Equal(t, "ping", msg["type"], "%s", payload)
	}
}

// slowAndFast starts an instance whose subscribers may have buffer events waiting, gives a user
// of its own n items, and subscribes twice to their changes with one document (some 12 KB an
// event): fast over graphql-transport-ws, slow over slowProto with a receive buffer of 1 KB. It
// returns once both listen.
func slowAndFast(t *testing.T, name, slowProto string, n, buffer int) (in *instance, owner string, fast, slow *wsClient) {
	t.Helper()
	// A keep-alive longer than the test: the slow client, reading nothing, answers no ping, and
	// a missed pong would close its connection before it reads its error.
	in = startInstanceOptions(t, dbtest.URL(t), api.Options{
		QueryCacheSize: 10, KeepAlive: time.Minute, Limits: api.Limits{SubscriptionBuffer: buffer},
	})
	owner = in.createUser(t, fmt.Sprintf("%s_%d", name, time.Now().UnixNano()%1e12)) // a name of its own: -count runs share the database
	// Titles of 200 characters (the most an item may have), each asked for 60 times over: some
	// 12 KB an event, 12 MB for a burst of 1,000, more than the sockets can hold (a send buffer
	// grows to 4 MB at most by default), so the slow one's queue must overflow.
	_, err := in.db.ExecContext(context.Background(), "INSERT INTO items (owner_id, title) SELECT ?, rpad('burst ' || i || ' ', 200, 'x') FROM generate_series(1, ?) i",
		rowOf(t, owner), n)
	require.NoError(t, err)
	var aliases strings.Builder
	for i := range 60 {
		fmt.Fprintf(&aliases, " t%d: title", i)
	}
	doc := `subscription($o: ID) { itemChanged(ownerId: $o) { kind item { id title owner { username }` + aliases.String() + ` } } }`
	vars := map[string]any{"o": owner}
	fast, err = dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	slow, err = dial(t, in, slowProto, "", receiveBuffer(1024))
	require.NoError(t, err)
	fast.subscribe("fast", doc, vars)
	slow.subscribe("slow", doc, vars)
	in.waitSubscribers(t, 2)
	return in, owner, fast, slow
}
