package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// trustedManifest is the persisted-documents manifest make frontend-check generates (GraphQL
// Code Generator's client preset) from examples/operations.
const trustedManifest = "examples/generated/client/persisted-documents.json"

const trustedSecret = "trusted-documents-test-secret-0123456789"

// manifestDocument is one entry of the manifest.
type manifestDocument struct {
	id   string // as the manifest keys it: sha256:<hex>
	text string
	name string
	op   ast.Operation
}

func (d manifestDocument) hex() string { return strings.TrimPrefix(d.id, "sha256:") }

func readManifest(t *testing.T) []manifestDocument {
	t.Helper()
	b, err := os.ReadFile(trustedManifest)
	require.NoError(t, err)
	var m map[string]string
	require.NoError(t, json.Unmarshal(b, &m))
	var docs []manifestDocument
	for id, text := range m {
		doc, err := parser.ParseQuery(&ast.Source{Input: text})
		require.NoError(t, err)
		require.Len(t, doc.Operations, 1, "one operation per document, as the client preset writes them")
		docs = append(docs, manifestDocument{id: id, text: text, name: doc.Operations[0].Name, op: doc.Operations[0].Operation})
	}
	// Users first: the other operations need one.
	slices.SortFunc(docs, func(a, b manifestDocument) int {
		return strings.Compare(fmt.Sprint(a.name != "CreateUser", a.name), fmt.Sprint(b.name != "CreateUser", b.name))
	})
	return docs
}

// answer is a GraphQL answer over HTTP.
type answer struct {
	status int
	Data   map[string]any
	Errors []struct {
		Message    string
		Extensions map[string]any
	}
}

func (a answer) code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

func decodeAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(b, &a), string(b))
	return a
}

func postGraphQL(t *testing.T, base string, body map[string]any, headers map[string]string) answer {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(string(b)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return decodeAnswer(t, resp)
}

// getGraphQL sends params in a GET's URL; variables and extensions are JSON-encoded.
func getGraphQL(t *testing.T, base string, params map[string]any, headers map[string]string) answer {
	t.Helper()
	q := url.Values{}
	for k, v := range params {
		if s, ok := v.(string); ok {
			q.Set(k, s)
			continue
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		q.Set(k, string(b))
	}
	req, err := http.NewRequest(http.MethodGet, base+"/query?"+q.Encode(), nil)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return decodeAnswer(t, resp)
}

func bearer(t *testing.T, role auth.Role) map[string]string {
	t.Helper()
	tok, err := auth.Mint(trustedSecret, 1, role, time.Hour, "", "wikigraph")
	require.NoError(t, err)
	return map[string]string{"Authorization": "Bearer " + tok}
}

// trustedServer starts the built binary with the manifest and AUTH_MODE=jwt, and env.
func trustedServer(t *testing.T, env ...string) *running {
	t.Helper()
	manifest, err := filepath.Abs(trustedManifest)
	require.NoError(t, err)
	return startServer(t, append([]string{"DATABASE_URL=" + dbtest.URL(t), "TRUSTED_DOCUMENTS=" + manifest,
		"AUTH_MODE=jwt", "AUTH_JWT_SECRET=" + trustedSecret, "AUTH_AUDIENCE=wikigraph", "LOG_FLUSH_INTERVAL=0"}, env...)...)
}

// ws is a graphql-transport-ws connection.
type ws struct {
	t    *testing.T
	ctx  context.Context
	conn *websocket.Conn
}

func dialWS(t *testing.T, base string, init map[string]any) *ws {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	c := &ws{t: t, ctx: ctx, conn: conn}
	c.send(map[string]any{"type": "connection_init", "payload": init})
	require.Equal(t, "connection_ack", c.read()["type"])
	return c
}

func (c *ws) send(msg map[string]any) {
	c.t.Helper()
	require.NoError(c.t, wsjson.Write(c.ctx, c.conn, msg))
}

// read returns the next message that is not a ping or pong.
func (c *ws) read() map[string]any {
	c.t.Helper()
	for {
		var msg map[string]any
		require.NoError(c.t, wsjson.Read(c.ctx, c.conn, &msg))
		switch msg["type"] {
		case "ping":
			c.send(map[string]any{"type": "pong"})
		case "pong":
		default:
			return msg
		}
	}
}

// refused reads the error message operation id was refused with, and the complete gqlgen sends
// after it, and returns the error's code.
func (c *ws) refused(id string) string {
	c.t.Helper()
	msg := c.read()
	require.Equal(c.t, "error", msg["type"], "%v", msg)
	require.Equal(c.t, id, msg["id"])
	if next := c.read(); next["type"] != "complete" || next["id"] != id {
		c.t.Fatalf("after the error of %s: %v", id, next)
	}
	return errorCode(msg)
}

// errorCode is the code of an error message's first error.
func errorCode(msg map[string]any) string {
	errs, _ := msg["payload"].([]any)
	if len(errs) == 0 {
		return ""
	}
	code, _ := errs[0].(map[string]any)["extensions"].(map[string]any)["code"].(string)
	return code
}

// TestTrustedDocuments starts the built server with the manifest the examples generate
// (TRUSTED_DOCUMENTS) and runs every operation in it by id alone: documentId as sha256:<hex> and
// as the bare hex, and Apollo's extensions.persistedQuery, over POST and (queries) GET, the
// subscription over a websocket and server-sent events. Any other document is refused before it
// runs with TRUSTED_DOCUMENT_REQUIRED (POST, GET, websocket, SSE, an APQ registration), an
// unknown id with TRUSTED_DOCUMENT_NOT_FOUND, an admin token and introspection included while
// their bypasses are off (the defaults).
func TestTrustedDocuments(t *testing.T) {
	docs := readManifest(t)
	srv := trustedServer(t)
	admin := bearer(t, auth.Admin)

	// Each form in which a client names a document by its id alone.
	forms := map[string]func(d manifestDocument) map[string]any{
		"documentId sha256:<hex>": func(d manifestDocument) map[string]any { return map[string]any{"documentId": d.id} },
		"documentId bare hex":     func(d manifestDocument) map[string]any { return map[string]any{"documentId": d.hex()} },
		"extensions.persistedQuery": func(d manifestDocument) map[string]any {
			return map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": d.hex()}}}
		},
	}
	formNames := slices.Sorted(func(yield func(string) bool) {
		for k := range forms {
			if !yield(k) {
				return
			}
		}
	})

	n := 0
	var userID string
	variables := func(d manifestDocument) map[string]any {
		n++
		switch d.name {
		case "CreateUser":
			return map[string]any{"input": map[string]any{"username": fmt.Sprintf("trusted%d", n), "email": fmt.Sprintf("trusted%d@example.com", n)}}
		case "RenameUser":
			return map[string]any{"id": userID, "username": fmt.Sprintf("renamed%d", n)}
		case "CreateItem":
			return map[string]any{"input": map[string]any{"ownerId": userID, "title": fmt.Sprintf("item %d", n)}}
		case "UsersPage":
			return map[string]any{"first": 10, "prefix": "trusted"}
		case "ItemChanges":
			return map[string]any{"ownerId": userID}
		case "Refetch":
			return map[string]any{"id": userID}
		case "UsersByIds":
			return map[string]any{"ids": []string{userID}}
		case "UserDeletions":
			return map[string]any{}
		}
		return nil
	}
	for _, d := range docs {
		if !slices.Contains([]string{"CreateUser", "RenameUser", "CreateItem", "UsersPage", "ItemChanges", "Refetch", "UsersByIds", "UserDeletions"}, d.name) {
			t.Fatalf("the manifest has %s %s, which this test does not know how to run: give it variables here", d.op, d.name)
		}
	}
	var createItem, createUser manifestDocument
	for _, d := range docs {
		switch d.name {
		case "CreateItem":
			createItem = d
		case "CreateUser":
			createUser = d
		}
	}
	require.NotEmpty(t, createItem.id, "the subscription is shown an item created by its trusted document")

	ran := map[string]bool{}
	for _, d := range docs {
		for _, form := range formNames {
			t.Run(d.name+"/"+form, func(t *testing.T) {
				if d.op == ast.Subscription {
					// Over a websocket: the id in the subscribe message's payload, beside where the
					// query would be (documentId), or in its extensions (Apollo's form).
					c := dialWS(t, srv.base, map[string]any{"Authorization": admin["Authorization"]})
					payload := forms[form](d)
					payload["variables"] = variables(d)
					c.send(map[string]any{"id": "s", "type": "subscribe", "payload": payload})
					time.Sleep(300 * time.Millisecond) // subscribed (no message says so)
					if d.name == "UserDeletions" {
						// The manifest has no deleteUser: a user created by its document is deleted
						// in the database, whose trigger announces it as the server's own writes.
						user := forms[form](createUser)
						user["variables"] = variables(createUser)
						created := postGraphQL(t, srv.base, user, admin)
						require.Empty(t, created.Errors)
						id := created.Data["createUser"].(map[string]any)["id"].(string)
						_, err := dbtest.DB(t).ExecContext(t.Context(), "DELETE FROM users WHERE username = ?",
							user["variables"].(map[string]any)["input"].(map[string]any)["username"])
						require.NoError(t, err)
						msg := c.read()
						require.Equal(t, "next", msg["type"], "%v", msg)
						assert.Equal(t, id, msg["payload"].(map[string]any)["data"].(map[string]any)["userDeleted"])
						ran[d.id] = true
						return
					}
					created := postGraphQL(t, srv.base, map[string]any{"documentId": createItem.id, "variables": variables(createItem)}, admin)
					require.Empty(t, created.Errors)
					msg := c.read()
					require.Equal(t, "next", msg["type"], "%v", msg)
					data := msg["payload"].(map[string]any)["data"].(map[string]any)
					assert.Equal(t, "CREATED", data["itemChanged"].(map[string]any)["kind"])
					ran[d.id] = true
					return
				}
				body := forms[form](d)
				body["variables"] = variables(d)
				a := postGraphQL(t, srv.base, body, admin)
				require.Empty(t, a.Errors, "POST")
				require.Equal(t, http.StatusOK, a.status)
				require.Len(t, a.Data, 1)
				for _, v := range a.Data {
					require.NotNil(t, v, "POST")
				}
				if d.name == "CreateUser" && userID == "" {
					userID = a.Data["createUser"].(map[string]any)["id"].(string)
				}
				if d.op == ast.Query {
					params := forms[form](d)
					params["variables"] = variables(d)
					a := getGraphQL(t, srv.base, params, admin)
					require.Empty(t, a.Errors, "GET")
					require.Equal(t, http.StatusOK, a.status)
					require.Len(t, a.Data, 1)
					for _, v := range a.Data {
						require.NotNil(t, v, "GET")
					}
				}
				ran[d.id] = true
			})
		}
	}
	require.Len(t, ran, len(docs), "every document of the manifest ran")

	adHoc := `{ usersConnection(first: 1) { totalCount } }`
	t.Run("ad-hoc text is refused", func(t *testing.T) {
		// Refused as a request error: 400 under application/graphql-response+json, and under
		// application/json the status of a document that fails validation.
		for _, accept := range []string{"application/graphql-response+json", "application/json"} {
			h := map[string]string{"Accept": accept}
			a := postGraphQL(t, srv.base, map[string]any{"query": adHoc}, h)
			assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), accept)
			assert.Nil(t, a.Data, accept)
			var page manifestDocument
			for _, d := range docs {
				if d.name == "UsersPage" {
					page = d
				}
			}
			invalid := postGraphQL(t, srv.base, map[string]any{"documentId": page.id}, h) // $first missing
			require.Equal(t, "GRAPHQL_VALIDATION_FAILED", invalid.code())
			assert.Equal(t, invalid.status, a.status, accept)
			if accept == "application/graphql-response+json" {
				assert.Equal(t, http.StatusBadRequest, a.status)
			}
		}
		a := getGraphQL(t, srv.base, map[string]any{"query": adHoc}, nil)
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "GET")
		a = postGraphQL(t, srv.base, map[string]any{"query": adHoc}, admin)
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "an admin token, with the admin bypass off")
		a = postGraphQL(t, srv.base, map[string]any{"query": `{ __schema { queryType { name } } }`}, nil)
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "introspection, with its bypass off")

		// A trusted document's id with another text: the id does not vouch for the text.
		a = postGraphQL(t, srv.base, map[string]any{"documentId": docs[0].id, "query": adHoc}, admin)
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code())
	})
	t.Run("a trusted document's exact text runs", func(t *testing.T) {
		for _, d := range docs {
			if d.op == ast.Query {
				a := postGraphQL(t, srv.base, map[string]any{"query": d.text, "variables": variables(d)}, nil)
				assert.Empty(t, a.Errors)
				assert.NotEmpty(t, a.Data)
			}
		}
	})
	t.Run("APQ cannot register a document", func(t *testing.T) {
		sum := sha256.Sum256([]byte(adHoc))
		hash := hex.EncodeToString(sum[:])
		pq := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
		a := postGraphQL(t, srv.base, map[string]any{"query": adHoc, "extensions": pq}, nil)
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "registration")
		a = postGraphQL(t, srv.base, map[string]any{"extensions": pq}, nil)
		assert.Equal(t, "TRUSTED_DOCUMENT_NOT_FOUND", a.code(), "not registered; and not APQ's PERSISTED_QUERY_NOT_FOUND, on which a client sends the text")
	})
	t.Run("unknown ids are refused", func(t *testing.T) {
		unknown := strings.Repeat("0", 64)
		for name, body := range map[string]map[string]any{
			"documentId sha256":  {"documentId": "sha256:" + unknown},
			"documentId hex":     {"documentId": unknown},
			"documentId sha1":    {"documentId": "sha1:" + docs[0].hex()[:40]},
			"documentId number":  {"documentId": 12},
			"persistedQuery":     {"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": unknown}}},
			"persistedQuery v2":  {"extensions": map[string]any{"persistedQuery": map[string]any{"version": 2, "sha256Hash": docs[0].hex()}}},
			"ids that disagree":  {"documentId": docs[0].id, "extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": docs[1].hex()}}},
			"id with its prefix": {"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": "md5:" + docs[0].hex()}}},
		} {
			a := postGraphQL(t, srv.base, body, map[string]string{"Accept": "application/graphql-response+json"})
			assert.Equal(t, "TRUSTED_DOCUMENT_NOT_FOUND", a.code(), name)
			assert.Equal(t, http.StatusBadRequest, a.status, name)
		}
		a := getGraphQL(t, srv.base, map[string]any{"documentId": "sha256:" + unknown}, nil)
		assert.Equal(t, "TRUSTED_DOCUMENT_NOT_FOUND", a.code(), "GET")
	})
	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, srv.base, map[string]any{"Authorization": admin["Authorization"]})
		c.send(map[string]any{"id": "a", "type": "subscribe", "payload": map[string]any{
			"query": `subscription { itemChanged { kind } }`}})
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", c.refused("a"), "an ad-hoc subscription, an admin's")
		c.send(map[string]any{"id": "b", "type": "subscribe", "payload": map[string]any{"documentId": "sha256:" + strings.Repeat("1", 64)}})
		assert.Equal(t, "TRUSTED_DOCUMENT_NOT_FOUND", c.refused("b"))
		// The id of one subscribe does not carry over to the next.
		c.send(map[string]any{"id": "c", "type": "subscribe", "payload": map[string]any{"query": adHoc}})
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", c.refused("c"))
		// A query by id over the same socket.
		var page manifestDocument
		for _, d := range docs {
			if d.name == "UsersPage" {
				page = d
			}
		}
		c.send(map[string]any{"id": "d", "type": "subscribe", "payload": map[string]any{"documentId": page.id, "variables": map[string]any{"first": 1}}})
		msg := c.read()
		require.Equal(t, "next", msg["type"], "%v", msg)
		assert.NotNil(t, msg["payload"].(map[string]any)["data"].(map[string]any)["usersConnection"])
		require.Equal(t, "complete", c.read()["type"])
		// A message is read here as gqlgen reads it: a byte after its JSON (which gqlgen ignores)
		// does not hide it, so it runs the document it names, not one an earlier message named
		// (a subscribe gqlgen refused before it took that message's id).
		var create manifestDocument
		for _, d := range docs {
			if d.name == "CreateUser" {
				create = d
			}
		}
		c.send(map[string]any{"id": "e", "type": "subscribe", "payload": map[string]any{"documentId": create.id, "variables": 5}})
		msg = c.read()
		require.Equal(t, "error", msg["type"], "%v", msg)
		smuggled := fmt.Sprintf(`{"id":"f","type":"subscribe","payload":{"documentId":%q,"variables":{"first":1,"input":{"username":"smuggled","email":"smuggled@example.com"}}}}x`, page.id)
		require.NoError(t, c.conn.Write(c.ctx, websocket.MessageText, []byte(smuggled)))
		for msg = c.read(); msg["id"] != "f"; msg = c.read() {
		}
		require.Equal(t, "next", msg["type"], "%v", msg)
		data := msg["payload"].(map[string]any)["data"].(map[string]any)
		assert.NotContains(t, data, "createUser", "the message named UsersPage")
		assert.Contains(t, data, "usersConnection")
	})
	t.Run("server-sent events", func(t *testing.T) {
		var sub manifestDocument
		for _, d := range docs {
			if d.name == "ItemChanges" {
				sub = d
			}
		}
		create, err := json.Marshal(map[string]any{"documentId": createItem.id, "variables": variables(createItem)})
		require.NoError(t, err)
		first := func(body string) string {
			req, err := http.NewRequest(http.MethodPost, srv.base+"/query", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
			require.NoError(t, err)
			defer resp.Body.Close()
			lines := bufio.NewScanner(resp.Body)
			for lines.Scan() {
				if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
					return data
				}
				if lines.Text() == ":" { // the stream is open: an event to hear
					go func() {
						time.Sleep(300 * time.Millisecond) // subscribed (no message says so)
						req, _ := http.NewRequest(http.MethodPost, srv.base+"/query", strings.NewReader(string(create)))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", admin["Authorization"])
						if resp, err := http.DefaultClient.Do(req); err == nil {
							resp.Body.Close()
						}
					}()
				}
			}
			t.Fatalf("no event: %v", lines.Err())
			return ""
		}
		assert.Contains(t, first(`{"query":"subscription { itemChanged { kind } }"}`), "TRUSTED_DOCUMENT_REQUIRED")
		got := first(fmt.Sprintf(`{"documentId":%q,"variables":{"ownerId":%q}}`, sub.id, userID))
		assert.Contains(t, got, `"kind":"CREATED"`)
		assert.NotContains(t, got, "errors")
	})
	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(srv.base + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Contains(t, string(b), `wikigraph_graphql_errors_total{code="TRUSTED_DOCUMENT_REQUIRED"}`)
		assert.Contains(t, string(b), `wikigraph_graphql_errors_total{code="TRUSTED_DOCUMENT_NOT_FOUND"}`)
	})
	require.NoError(t, srv.stop(t))
	assert.Contains(t, srv.logs.String(), `"msg":"only trusted documents run"`)
}

// TestTrustedDocumentsBypasses: with TRUSTED_DOCUMENTS_ADMIN_BYPASS an admin token may send
// any document (over HTTP and a websocket), a user token or none may not; with
// TRUSTED_DOCUMENTS_INTROSPECTION anyone may send introspection, and only introspection.
func TestTrustedDocumentsBypasses(t *testing.T) {
	srv := trustedServer(t, "TRUSTED_DOCUMENTS_ADMIN_BYPASS=true", "TRUSTED_DOCUMENTS_INTROSPECTION=true")
	adHoc := `{ usersConnection(first: 1) { totalCount } }`

	a := postGraphQL(t, srv.base, map[string]any{"query": adHoc}, bearer(t, auth.Admin))
	assert.Empty(t, a.Errors, "an admin")
	assert.NotNil(t, a.Data["usersConnection"])
	a = getGraphQL(t, srv.base, map[string]any{"query": adHoc}, bearer(t, auth.Admin))
	assert.Empty(t, a.Errors, "an admin, GET")
	a = postGraphQL(t, srv.base, map[string]any{"query": adHoc}, bearer(t, auth.User))
	assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "a user")
	a = postGraphQL(t, srv.base, map[string]any{"query": adHoc}, nil)
	assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "anonymous")
	expired, err := auth.Mint(trustedSecret, 1, auth.Admin, -time.Hour, "", "wikigraph")
	require.NoError(t, err)
	a = postGraphQL(t, srv.base, map[string]any{"query": adHoc}, map[string]string{"Authorization": "Bearer " + expired})
	assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), "an expired admin token")

	c := dialWS(t, srv.base, map[string]any{"Authorization": bearer(t, auth.Admin)["Authorization"]})
	c.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": adHoc}})
	msg := c.read()
	assert.Equal(t, "next", msg["type"], "an admin's websocket: %v", msg)
	c = dialWS(t, srv.base, map[string]any{"Authorization": bearer(t, auth.User)["Authorization"]})
	c.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": adHoc}})
	assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", c.refused("1"), "a user's websocket")

	for _, q := range []string{
		`{ __schema { queryType { name } } }`,
		`query { __type(name: "User") { name } __typename }`,
		`query A { ...F } fragment F on Query { __schema { types { name } } }`,
	} {
		a = postGraphQL(t, srv.base, map[string]any{"query": q}, nil)
		assert.Empty(t, a.Errors, q)
		assert.NotEmpty(t, a.Data, q)
	}
	for _, q := range []string{
		`{ __schema { queryType { name } } usersConnection(first: 1) { totalCount } }`,
		`query A { ...F } fragment F on Query { __typename usersConnection(first: 1) { totalCount } }`,
		`query A { __typename } query B { usersConnection(first: 1) { totalCount } }`,
		`mutation { __typename }`,
	} {
		a = postGraphQL(t, srv.base, map[string]any{"query": q, "operationName": "A"}, nil)
		assert.Equal(t, "TRUSTED_DOCUMENT_REQUIRED", a.code(), q)
	}
}

// TestTrustedDocumentsRefusedAtStart: a manifest that is stale (a document the schema no longer
// validates), whose key is not its text's hash, or that is not JSON stops the server at start
// with an error naming the file and the entry.
func TestTrustedDocumentsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	id := func(text string) string {
		sum := sha256.Sum256([]byte(text))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	good := `query Good { usersConnection(first: 1) { totalCount } }`
	stale := `query Stale { usersConnection(first: 1) { totalCount nickname } }`
	manifest := func(entries map[string]string) string {
		b, err := json.Marshal(entries)
		require.NoError(t, err)
		return string(b)
	}
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"stale", manifest(map[string]string{id(good): good, id(stale): stale}),
			[]string{"1 of its 2 documents cannot be trusted", id(stale)[:20], "query Stale", "not valid against the schema", "Cannot query field", "nickname"}},
		{"hash not of its text", manifest(map[string]string{id(good): good, id(good + " "): good}),
			[]string{id(good + " ")[:20], "query Good", "not the sha256 of the document", id(good)}},
		{"not sha256", manifest(map[string]string{"0123456789abcdef0123456789abcdef01234567": good}),
			[]string{"0123456789abcdef0123", "not a sha256 id"}},
		{"unreadable JSON", `{"` + id(good) + `": "query Good {`, []string{"not a persisted-documents manifest", "unexpected EOF"}},
		{"not an object of strings", `["query Good { __typename }"]`, []string{"not a persisted-documents manifest"}},
		{"no documents", `{}`, []string{"holds no document"}},
		{"no file", "", []string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if tc.content != "" {
				require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a server that starts never exits
			defer cancel()
			cmd := exec.CommandContext(ctx, buildBinary(t))
			cmd.Env = append(os.Environ(), "DATABASE_URL="+dbtest.URL(t), "TRUSTED_DOCUMENTS="+path,
				fmt.Sprintf("PORT=%d", freePort(t)), "HOST=127.0.0.1", "LOG_FORMAT=text")
			out, err := cmd.CombinedOutput()
			require.NoError(t, ctx.Err(), "the server started")
			require.Error(t, err)
			assert.Contains(t, string(out), "TRUSTED_DOCUMENTS "+path)
			for _, w := range tc.want {
				assert.Contains(t, string(out), w)
			}
			assert.NotContains(t, string(out), "msg=serving", "stopped before it served")
		})
	}
}
