package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// replicated is a private primary with a database, and a streaming replica of it that applies
// each commit delay after the primary.
func replicated(t *testing.T, delay time.Duration) (primary, replica *dbtest.Server, dbName string) {
	t.Helper()
	primary = dbtest.NewServer(t)
	admin, err := dbtest.Open(primary.URL)
	require.NoError(t, err)
	defer admin.Close()
	dbName = "wikigraph"
	_, err = admin.ExecContext(context.Background(), "CREATE DATABASE "+dbName)
	require.NoError(t, err)
	return primary, dbtest.NewReplica(t, primary, delay), dbName
}

// replicaInstances starts n instances reading from a replica delay behind the primary, and waits
// until the last one has the replica in rotation; it returns them and the replica's host (its
// metrics label).
func replicaInstances(t *testing.T, delay time.Duration, n int) ([]*running, string) {
	t.Helper()
	primary, replica, name := replicated(t, delay)
	var out []*running
	for range n {
		out = append(out, startServer(t, "DATABASE_URL="+primary.Database(name), "DATABASE_REPLICA_URLS="+replica.Database(name),
			"LOG_LEVEL=warn", "LOG_FLUSH_INTERVAL=0"))
	}
	u, err := url.Parse(replica.URL)
	require.NoError(t, err)
	inRotation := fmt.Sprintf(`wikigraph_db_replica_in_rotation{replica=%q}`, u.Host)
	require.Eventually(t, func() bool { return gauge(t, out[n-1].base, inRotation) == 1 }, 10*time.Second, 50*time.Millisecond)
	return out, u.Host
}

// gqlCall posts query to srv with extra headers; it returns the answer's data and errors, and
// the response's headers.
func gqlCall(t *testing.T, srv *running, query string, vars map[string]any, headers map[string]string) (map[string]any, []pooledError, http.Header) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, srv.base+"/query", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any
		Errors []pooledError
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Data, out.Errors, resp.Header
}

// TestReadYourWritesOnALaggingReplica writes on one instance and reads on another whose queries
// go to a replica 300 ms behind: with the write's Consistency-Token (header or cookie) every
// read sees its write; the same reads without it are served by the replica, and some are stale
// (so the routing is real, and the test would catch a server that ignored the token).
func TestReadYourWritesOnALaggingReplica(t *testing.T) {
	servers, host := replicaInstances(t, 300*time.Millisecond, 2)
	a, b := servers[0], servers[1]
	inRotation := fmt.Sprintf(`wikigraph_db_replica_in_rotation{replica=%q}`, host)

	const writes = 200
	var stale, staleWithToken int
	var id string
	for i := range writes {
		var data map[string]any
		var errs []pooledError
		var hdr http.Header
		want := fmt.Sprintf("ryw%d@replica.example", i)
		if i%2 == 0 {
			data, errs, hdr = gqlCall(t, a, `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
				map[string]any{"u": fmt.Sprintf("ryw%d", i), "e": want}, nil)
			require.Empty(t, errs)
			id = data["createUser"].(map[string]any)["id"].(string)
		} else {
			_, errs, hdr = gqlCall(t, a, `mutation($id: ID!, $e: String!) { updateUser(id: $id, input: {email: $e}) { id } }`,
				map[string]any{"id": id, "e": want}, nil)
			require.Empty(t, errs)
		}
		token := hdr.Get("Consistency-Token")
		require.NotEmpty(t, token, "a mutation's answer carries its token")
		require.Contains(t, strings.Join(hdr.Values("Set-Cookie"), "\n"), "Consistency-Token="+token)

		read := func(headers map[string]string) string {
			t.Helper()
			data, errs, _ := gqlCall(t, b, `query($id: ID!) { user(id: $id) { email } }`, map[string]any{"id": id}, headers)
			if len(errs) > 0 {
				t.Fatalf("read %d %v: %v; logs of b:\n%s", i, headers, errs, stopped(b))
			}
			u, _ := data["user"].(map[string]any)
			email, _ := u["email"].(string)
			return email
		}
		if read(nil) != want {
			stale++
		}
		carrier := map[string]string{"Consistency-Token": token}
		if i%4 >= 2 {
			carrier = map[string]string{"Cookie": "Consistency-Token=" + token}
		}
		if read(carrier) != want {
			staleWithToken++
		}
	}
	// Over a websocket, the token comes in connection_init and holds for its operations.
	for i := range 10 {
		want := fmt.Sprintf("ws%d@replica.example", i)
		_, errs, hdr := gqlCall(t, a, `mutation($id: ID!, $e: String!) { updateUser(id: $id, input: {email: $e}) { id } }`,
			map[string]any{"id": id, "e": want}, nil)
		require.Empty(t, errs)
		if wsRead(t, b, map[string]any{"Consistency-Token": hdr.Get("Consistency-Token")}, id) != want {
			staleWithToken++
		}
	}
	require.Zero(t, staleWithToken, "reads with the token that missed their write")
	require.Positive(t, stale, "reads without a token all saw their write: did they go to the replica?")
	replicaReads := gauge(t, b.base, strings.Replace(strings.Replace(inRotation, "replica_in_rotation", "reads_total", 1), "replica=", "target=", 1))
	require.GreaterOrEqual(t, replicaReads, float64(writes), "the reads without a token went to the replica")
	// A token the replica had not replayed (300 ms behind) sent the read to the primary, and the
	// search for a replica shows in the wait histogram.
	require.GreaterOrEqual(t, gauge(t, b.base, `wikigraph_db_token_wait_seconds_count{served="primary"}`), float64(writes))
	t.Logf("of %d reads without a token, %d were stale; the replica served %.0f reads, the primary %.0f",
		writes, stale, replicaReads, gauge(t, b.base, `wikigraph_db_reads_total{target="primary"}`))
}

// TestReplicaStoppedUnderSteadyReads stops the replica while clients read steadily (reads by
// id, pages, the nested page), then starts it again: no read fails (reads on it when it went
// down run on the primary, and it leaves the rotation), and reads return to it once it is back.
func TestReplicaStoppedUnderSteadyReads(t *testing.T) {
	replicaFaultUnderSteadyReads(t, (*dbtest.Server).Stop, (*dbtest.Server).Start, time.Second)
}

// TestReplicaHungUnderSteadyReads freezes every process of the replica (SIGSTOP: its port still
// accepts connections and their data, nothing answers, nothing is refused) for longer than an
// operation may last (OPERATION_TIMEOUT=3s), while clients read steadily, then resumes it: no
// read fails (a read on it runs again on the primary once the replica has not begun to answer
// within REPLICA_ANSWER_TIMEOUT, and it leaves the rotation; a new connection to it is not
// waited for longer), and reads return to it once it answers again.
func TestReplicaHungUnderSteadyReads(t *testing.T) {
	replicaFaultUnderSteadyReads(t, (*dbtest.Server).Freeze, (*dbtest.Server).Thaw, 4*time.Second, "OPERATION_TIMEOUT=3s")
}

// replicaFaultUnderSteadyReads runs reads from four clients on an instance over a replica (env:
// more of its settings), does fault to the replica a second in, heals it hold after it left the
// rotation, and fails on any read that failed; it logs the slowest read.
func replicaFaultUnderSteadyReads(t *testing.T, fault, heal func(*dbtest.Server, testing.TB), hold time.Duration, env ...string) {
	primary, replica, name := replicated(t, 0)
	srv := startServer(t, append([]string{"DATABASE_URL=" + primary.Database(name), "DATABASE_REPLICA_URLS=" + replica.Database(name),
		"LOG_LEVEL=warn", "LOG_FLUSH_INTERVAL=0"}, env...)...)
	u, err := url.Parse(replica.URL)
	require.NoError(t, err)
	inRotation := fmt.Sprintf(`wikigraph_db_replica_in_rotation{replica=%q}`, u.Host)
	replicaReads := fmt.Sprintf(`wikigraph_db_reads_total{target=%q}`, u.Host)
	var id string
	for i := range 5 {
		data, errs, _ := gqlCall(t, srv, `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
			map[string]any{"u": fmt.Sprintf("fault%d", i), "e": fmt.Sprintf("fault%d@replica.example", i)}, nil)
		require.Empty(t, errs)
		id = data["createUser"].(map[string]any)["id"].(string)
		_, errs, _ = gqlCall(t, srv, `mutation($o: ID!) { createItem(input: {ownerId: $o, title: "lamp"}) { id } }`,
			map[string]any{"o": id}, nil)
		require.Empty(t, errs)
	}
	require.Eventually(t, func() bool { return gauge(t, srv.base, inRotation) == 1 }, 10*time.Second, 50*time.Millisecond)

	queries := []string{
		`query($id: ID!) { user(id: $id) { id username } }`,
		`query($id: ID!) { users(limit: 10) { id } user(id: $id) { email } }`,
		`query { usersConnection(first: 5) { edges { node { username items(first: 3) { edges { node { title owner { id } } } } } } } }`,
	}
	ctx, stop := context.WithCancel(context.Background())
	type result struct {
		reads   int
		failed  []string
		slowest time.Duration
	}
	results := make(chan result)
	for c := range 4 {
		go func() {
			var r result
			for i := c; ctx.Err() == nil; i++ {
				body, _ := json.Marshal(map[string]any{"query": queries[i%len(queries)], "variables": map[string]any{"id": id}})
				began := time.Now()
				resp, err := http.Post(srv.base+"/query", "application/json", strings.NewReader(string(body)))
				r.reads++
				if err != nil {
					r.failed = append(r.failed, err.Error())
					continue
				}
				var out struct{ Errors []pooledError }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				r.slowest = max(r.slowest, time.Since(began))
				if err != nil || resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
					r.failed = append(r.failed, fmt.Sprintf("%d %v %v", resp.StatusCode, err, out.Errors))
				}
			}
			results <- r
		}()
	}
	time.Sleep(time.Second)
	before := gauge(t, srv.base, replicaReads)
	require.Positive(t, before, "reads went to the replica")
	fault(replica, t)
	require.Eventually(t, func() bool { return gauge(t, srv.base, inRotation) == 0 }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(hold)
	heal(replica, t)
	require.Eventually(t, func() bool { return gauge(t, srv.base, inRotation) == 1 }, 10*time.Second, 50*time.Millisecond)
	back := gauge(t, srv.base, replicaReads)
	time.Sleep(time.Second)
	after := gauge(t, srv.base, replicaReads)
	stop()
	var reads int
	var failed []string
	var slowest time.Duration
	for range 4 {
		r := <-results
		reads += r.reads
		failed = append(failed, r.failed...)
		slowest = max(slowest, r.slowest)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d reads failed, first: %s\nlogs:\n%s", len(failed), reads, failed[0], stopped(srv))
	}
	require.Greater(t, after, back, "reads returned to the replica")
	t.Logf("%d reads, none failed, the slowest took %s; the replica served %.0f before the fault, %.0f in the second after it came back",
		reads, slowest.Round(time.Millisecond), before, after-back)
}

// wsRead reads user id's email on srv over a graphql-transport-ws websocket opened with init
// as its connection_init payload.
func wsRead(t *testing.T, srv *running, init map[string]any, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"type": "connection_init", "payload": init}))
	var msg map[string]any
	require.NoError(t, wsjson.Read(ctx, ws, &msg))
	require.Equal(t, "connection_ack", msg["type"])
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `query($id: ID!) { user(id: $id) { email } }`, "variables": map[string]any{"id": id}}}))
	for {
		require.NoError(t, wsjson.Read(ctx, ws, &msg))
		if msg["type"] == "next" {
			break
		}
		require.Contains(t, []any{"ping", "pong", "ka"}, msg["type"], "%v", msg)
	}
	require.Empty(t, msg["payload"].(map[string]any)["errors"])
	u, _ := msg["payload"].(map[string]any)["data"].(map[string]any)["user"].(map[string]any)
	email, _ := u["email"].(string)
	return email
}

// TestReplayedMutationCarriesItsToken sends a keyed mutation on one instance and the same
// request again: the replayed answer carries a Consistency-Token too, and a read with it on
// another instance, whose queries go to a replica 1 s behind, sees the write.
func TestReplayedMutationCarriesItsToken(t *testing.T) {
	servers, _ := replicaInstances(t, time.Second, 2)
	a, b := servers[0], servers[1]

	create := `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`
	vars := map[string]any{"u": "replayed", "e": "replayed@replica.example"}
	key := map[string]string{"Idempotency-Key": "replayed-token-1"}
	data, errs, first := gqlCall(t, a, create, vars, key)
	require.Empty(t, errs)
	id := data["createUser"].(map[string]any)["id"].(string)
	require.NotEmpty(t, first.Get("Consistency-Token"))
	_, errs, again := gqlCall(t, a, create, vars, key)
	require.Empty(t, errs)
	require.Equal(t, "true", again.Get("Idempotent-Replayed"))
	token := again.Get("Consistency-Token")
	require.NotEmpty(t, token, "a replayed mutation's answer carries a token")
	require.Contains(t, strings.Join(again.Values("Set-Cookie"), "\n"), "Consistency-Token="+token)

	read := func(headers map[string]string) bool {
		data, errs, _ := gqlCall(t, b, `query($id: ID!) { user(id: $id) { email } }`, map[string]any{"id": id}, headers)
		require.Empty(t, errs)
		return data["user"] != nil
	}
	require.True(t, read(map[string]string{"Consistency-Token": token}), "a read with the replayed token sees the write")
	require.False(t, read(nil), "a read without a token went to the replica, 1 s behind")
}

// TestWebsocketMutationThenQuery runs, on one websocket opened without a token, a mutation and
// then a query of what it wrote, through a replica 1 s behind: the query reads the write (the
// connection's token moved to the mutation's position), and the mutation's result carries that
// token in extensions.consistencyToken.
func TestWebsocketMutationThenQuery(t *testing.T) {
	servers, _ := replicaInstances(t, time.Second, 1)
	srv := servers[0]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"type": "connection_init", "payload": map[string]any{}}))
	var msg map[string]any
	require.NoError(t, wsjson.Read(ctx, ws, &msg))
	require.Equal(t, "connection_ack", msg["type"])
	op := func(id, query string, vars map[string]any) map[string]any {
		t.Helper()
		require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": id, "type": "subscribe",
			"payload": map[string]any{"query": query, "variables": vars}}))
		for {
			var msg map[string]any
			require.NoError(t, wsjson.Read(ctx, ws, &msg))
			if msg["type"] == "next" && msg["id"] == id {
				p := msg["payload"].(map[string]any)
				require.Empty(t, p["errors"])
				return p
			}
		}
	}
	p := op("1", `mutation { createUser(input: {username: "wsryw", email: "wsryw@replica.example"}) { id } }`, nil)
	id := p["data"].(map[string]any)["createUser"].(map[string]any)["id"].(string)
	ext, _ := p["extensions"].(map[string]any)
	require.NotEmpty(t, ext["consistencyToken"], "the mutation's result carries its token")
	p = op("2", `query($id: ID!) { user(id: $id) { email } }`, map[string]any{"id": id})
	require.NotNil(t, p["data"].(map[string]any)["user"], "the query after the mutation on the connection reads its write")
	// The same query on another connection without a token goes to the replica, still behind.
	require.Empty(t, wsRead(t, srv, map[string]any{}, id), "a connection without a token reads the lagging replica")
}

// TestDeferredQueryIsOneRead sends a query whose fields arrive in three parts (@defer on each of
// two users): its parts read where the first did, and the router counts one read for it, not
// one per part.
func TestDeferredQueryIsOneRead(t *testing.T) {
	servers, host := replicaInstances(t, 0, 1)
	srv := servers[0]
	reads := func() float64 {
		return gauge(t, srv.base, fmt.Sprintf(`wikigraph_db_reads_total{target=%q}`, host)) +
			gauge(t, srv.base, `wikigraph_db_reads_total{target="primary"}`)
	}
	for i := range 2 {
		_, errs, _ := gqlCall(t, srv, `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
			map[string]any{"u": fmt.Sprintf("deferred%d", i), "e": fmt.Sprintf("deferred%d@replica.example", i)}, nil)
		require.Empty(t, errs)
	}
	// The instance's next read goes to the replica once it has the users (or to the primary).
	require.Eventually(t, func() bool {
		data, errs, _ := gqlCall(t, srv, `{ users(limit: 2) { id } }`, nil, nil)
		return len(errs) == 0 && len(data["users"].([]any)) == 2
	}, 10*time.Second, 20*time.Millisecond)
	before := reads()
	body, err := json.Marshal(map[string]any{"query": `query { users(limit: 2) { id ... @defer { items(first: 1) { edges { node { id } } } } } }`})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, srv.base+"/query", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "multipart/mixed;deferSpec=20220824,application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(answer))
	require.Equal(t, 3, strings.Count(string(answer), `"data"`), "three parts: %s", answer)
	require.Equal(t, before+1, reads(), "one operation, one read")
}
