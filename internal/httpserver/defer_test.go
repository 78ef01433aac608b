package httpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// deferQuery asks for three items now and each item's owner later.
const deferQuery = `query($a: ID!, $b: ID!, $c: ID!) {
  a: item(id: $a) { ...Later }
  b: item(id: $b) { ...Later }
  c: item(id: $c) { ...Later }
}
fragment Later on Item { id title ... @defer(label: "owner") { owner { id username } } }`

// part is one payload of an incremental delivery, whatever the transport.
type part struct {
	Data        json.RawMessage  `json:"data"`
	Errors      []map[string]any `json:"errors"`
	Path        []any            `json:"path"`
	Label       string           `json:"label"`
	HasNext     *bool            `json:"hasNext"`
	Incremental []part           `json:"incremental"`
}

// flatten turns multipart's {"incremental": [...]} wrappers into their parts.
func flatten(ps []part) []part {
	var out []part
	for _, p := range ps {
		if len(p.Incremental) > 0 {
			for _, inc := range p.Incremental {
				if inc.HasNext == nil {
					inc.HasNext = p.HasNext
				}
				out = append(out, inc)
			}
			continue
		}
		out = append(out, p)
	}
	return out
}

// checkDeferred asserts a whole incremental answer: the first part has the items and says more
// follows, then one part per item with its owner, no errors, and the last says nothing follows.
func checkDeferred(t *testing.T, parts []part, owners map[string]string) {
	t.Helper()
	parts = flatten(parts)
	require.NotEmpty(t, parts)
	first := parts[0]
	require.Empty(t, first.Errors)
	require.NotNil(t, first.HasNext, "the first part says whether more follows")
	assert.True(t, *first.HasNext)
	var initial map[string]struct{ ID, Title string }
	require.NoError(t, json.Unmarshal(first.Data, &initial))
	require.Len(t, initial, 3)
	require.Len(t, parts, 1+len(initial), "one deferred part per item: %+v", parts)
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		require.Empty(t, p.Errors, "deferred part errors")
		assert.Equal(t, "owner", p.Label)
		require.Len(t, p.Path, 1)
		var got struct{ Owner struct{ ID, Username string } }
		require.NoError(t, json.Unmarshal(p.Data, &got))
		itemID := initial[p.Path[0].(string)].ID
		assert.Equal(t, owners[itemID], got.Owner.Username, "owner of item %s", itemID)
		seen[itemID] = true
	}
	assert.Len(t, seen, 3)
	last := parts[len(parts)-1]
	require.NotNil(t, last.HasNext)
	assert.False(t, *last.HasNext, "the last part ends the answer")
}

// seedDeferData makes three items with distinct owners and returns owner username by item id,
// and the variables of deferQuery that name them.
func seedDeferData(t *testing.T, in *instance) (map[string]string, map[string]any) {
	t.Helper()
	owners := map[string]string{}
	vars := map[string]any{}
	for i, alias := range []string{"a", "b", "c"} {
		name := fmt.Sprintf("d%d_%d", time.Now().UnixNano()%1e12, i)
		uid := in.createUser(t, name)
		data := in.mutate(t, `mutation($o: ID!, $t: String!) { createItem(input: {ownerId: $o, title: $t}) { id } }`,
			map[string]any{"o": uid, "t": "thing " + name})
		id := data["createItem"].(map[string]any)["id"].(string)
		owners[id] = name
		vars[alias] = id
	}
	return owners, vars
}

// settledGoroutines is the goroutine count once the runtime has had a moment to finish.
func settledGoroutines() int {
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	return runtime.NumGoroutine()
}

func TestDeferOverSSE(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	owners, vars := seedDeferData(t, in)
	before := settledGoroutines()
	for range 20 {
		parts := sseParts(t, in, deferQuery, vars)
		checkDeferred(t, parts, owners)
	}
	assert.Eventually(t, func() bool { return settledGoroutines() <= before+2 }, 10*time.Second, 100*time.Millisecond,
		"goroutines back to %d, have %d", before, runtime.NumGoroutine())
}

// sseParts posts query over SSE and returns the data of each event until "complete".
func sseParts(t *testing.T, in *instance, query string, vars map[string]any) []part {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var parts []part
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "event: complete" {
			return parts
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var p part
			require.NoError(t, json.Unmarshal([]byte(data), &p))
			parts = append(parts, p)
		}
	}
	t.Fatalf("the stream ended without completing (%v) after %d parts: %+v", sc.Err(), len(parts), parts)
	return nil
}

func TestDeferOverWebsocket(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	owners, vars := seedDeferData(t, in)
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	before := settledGoroutines()
	for i := range 20 {
		id := fmt.Sprint(i)
		c.subscribe(id, deferQuery, vars)
		var parts []part
		for {
			msg := c.read(10 * time.Second)
			require.Equal(t, id, msg["id"], "message %v", msg)
			if msg["type"] == "complete" {
				break
			}
			require.Equal(t, "next", msg["type"], "message %v", msg)
			raw, _ := json.Marshal(msg["payload"])
			var p part
			require.NoError(t, json.Unmarshal(raw, &p))
			parts = append(parts, p)
		}
		checkDeferred(t, parts, owners)
	}
	assert.Eventually(t, func() bool { return settledGoroutines() <= before+2 }, 10*time.Second, 100*time.Millisecond,
		"goroutines back to %d, have %d", before, runtime.NumGoroutine())
}

func TestDeferOverMultipartMixed(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	owners, vars := seedDeferData(t, in)
	before := settledGoroutines()
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		body, _ := json.Marshal(map[string]any{"query": deferQuery, "variables": vars})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		// What Apollo Client sends.
		req.Header.Set("Accept", "multipart/mixed;deferSpec=20220824,application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "multipart/mixed", mediaType)
		mr := multipart.NewReader(resp.Body, params["boundary"])
		var parts []part
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "the multipart answer ends with its closing boundary")
			raw, err := io.ReadAll(p)
			require.NoError(t, err)
			var got part
			require.NoError(t, json.Unmarshal(raw, &got), "part %q", raw)
			parts = append(parts, got)
		}
		_ = resp.Body.Close()
		cancel()
		checkDeferred(t, parts, owners)
	}
	assert.Eventually(t, func() bool { return settledGoroutines() <= before+2 }, 10*time.Second, 100*time.Millisecond,
		"goroutines back to %d, have %d", before, runtime.NumGoroutine())
}

// Apollo Client's own multipart handling (examples/defer.mjs: HttpLink with the
// Defer20220824Handler, over HTTP) shows the items first, without owners, while it says more is
// streaming, and then each item with its owner. An answer sent whole would show once, with the
// owners; one that never completes or is refused fails the script.
func TestDeferWithApolloClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: this test runs examples/defer.mjs with Node.js")
	}
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(examples, "node_modules", "@apollo", "client")); err != nil {
		t.Fatalf("examples/node_modules has no @apollo/client (%v): run `make frontend-check` (`make test` does)", err)
	}
	in := startInstance(t, dbtest.URL(t))
	owners, vars := seedDeferData(t, in)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "defer.mjs", "http://"+in.base+"/query",
		vars["a"].(string), vars["b"].(string), vars["c"].(string))
	cmd.Dir = examples
	cmd.Env = append(os.Environ(), "DEFER_TIMEOUT_MS=30000")
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node defer.mjs (context: %v): %s", ctx.Err(), stderr.String())
	t.Logf("Apollo Client saw %s", bytes.TrimSpace(out))

	// Each emission that carried data. dataState is not checked before the end: the first part
	// has each deferred owner as null (gqlgen writes a deferred field there as null; the
	// 2022-08-24 format leaves it out), which the cache keeps as a value, so with a cache Apollo
	// Client says "complete" while still loading, and "streaming" only without one.
	var seen struct {
		Emissions []struct {
			DataState     string
			Loading       bool
			NetworkStatus string
			Owners        map[string]*string // by alias; nil until the owner arrived
		}
	}
	require.NoError(t, json.Unmarshal(out, &seen), "output %q", out)
	em := seen.Emissions
	require.GreaterOrEqual(t, len(em), 2, "the answer came in parts: %s", out)
	first, last := em[0], em[len(em)-1]
	require.Len(t, first.Owners, 3, "%s", out)
	for alias, owner := range first.Owners {
		assert.Nil(t, owner, "item %s has no owner in the first part: %s", alias, out)
	}
	for _, e := range em[:len(em)-1] {
		assert.True(t, e.Loading, "an early emission is still loading: %s", out)
		assert.Equal(t, "streaming", e.NetworkStatus, "%s", out)
	}
	assert.False(t, last.Loading, "%s", out)
	assert.Equal(t, "ready", last.NetworkStatus, "%s", out)
	assert.Equal(t, "complete", last.DataState, "%s", out)
	require.Len(t, last.Owners, 3, "%s", out)
	for alias, id := range vars {
		owner := last.Owners[alias]
		require.NotNil(t, owner, "item %s has its owner at the end: %s", alias, out)
		assert.Equal(t, owners[id.(string)], *owner, "owner of item %s", alias)
	}
}

// A transport that answers once cannot carry the later parts: it says so instead of dropping
// them.
func TestDeferRefusedWhereItCannotBeCarried(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	_, vars := seedDeferData(t, in)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		var req *http.Request
		if method == http.MethodPost {
			body, _ := json.Marshal(map[string]any{"query": deferQuery, "variables": vars})
			req, _ = http.NewRequest(method, "http://"+in.base+"/query", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req, _ = http.NewRequest(method, "http://"+in.base+"/query?query="+url.QueryEscape(deferQuery)+"&variables="+url.QueryEscape(string(must(json.Marshal(vars)))), nil)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var out struct {
			Data   any
			Errors []struct {
				Message    string
				Extensions map[string]any
			}
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		_ = resp.Body.Close()
		require.Len(t, out.Errors, 1, method)
		assert.Equal(t, "BAD_REQUEST", out.Errors[0].Extensions["code"], method)
		assert.Contains(t, out.Errors[0].Message, "@defer", method)
		assert.Nil(t, out.Data, method)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A deferred part is bound by the operation's deadline: its statements stop, the part answers
// TIMEOUT and the answer completes, while the first part came at once.
func TestDeferredPartsKeepTheDeadline(t *testing.T) {
	in := startInstanceWith(t, dbtest.URL(t), api.Limits{Timeout: 500 * time.Millisecond, Concurrency: 1})
	owners, vars := seedDeferData(t, in)
	before := settledGoroutines()
	unlock := lockTable(t, in.db, "users", "ACCESS EXCLUSIVE") // the owners cannot be read; the items can
	parts := flatten(sseParts(t, in, deferQuery, vars))
	unlock()
	require.NotEmpty(t, parts)
	require.Empty(t, parts[0].Errors, "the first part does not read users")
	var timeouts int
	for _, p := range parts[1:] {
		for _, e := range p.Errors {
			ext, _ := e["extensions"].(map[string]any)
			assert.Equal(t, "TIMEOUT", ext["code"], "deferred error %v", e)
			timeouts++
		}
	}
	assert.Positive(t, timeouts, "the deferred parts answered TIMEOUT: %+v", parts)
	last := parts[len(parts)-1]
	require.NotNil(t, last.HasNext)
	assert.False(t, *last.HasNext)

	// The turn (one in all) came back: the same query now completes whole.
	checkDeferred(t, sseParts(t, in, deferQuery, vars), owners)
	assert.Eventually(t, func() bool { return settledGoroutines() <= before+2 }, 10*time.Second, 100*time.Millisecond,
		"goroutines back to %d, have %d", before, runtime.NumGoroutine())
}

// A subscription event's resolvers have a deadline (they used to wait as long as a statement
// could) and hold one of the turns while they run.
func TestSubscriptionEventsKeepTheDeadlineAndTakeATurn(t *testing.T) {
	in := startInstanceWith(t, dbtest.URL(t), api.Limits{Timeout: 2 * time.Second, Concurrency: 1})
	c, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	c.subscribe("s", `subscription { userCreated { username items(first: 1) { edges { node { title } } } } }`, nil)
	in.waitSubscribers(t, 1)
	unlock := lockTable(t, in.db, "items", "ACCESS EXCLUSIVE")
	in.createUser(t, fmt.Sprintf("ev%d", time.Now().UnixNano()%1e12)) // writes users only

	// The event's items statement waits on the lock, holding the only turn.
	waitBlocked(t, in.db, "%items%") // the event's statement
	answered := make(chan gqlBody, 1)
	go func() { answered <- postQuery(in, `{ __typename }`) }()
	select {
	case got := <-answered:
		t.Fatalf("a query ran while a subscription event held the only turn: %+v", got)
	case <-time.After(300 * time.Millisecond):
	}

	msg := c.read(10 * time.Second)
	require.Equal(t, "next", msg["type"], "message %v", msg)
	payload := msg["payload"].(map[string]any)
	errs, _ := payload["errors"].([]any)
	require.NotEmpty(t, errs, "the event answers its deadline: %v", payload)
	assert.Equal(t, "TIMEOUT", errs[0].(map[string]any)["extensions"].(map[string]any)["code"])
	unlock()
	select {
	case got := <-answered:
		assert.Empty(t, got.Errors, "the query ran once the event gave its turn back")
	case <-time.After(10 * time.Second):
		t.Fatal("the query never ran")
	}
}

type gqlBody struct {
	Data   map[string]any
	Errors []map[string]any
}

func postQuery(in *instance, query string) gqlBody {
	var out gqlBody
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := http.Post("http://"+in.base+"/query", "application/json", strings.NewReader(string(body)))
	if err != nil {
		out.Errors = []map[string]any{{"message": err.Error()}}
		return out
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}
