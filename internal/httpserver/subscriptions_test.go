package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/httpserver"
	"github.com/wikigraph/wikigraph/internal/logging"
	"github.com/wikigraph/wikigraph/internal/playground"
)

// instance is a whole server (pool, change broker, GraphQL, HTTP) on 127.0.0.1.
type instance struct {
	base   string
	logs   *syncBuffer
	db     *bun.DB
	broker *events.Broker
	fanout *api.Fanout  // its subscribers: the broker holds one subscription per group of identical ones
	stop   func() error // like SIGTERM: returns what Serve returned
}

func startInstance(t *testing.T, dbURL string, origins ...string) *instance {
	t.Helper()
	return startInstanceWith(t, dbURL, api.Limits{}, origins...)
}

// startInstanceWith starts an instance with limits (zero values: the defaults).
func startInstanceWith(t *testing.T, dbURL string, limits api.Limits, origins ...string) *instance {
	t.Helper()
	return startInstanceOptions(t, dbURL, api.Options{QueryCacheSize: 10, WebsocketOrigins: origins, Limits: limits})
}

// startInstanceOptions starts an instance with opts (its logger is the test's; its keep-alive
// too, a second, unless opts has one).
func startInstanceOptions(t *testing.T, dbURL string, opts api.Options) *instance {
	t.Helper()
	db, err := dbtest.Open(dbURL)
	require.NoError(t, err)
	logs := &syncBuffer{}
	logger := logging.New(logs, "json", slog.LevelInfo)
	broker := events.New(db, events.Options{Buffer: 1024, Logger: logger})
	opts.Logger = logger
	if opts.KeepAlive == 0 {
		opts.KeepAlive = time.Second
	}
	if opts.Fanout == nil {
		opts.Fanout = api.NewFanout()
	}
	gql := api.New(&graph.Resolver{DB: db, Events: broker}, opts)
	h := httpserver.Handler(httpserver.Routes{
		GraphQL: gql, Logger: logger, Playground: playground.Handler(),
		Ready: func(ctx context.Context) error { return database.Ready(ctx, db) },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- broker.Run(ctx) }()
	served := make(chan error, 1)
	go func() {
		served <- httpserver.Serve(ctx, httpserver.Server(h, logger, httpserver.Timeouts{}), ln, 5*time.Second)
	}()
	var once sync.Once
	var result error
	in := &instance{base: ln.Addr().String(), logs: logs, db: db, broker: broker, fanout: opts.Fanout}
	in.stop = func() error {
		once.Do(func() {
			cancel()
			result = <-served
			<-brokerDone
			_ = db.Close()
		})
		return result
	}
	t.Cleanup(func() { _ = in.stop() })
	select {
	case <-broker.Listening():
	case <-time.After(10 * time.Second):
		t.Fatal("the broker never started listening")
	}
	return in
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (in *instance) mutate(t *testing.T, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post("http://"+in.base+"/query", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any
		Errors []any
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Empty(t, out.Errors)
	return out.Data
}

func (in *instance) createUser(t *testing.T, name string) string {
	t.Helper()
	data := in.mutate(t, `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
		map[string]any{"u": name, "e": name + "@example.com"})
	return data["createUser"].(map[string]any)["id"].(string)
}

// rowOf is the row number of a global id as the API writes it (User.id, Item.id).
func rowOf(t *testing.T, id string) int64 {
	t.Helper()
	g, err := gqlscalar.ParseID(id)
	require.NoError(t, err)
	require.NotEqual(t, gqlscalar.Untyped, g.Type, "%q is a global id", id)
	return g.Row
}

// waitSubscribers waits until the instance has n live subscriptions.
func (in *instance) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return in.fanout.Subscribers() == n }, 10*time.Second, 10*time.Millisecond,
		"want %d subscribers, have %d", n, in.fanout.Subscribers())
}

// wsClient speaks graphql-transport-ws or the legacy graphql-ws.
type wsClient struct {
	t     *testing.T
	conn  *websocket.Conn
	proto string
	msgs  chan map[string]any // closed when the connection ends
	err   error               // why it ended (websocket.CloseStatus tells the code); set before msgs closes
}

// dialOption changes how dial opens its websocket.
type dialOption func(*websocket.DialOptions)

func dial(t *testing.T, in *instance, proto, origin string, options ...dialOption) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{Subprotocols: []string{proto}, HTTPHeader: http.Header{}}
	if origin != "" {
		opts.HTTPHeader.Set("Origin", origin)
	}
	for _, o := range options {
		o(opts)
	}
	conn, resp, err := websocket.Dial(ctx, "ws://"+in.base+"/query", opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c := &wsClient{t: t, conn: conn, proto: proto, msgs: make(chan map[string]any, 100)}
	t.Cleanup(func() { _ = conn.CloseNow() })
	// One reader for the connection's life: coder/websocket closes a connection whose read is
	// cancelled, so reads never time out; read waits on this channel instead.
	go func() {
		defer close(c.msgs)
		for {
			var msg map[string]any
			if err := wsjson.Read(context.Background(), conn, &msg); err != nil {
				c.err = err
				return
			}
			switch msg["type"] {
			case "ka", "pong":
				continue
			case "ping":
				_ = wsjson.Write(context.Background(), conn, map[string]any{"type": "pong"})
				continue
			}
			c.msgs <- msg
		}
	}()
	require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}))
	msg := c.read(5 * time.Second)
	require.Equal(t, "connection_ack", msg["type"])
	return c, nil
}

// read returns the next message, {"type": "closed"} when the connection ended, or
// {"type": "timeout"}.
func (c *wsClient) read(timeout time.Duration) map[string]any {
	c.t.Helper()
	select {
	case msg, ok := <-c.msgs:
		if !ok {
			return map[string]any{"type": "closed"}
		}
		return msg
	case <-time.After(timeout):
		return map[string]any{"type": "timeout"}
	}
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	typ := "subscribe"
	if c.proto == "graphql-ws" {
		typ = "start"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(c.t, wsjson.Write(ctx, c.conn, map[string]any{
		"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": vars},
	}))
}

// next returns the data of the next event, failing after timeout.
func (c *wsClient) next(timeout time.Duration) map[string]any {
	c.t.Helper()
	msg := c.read(timeout)
	require.Contains(c.t, []any{"next", "data"}, msg["type"], "got %v", msg)
	payload := msg["payload"].(map[string]any)
	require.Nil(c.t, payload["errors"], "event errors: %v", payload["errors"])
	return payload["data"].(map[string]any)
}

func TestSubscriptionsAcrossInstances(t *testing.T) {
	u := dbtest.URL(t)
	a, b := startInstance(t, u), startInstance(t, u)
	c, err := dial(t, a, "graphql-transport-ws", "")
	require.NoError(t, err)

	// Each change is made on instance b and heard on instance a.
	c.subscribe("created", `subscription { userCreated { id username } }`, nil)
	a.waitSubscribers(t, 1)
	owner := b.createUser(t, "sub_owner")
	assert.Equal(t, map[string]any{"userCreated": map[string]any{"id": owner, "username": "sub_owner"}}, c.next(5*time.Second))

	c.subscribe("updated", `subscription($id: ID) { userUpdated(id: $id) { id email } }`, map[string]any{"id": owner})
	c.subscribe("items", `subscription($o: ID) { itemChanged(ownerId: $o) { kind item { id title owner { username } } } }`, map[string]any{"o": owner})
	c.subscribe("deleted", `subscription { userDeleted }`, nil)
	a.waitSubscribers(t, 4)
	other := b.createUser(t, "sub_other")
	created := c.next(5 * time.Second)
	assert.Equal(t, map[string]any{"userCreated": map[string]any{"id": other, "username": "sub_other"}}, created)

	b.mutate(t, `mutation($id: ID!) { updateUser(id: $id, input: {email: "x_other@example.com"}) { id } }`, map[string]any{"id": other})
	b.mutate(t, `mutation($id: ID!) { updateUser(id: $id, input: {email: "new_owner@example.com"}) { id } }`, map[string]any{"id": owner})
	updated := c.next(5 * time.Second)
	assert.Equal(t, map[string]any{"userUpdated": map[string]any{"id": owner, "email": "new_owner@example.com"}}, updated,
		"userUpdated(id) hears only that user")

	b.mutate(t, `mutation($o: ID!) { createItem(input: {ownerId: $o, title: "elsewhere"}) { id } }`, map[string]any{"o": other})
	item := b.mutate(t, `mutation($o: ID!) { createItem(input: {ownerId: $o, title: "lamp"}) { id } }`, map[string]any{"o": owner})
	itemID := item["createItem"].(map[string]any)["id"]
	ev := c.next(5 * time.Second)["itemChanged"].(map[string]any)
	assert.Equal(t, "CREATED", ev["kind"], "itemChanged(ownerId) hears only that owner's items")
	assert.Equal(t, map[string]any{"id": itemID, "title": "lamp", "owner": map[string]any{"username": "sub_owner"}}, ev["item"])

	b.mutate(t, `mutation($id: ID!) { updateItem(id: $id, input: {title: "brass lamp"}) { id } }`, map[string]any{"id": itemID})
	ev = c.next(5 * time.Second)["itemChanged"].(map[string]any)
	assert.Equal(t, "UPDATED", ev["kind"])
	assert.Equal(t, "brass lamp", ev["item"].(map[string]any)["title"])

	// Deleting the owner deletes its item: both are announced, the item as it was, with its owner.
	b.mutate(t, `mutation($id: ID!) { deleteUser(id: $id) { id } }`, map[string]any{"id": owner})
	got := map[string]map[string]any{}
	for range 2 {
		data := c.next(5 * time.Second)
		for k, v := range data {
			got[k] = map[string]any{"v": v}
		}
	}
	assert.Equal(t, owner, got["userDeleted"]["v"])
	require.NotNil(t, got["itemChanged"])
	deletedItem := got["itemChanged"]["v"].(map[string]any)
	assert.Equal(t, "DELETED", deletedItem["kind"])
	assert.Equal(t, map[string]any{"id": itemID, "title": "brass lamp", "owner": map[string]any{"username": "sub_owner"}}, deletedItem["item"])
}

func TestLegacyGraphQLWSProtocol(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-ws", "")
	require.NoError(t, err)
	c.subscribe("1", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)
	in.createUser(t, "legacy_ws")
	assert.Equal(t, map[string]any{"userCreated": map[string]any{"username": "legacy_ws"}}, c.next(5*time.Second))
}

func TestServerSentEvents(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.base+"/query",
		strings.NewReader(`{"query":"subscription { userCreated { username } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/event-stream")
	in.waitSubscribers(t, 1)
	in.createUser(t, "sse_user")

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "stream ended early")
			if data, found := strings.CutPrefix(line, "data: "); found && strings.Contains(data, "userCreated") {
				assert.JSONEq(t, `{"data":{"userCreated":{"username":"sse_user"}}}`, data)
				cancel()
				in.waitSubscribers(t, 0)
				return
			}
		case <-deadline:
			t.Fatal("no event")
		}
	}
}

func TestRolledBackWriteSendsNothing(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	c.subscribe("1", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)

	ctx := context.Background()
	tx, err := in.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "INSERT INTO users (username, email) VALUES ('rolled_back', 'rb@example.com')")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	in.createUser(t, "committed_after")

	assert.Equal(t, map[string]any{"userCreated": map[string]any{"username": "committed_after"}}, c.next(5*time.Second),
		"the first event is the committed write: the rolled-back one was never announced")
}

// droppedError returns the extensions.code of an operation's error message (graphql-transport-ws
// and graphql-ws send a list of errors; either may send one object), failing on anything else.
func droppedError(t *testing.T, msg map[string]any, id string) string {
	t.Helper()
	require.Equal(t, "error", msg["type"], "an error message, not a plain end: %v", msg)
	code, message := operationError(t, msg, id)
	assert.Contains(t, message, "events were dropped")
	return code
}

// operationError returns the code and message of the first error of an error message for the
// operation id (graphql-transport-ws and graphql-ws send a list; either may send one object).
func operationError(t *testing.T, msg map[string]any, id string) (code, message string) {
	t.Helper()
	require.Equal(t, id, msg["id"])
	errs, ok := msg["payload"].([]any)
	if !ok {
		errs = []any{msg["payload"]}
	}
	require.NotEmpty(t, errs)
	first := errs[0].(map[string]any)
	message, _ = first["message"].(string)
	ext, _ := first["extensions"].(map[string]any) // none: the test fails on the code, not here
	code, _ = ext["code"].(string)
	return code, message
}

// terminateListeners ends the LISTEN connections of this database's instances, as a failover or
// a network fault would.
func terminateListeners(t *testing.T, db *bun.DB) {
	t.Helper()
	var n int
	require.NoError(t, db.NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(context.Background(), &n))
	require.Positive(t, n, "no listener connection found")
}

// sse opens a server-sent events subscription and returns its lines.
func sse(t *testing.T, in *instance, query string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// nextLine returns the next line that is not empty or a comment, "closed" or "timeout".
func nextLine(lines <-chan string, timeout time.Duration) string {
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return "closed"
			}
			if line == "" || strings.HasPrefix(line, ":") {
				continue
			}
			return line
		case <-time.After(timeout):
			return "timeout"
		}
	}
}

// Notifications sent while the listener reconnects are lost, so every subscription ends with an
// EVENTS_DROPPED error: an error message for the operation over websocket (both protocols),
// an event with the error, then complete, over SSE. Subscribing again works.
func TestListenerReconnectEndsSubscriptionsWithError(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	ws, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	ws.subscribe("created", `subscription { userCreated { username } }`, nil)
	legacy, err := dial(t, in, "graphql-ws", "")
	require.NoError(t, err)
	legacy.subscribe("deleted", `subscription { userDeleted }`, nil)
	lines := sse(t, in, `subscription { itemChanged { kind } }`)
	in.waitSubscribers(t, 3)

	terminateListeners(t, in.db)
	assert.Equal(t, "EVENTS_DROPPED", droppedError(t, ws.read(10*time.Second), "created"))
	assert.Equal(t, "EVENTS_DROPPED", droppedError(t, legacy.read(10*time.Second), "deleted"))
	var event string
	for i := 0; i < 10 && event == ""; i++ {
		line := nextLine(lines, 10*time.Second)
		require.NotContains(t, []string{"closed", "timeout", "event: complete"}, line, "no error event")
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			event = data
		}
	}
	var resp struct {
		Data   any
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(event), &resp), event)
	require.Len(t, resp.Errors, 1, event)
	assert.Equal(t, "EVENTS_DROPPED", resp.Errors[0].Extensions["code"])
	assert.Equal(t, "event: complete", nextLine(lines, 10*time.Second))
	in.waitSubscribers(t, 0)

	ws.subscribe("again", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)
	in.createUser(t, "after_reconnect")
	assert.Equal(t, map[string]any{"userCreated": map[string]any{"username": "after_reconnect"}}, ws.next(10*time.Second))
}

// A database restart loses the notifications sent meanwhile: the subscription ends with
// EVENTS_DROPPED, and subscribing again on the same websocket works once the database is back.
func TestDatabaseRestartEndsSubscriptionsWithError(t *testing.T) {
	pg, u := privateDatabase(t)
	in := startInstance(t, u)
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	c.subscribe("1", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)
	in.createUser(t, "before_restart")
	assert.Equal(t, "before_restart", c.next(5 * time.Second)["userCreated"].(map[string]any)["username"])

	pg.Stop(t)
	assert.Equal(t, "EVENTS_DROPPED", droppedError(t, c.read(30*time.Second), "1"))
	pg.Start(t)

	// Subscribing is refused (an error for the operation) until the database and the listener
	// are back.
	for i, open := 0, false; !open; i++ {
		require.Less(t, i, 30, "cannot subscribe again after the restart")
		c.subscribe(fmt.Sprintf("again%d", i), `subscription { userCreated { username } }`, nil)
		for range 150 { // until it is open or refused
			if in.broker.Subscribers() == 1 {
				open = true
				break
			}
			if msg := c.read(200 * time.Millisecond); msg["type"] != "timeout" {
				require.Equal(t, "next", msg["type"], "%v", msg)
				require.NotNil(t, msg["payload"].(map[string]any)["errors"], "a refusal: %v", msg)
				require.Equal(t, "complete", c.read(5 * time.Second)["type"])
				break
			}
		}
	}
	in.createUser(t, "after_restart")
	assert.Equal(t, map[string]any{"userCreated": map[string]any{"username": "after_restart"}}, c.next(10*time.Second))
}

// A subscriber that cannot keep up with a burst (deleting a user with 15,000 items announces
// each one, and every event looks up its item's owner) gets what fitted in its buffer, then an
// EVENTS_DROPPED error for the operation, not the complete of a normal end.
func TestOverwhelmedSubscriberGetsError(t *testing.T) {
	const n = 15_000
	in := startInstance(t, dbtest.URL(t))
	owner := in.createUser(t, "burst_owner")
	ctx := context.Background()
	_, err := in.db.ExecContext(ctx, "INSERT INTO items (owner_id, title) SELECT ?, 'burst ' || i FROM generate_series(1, ?) i", rowOf(t, owner), n)
	require.NoError(t, err)
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	c.subscribe("burst", `subscription($o: ID) { itemChanged(ownerId: $o) { kind item { id title owner { username } } } }`,
		map[string]any{"o": owner})
	in.waitSubscribers(t, 1)
	_, err = in.db.ExecContext(ctx, "DELETE FROM users WHERE id = ?", rowOf(t, owner))
	require.NoError(t, err)

	for got := 0; got < n; got++ {
		msg := c.read(30 * time.Second)
		if msg["type"] == "next" {
			continue
		}
		assert.Equal(t, "EVENTS_DROPPED", droppedError(t, msg, "burst"), "after %d of %d events", got, n)
		t.Logf("%d of %d events, then EVENTS_DROPPED", got, n)
		return
	}
	// It kept up: every event came, and the subscription is still open.
	assert.Equal(t, 1, in.broker.Subscribers())
}

func TestSubscriptionsReleaseGoroutines(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	settle := func() int {
		runtime.GC()
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	var clients []*wsClient
	for i := range 20 {
		c, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		c.subscribe(fmt.Sprint(i), `subscription { itemChanged { kind } }`, nil)
		clients = append(clients, c)
	}
	in.waitSubscribers(t, 20)
	assert.Greater(t, runtime.NumGoroutine(), before+20, "subscriptions hold goroutines while open")
	for _, c := range clients {
		_ = c.conn.Close(websocket.StatusNormalClosure, "bye")
	}
	in.waitSubscribers(t, 0)
	assert.Eventually(t, func() bool { return settle() <= before+2 }, 10*time.Second, 100*time.Millisecond,
		"goroutines back to %d, have %d", before, runtime.NumGoroutine())

	// At shutdown every subscription ends and Serve returns cleanly.
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	c.subscribe("last", `subscription { userDeleted }`, nil)
	in.waitSubscribers(t, 1)
	stopped := make(chan error, 1)
	go func() { stopped <- in.stop() }()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown waited on an open subscription")
	}
	msg := c.read(5 * time.Second)
	assert.Contains(t, []any{"complete", "closed"}, msg["type"], "the stream ended: %v", msg)
	assert.Zero(t, in.broker.Subscribers())
	assert.Eventually(t, func() bool { return settle() <= before+2 }, 10*time.Second, 100*time.Millisecond,
		"goroutines back to %d after shutdown, have %d", before, runtime.NumGoroutine())
}

func TestWebsocketOriginAllowList(t *testing.T) {
	in := startInstance(t, dbtest.URL(t), "app.example.com", "*.trusted.example")
	for origin, allowed := range map[string]bool{
		"":                            true, // not a browser
		"http://" + in.base:           true, // same origin
		"https://app.example.com":     true,
		"https://ui.trusted.example":  true,
		"https://evil.example":        false,
		"http://app.example.com.evil": false,
	} {
		_, err := dial(t, in, "graphql-transport-ws", origin)
		if allowed {
			assert.NoError(t, err, origin)
		} else {
			assert.ErrorContains(t, err, "403", origin)
		}
	}
}

// Queries over a websocket run concurrently on one connection: each is logged on a line of its
// own (not added to the upgrade request's line), and each gets one answer, then complete.
func TestWebsocketQueriesAreLoggedEach(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	const n = 20
	for i := range n {
		c.subscribe(fmt.Sprintf("q%d", i), `query WsList { users(limit: 1) { id } }`, nil)
	}
	counts := map[string]int{}
	for range 2 * n {
		msg := c.read(10 * time.Second)
		require.Contains(t, []any{"next", "complete"}, msg["type"], "got %v", msg)
		counts[msg["type"].(string)]++
	}
	assert.Equal(t, map[string]int{"next": n, "complete": n}, counts)
	require.Eventually(t, func() bool {
		return strings.Count(in.logs.String(), `"msg":"graphql","operation":"WsList"`) == n
	}, 5*time.Second, 10*time.Millisecond, "one line per websocket operation:\n%s", in.logs.String())
}
