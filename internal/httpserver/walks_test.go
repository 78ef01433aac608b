package httpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// gqlparser's validation walks a fragment once per operation, every rule at once: documents
// within the token limit that spread one big fragment from many operations cost it seconds (3.9 s
// and 9.1 s of CPU, found by review) before the field limit's own rule could refuse them. They are
// counted, directives included, before validation.
func TestDocumentsAreCountedBeforeValidation(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	many := func(ops int, fragment string) string {
		var b strings.Builder
		for i := range ops {
			fmt.Fprintf(&b, "query a%d{...F}", i)
		}
		return b.String() + "fragment F on Query{" + fragment + "}"
	}
	for name, doc := range map[string]string{
		"one fragment, 1,250 operations":   many(1250, strings.Repeat("__typename ", 7000)),
		"3,500 directives, 250 operations": many(250, "__typename"+strings.Repeat(" @x", 3500)),
		"3,500 directives, one operation":  many(1, "__typename"+strings.Repeat(" @x", 3500)),
	} {
		t.Run(name, func(t *testing.T) {
			before := cpuTime(t)
			body, _ := json.Marshal(map[string]any{"query": doc, "operationName": "a0"})
			a := post(t, "http://"+in.base, body)
			used := cpuTime(t) - before
			t.Logf("%d bytes: %d %s in %v of CPU", len(doc), a.status, a.code(), used)
			assert.Equal(t, "TOO_MANY_FIELDS", a.code(), "%.300s", a.body)
			assert.Less(t, used, maxRefusalCPU)
		})
	}
}

// A document refused with our own codes is answered over a websocket with the bounded list of
// errors (it was sent whole: 100 errors for 100 operations, 16 KB).
func TestWebsocketRefusalsAreBounded(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "query a%d{__schema{__typename} b:__schema{__typename}}", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, wsjson.Write(ctx, c.conn, map[string]any{"id": "1", "type": "subscribe",
		"payload": map[string]any{"query": b.String(), "operationName": "a0"}}))
	msg := c.read(5 * time.Second)
	require.Equal(t, "error", msg["type"], "refused before it ran: %v", msg)
	errs, _ := msg["payload"].([]any)
	assert.NotEmpty(t, errs)
	assert.LessOrEqual(t, len(errs), api.MaxErrors+1)
}

// A duplicate id too long to quote whole in a close reason (at most 123 bytes) still closes the
// socket with 4409 (it closed without a close frame).
func TestDuplicateLongIDCloses4409(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	id := strings.Repeat("x", 200)
	c.subscribe(id, `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)
	c.subscribe(id, `subscription { userDeleted }`, nil)
	for {
		msg := c.read(5 * time.Second)
		require.NotEqual(t, "timeout", msg["type"], "the socket stayed open")
		if msg["type"] == "closed" {
			assert.Equal(t, websocket.StatusCode(4409), websocket.CloseStatus(c.err), "closed by %v", c.err)
			return
		}
	}
}
