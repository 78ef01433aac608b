package httpserver_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
