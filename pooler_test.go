package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

// TestThroughTransactionPooler runs the API's main paths on two instances of the built server
// whose pools go through pgbouncer in transaction mode with DB_PREPARED_STATEMENTS=off, LISTEN
// and migrations on the direct URL: writes, reads by id (prepared lookups), pages and
// connections, the nested page (prepared in one statement), errors, auth, and a subscription on
// one instance hearing the writes of the other. With prepared statements on, reads fail
// (prepared statement "pgdriver-N" does not exist, or already exists).
func TestThroughTransactionPooler(t *testing.T) {
	direct := dbtest.Empty(t)
	pooler := dbtest.NewPooler(t)
	const secret = "pooler-test-secret-0123456789abcdef"
	env := []string{
		"DATABASE_URL=" + pooler.URL(direct), "DATABASE_DIRECT_URL=" + direct, "DB_PREPARED_STATEMENTS=off",
		"AUTH_MODE=jwt", "AUTH_JWT_SECRET=" + secret, "AUTH_AUDIENCE=wikigraph", "LOG_LEVEL=warn", "LOG_FLUSH_INTERVAL=0",
	}
	a, b := startServer(t, env...), startServer(t, env...) // a migrates through the direct URL
	token := func(sub int64, role auth.Role) string {
		tok, err := auth.Mint(secret, sub, role, time.Hour, "", "wikigraph")
		require.NoError(t, err)
		return tok
	}
	admin := token(1<<40, auth.Admin)
	call := func(srv *running, tok, query string, vars map[string]any) (map[string]any, []pooledError) {
		t.Helper()
		var headers map[string]string
		if tok != "" {
			headers = map[string]string{"Authorization": "Bearer " + tok}
		}
		data, errs, _ := gqlCall(t, srv, query, vars, headers)
		return data, errs
	}
	must := func(srv *running, tok, query string, vars map[string]any) map[string]any {
		t.Helper()
		data, errs := call(srv, tok, query, vars)
		if len(errs) > 0 {
			t.Fatalf("%s: %v\nlogs of a:\n%s\nlogs of b:\n%s", query, errs, stopped(a), stopped(b))
		}
		return data
	}
	fails := func(srv *running, tok, query string, vars map[string]any) pooledError {
		t.Helper()
		_, errs := call(srv, tok, query, vars)
		require.Len(t, errs, 1, query)
		return errs[0]
	}
	obj := func(v any, path ...string) map[string]any {
		m, _ := v.(map[string]any)
		for _, p := range path {
			m, _ = m[p].(map[string]any)
		}
		return m
	}
	createUser := func(srv *running, name string) string {
		data := must(srv, admin, `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
			map[string]any{"u": name, "e": name + "@pool.example"})
		return obj(data, "createUser")["id"].(string)
	}

	// A subscription on a, over a websocket authenticated in connection_init.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"type": "connection_init",
		"payload": map[string]any{"Authorization": "Bearer " + admin}}))
	var ack map[string]any
	require.NoError(t, wsjson.Read(ctx, ws, &ack))
	require.Equal(t, "connection_ack", ack["type"])
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": "created", "type": "subscribe",
		"payload": map[string]any{"query": `subscription { userCreated { id username } }`}}))
	require.Eventually(t, func() bool { return gauge(t, a.base, "wikigraph_subscriptions_active") == 1 },
		10*time.Second, 20*time.Millisecond)
	events := make(chan map[string]any, 100)
	go func() {
		defer close(events)
		for {
			var msg map[string]any
			if wsjson.Read(context.Background(), ws, &msg) != nil {
				return
			}
			switch msg["type"] {
			case "ping":
				_ = wsjson.Write(context.Background(), ws, map[string]any{"type": "pong"})
			case "pong", "ka":
			default:
				events <- msg
			}
		}
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case msg, ok := <-events:
			require.True(t, ok, "the subscription's websocket closed")
			require.Equal(t, "next", msg["type"], "%v", msg)
			return obj(msg, "payload", "data")
		case <-time.After(5 * time.Second):
			t.Fatalf("no event on a; logs of a:\n%s", stopped(a))
			return nil
		}
	}

	// Writes on b, heard on a; reads on both.
	names := []string{"pool_ann", "pool_bob", "pool_cid", "pool_dee", "pool_eve"}
	ids := make([]string, len(names))
	for i, name := range names {
		ids[i] = createUser(b, name)
		assert.Equal(t, map[string]any{"id": ids[i], "username": name}, next()["userCreated"])
	}
	for _, srv := range []*running{a, b} {
		for i, id := range ids {
			data := must(srv, admin, `query($id: ID!) { user(id: $id) { id username email } }`, map[string]any{"id": id})
			assert.Equal(t, map[string]any{"id": id, "username": names[i], "email": names[i] + "@pool.example"}, obj(data, "user"))
		}
		data := must(srv, admin, `{ users(offset: 0, limit: 10) { username } }`, nil)
		assert.Len(t, data["users"], len(names))
	}
	data := must(a, admin, `{ userByUsername(username: "POOL_CID") { id } }`, nil)
	assert.Equal(t, ids[2], obj(data, "userByUsername")["id"])

	// A connection walked two at a time.
	var walked []string
	after := any(nil)
	for {
		data := must(a, admin, `query($after: String) { usersConnection(first: 2, after: $after, filter: {usernamePrefix: "pool_"},
			orderBy: {field: USERNAME, direction: ASC}) { totalCount pageInfo { hasNextPage endCursor } edges { node { username } } } }`,
			map[string]any{"after": after})
		conn := obj(data, "usersConnection")
		assert.EqualValues(t, len(names), conn["totalCount"])
		for _, e := range conn["edges"].([]any) {
			walked = append(walked, obj(e, "node")["username"].(string))
		}
		if !obj(conn, "pageInfo")["hasNextPage"].(bool) {
			break
		}
		after = obj(conn, "pageInfo")["endCursor"]
	}
	assert.Equal(t, names, walked)

	// Items, and the nested page.
	var itemIDs []string
	for i, title := range []string{"lamp", "desk", "chair"} {
		data := must(b, admin, `mutation($o: ID!, $t: String!) { createItem(input: {ownerId: $o, title: $t}) { id owner { username } } }`,
			map[string]any{"o": ids[i%2], "t": title})
		assert.Equal(t, names[i%2], obj(data, "createItem", "owner")["username"])
		itemIDs = append(itemIDs, obj(data, "createItem")["id"].(string))
	}
	data = must(a, admin, `{ usersConnection(first: 2, orderBy: {field: USERNAME, direction: ASC}) { edges { node { username
		items(first: 5, orderBy: {field: TITLE, direction: ASC}) { totalCount edges { node { title owner { username } } } } } } } }`, nil)
	nested := map[string][]string{}
	for _, e := range obj(data, "usersConnection")["edges"].([]any) {
		node := obj(e, "node")
		for _, ie := range obj(node, "items")["edges"].([]any) {
			item := obj(ie, "node")
			assert.Equal(t, node["username"], obj(item, "owner")["username"])
			nested[node["username"].(string)] = append(nested[node["username"].(string)], item["title"].(string))
		}
	}
	assert.Equal(t, map[string][]string{"pool_ann": {"chair", "lamp"}, "pool_bob": {"desk"}}, nested)
	data = must(b, admin, `query($o: ID!) { itemsConnection(first: 10, filter: {ownerId: $o}) { edges { node { title } } } }`,
		map[string]any{"o": ids[0]})
	assert.Len(t, obj(data, "itemsConnection")["edges"], 2)

	// Updates and deletes, in a transaction where the server uses one.
	data = must(b, admin, `mutation($id: ID!) { updateUser(id: $id, input: {email: "ann@pool.example"}) { email } }`,
		map[string]any{"id": ids[0]})
	assert.Equal(t, "ann@pool.example", obj(data, "updateUser")["email"])
	data = must(a, admin, `mutation($id: ID!) { updateItem(id: $id, input: {title: "brass lamp"}) { title } }`,
		map[string]any{"id": itemIDs[0]})
	assert.Equal(t, "brass lamp", obj(data, "updateItem")["title"])
	must(a, admin, `mutation($id: ID!) { deleteItem(id: $id) { id } }`, map[string]any{"id": itemIDs[1]})
	must(b, admin, `mutation($id: ID!) { deleteUser(id: $id) { id } }`, map[string]any{"id": ids[4]})
	data = must(a, admin, `query($id: ID!) { user(id: $id) { id } }`, map[string]any{"id": ids[4]})
	assert.Nil(t, data["user"], "deleted")

	// Errors, and who may do what.
	e := fails(a, admin, `mutation { createUser(input: {username: "Pool_Ann", email: "other@pool.example"}) { id } }`, nil)
	assert.Equal(t, "CONFLICT", e.code())
	e = fails(b, admin, `mutation { updateUser(id: "999999999", input: {email: "x@pool.example"}) { id } }`, nil)
	assert.Equal(t, "NOT_FOUND", e.code())
	e = fails(a, admin, `mutation($id: ID!) { deleteItem(id: $id) { id } }`, map[string]any{"id": itemIDs[1]})
	assert.Equal(t, "NOT_FOUND", e.code())
	e = fails(b, "", `mutation { createUser(input: {username: "pool_nobody", email: "n@pool.example"}) { id } }`, nil)
	assert.Equal(t, "UNAUTHENTICATED", e.code())
	bob := token(idNumber(t, ids[1]), auth.User)
	e = fails(a, bob, `mutation($id: ID!) { updateUser(id: $id, input: {email: "bob@evil.example"}) { id } }`, map[string]any{"id": ids[0]})
	assert.Equal(t, "FORBIDDEN", e.code())
	data = must(a, bob, `mutation($id: ID!) { updateUser(id: $id, input: {email: "bob@pool.example"}) { email } }`, map[string]any{"id": ids[1]})
	assert.Equal(t, "bob@pool.example", obj(data, "updateUser")["email"])

	// Still listening after all that: one more user made on b is heard on a.
	last := createUser(b, "pool_fay")
	assert.Equal(t, map[string]any{"id": last, "username": "pool_fay"}, next()["userCreated"])
	assert.NotContains(t, pooler.Logs(), "prepared statement")
}

// stopped stops srv and returns its logs (they may be read only once it has exited).
func stopped(srv *running) string {
	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.exited:
		return srv.logs.String()
	case <-time.After(10 * time.Second):
		return "(still running)"
	}
}

type pooledError struct {
	Message    string
	Extensions map[string]any
}

func (e pooledError) code() string { s, _ := e.Extensions["code"].(string); return s }

// idNumber is the row number of a global id as the API writes it (User.id, Item.id): a token's
// sub is a user's row number.
func idNumber(t *testing.T, id string) int64 {
	t.Helper()
	g, err := gqlscalar.ParseID(id)
	require.NoError(t, err, id)
	require.NotEqual(t, gqlscalar.Untyped, g.Type, "%q is a global id", id)
	return g.Row
}
