package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The executor is gqlgen's, rewritten to cost less per field (internal/gqlfast): a response must
// be byte for byte what the query asks for, in its order, with aliases, fragments, __typename and
// repeated fields, and an error deep in a list must carry its whole path.

func TestNestedResponseIsExact(t *testing.T) {
	e := newEnv(t)
	name := unique("exact")
	a := e.createUser(name+"_a", name+"_a@example.com")
	b := e.createUser(name+"_b", name+"_b@example.com")
	desc := "d\"1"
	ia := e.createItem(a.ID, "first of a", &desc)
	ib := e.createItem(b.ID, "first of b", nil)

	query := `query($p: String!) {
		list: usersConnection(first: 2, filter: {usernamePrefix: $p}) {
			edges { node { __typename id ...Who login: username id
				items(first: 1) { edges { node { id title description owner { username } } } } } }
			pageInfo { hasNextPage }
		}
	}
	fragment Who on User { username email }`
	body := fmt.Sprintf(`{"query":%q,"variables":{"p":%q}}`, query, name)
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	user := func(u user, it item, desc string) string {
		return `{"node":{"__typename":"User","id":"` + u.ID + `","username":"` + u.Username + `","email":"` + u.Email +
			`","login":"` + u.Username + `","items":{"edges":[{"node":{"id":"` + it.ID + `","title":"` + it.Title +
			`","description":` + desc + `,"owner":{"username":"` + u.Username + `"}}}]}}}`
	}
	want := `{"data":{"list":{"edges":[` + user(a, ia, `"d\"1"`) + `,` + user(b, ib, `null`) + `],"pageInfo":{"hasNextPage":false}}}}`
	assert.Equal(t, want, strings.TrimSpace(w.Body.String()))
}

func TestErrorsInListsCarryTheirPath(t *testing.T) {
	e := newEnv(t)
	name := unique("paths")
	e.createUser(name+"_a", name+"_a@example.com")
	e.createUser(name+"_b", name+"_b@example.com")
	data, errs := e.post(`query($p: String!) { usersConnection(first: 2, filter: {usernamePrefix: $p}) {
		edges { node { id items(first: -1) { edges { node { id } } } } } } }`, map[string]any{"p": name})
	require.Len(t, errs, 2, "one error per user")
	for i, err := range errs {
		assert.Equal(t, "BAD_USER_INPUT", err.code())
		assert.Equal(t, []any{"usersConnection", "edges", float64(i), "node", "items"}, err.Path)
	}
	assert.Nil(t, data, "a non-null field's null reaches the nullable root")
}

// Pages read only the columns their selection needs (users.Lookups.Page, items.Query.Brief):
// whatever asks for the other fields, anywhere below the page, through a fragment, a deferred
// one, an alias or the owner that is the page's own user, gets them.
func TestBriefReadsKeepEveryFieldAsked(t *testing.T) {
	e := newEnv(t)
	name := unique("brief")
	u := e.createUser(name+"_a", name+"_a@example.com")
	desc := "described"
	it := e.createItem(u.ID, "a title", &desc)
	node := func(data map[string]any) map[string]any {
		edges := data["usersConnection"].(map[string]any)["edges"].([]any)
		require.Len(t, edges, 1)
		return edges[0].(map[string]any)["node"].(map[string]any)
	}
	firstItem := func(user map[string]any, field string) map[string]any {
		edges := user[field].(map[string]any)["edges"].([]any)
		require.Len(t, edges, 1)
		return edges[0].(map[string]any)["node"].(map[string]any)
	}
	vars := map[string]any{"p": name}

	t.Run("the owner's email, below the items", func(t *testing.T) {
		data, errs := e.post(`query($p: String!) { usersConnection(first: 1, filter: {usernamePrefix: $p}) { edges { node {
			username items { edges { node { title owner { email createdAt } } } } } } } }`, vars)
		require.Empty(t, errs)
		owner := firstItem(node(data), "items")["owner"].(map[string]any)
		assert.Equal(t, u.Email, owner["email"])
		assert.Equal(t, u.CreatedAt, owner["createdAt"])
	})
	t.Run("details through a fragment and an alias", func(t *testing.T) {
		data, errs := e.post(`query($p: String!) { usersConnection(first: 1, filter: {usernamePrefix: $p}) { edges { node {
			a: items { edges { node { title } } } b: items { edges { node { ...Details } } } } } } }
			fragment Details on Item { description updatedAt }`, vars)
		require.Empty(t, errs)
		user := node(data)
		assert.Equal(t, it.Title, firstItem(user, "a")["title"])
		assert.Equal(t, desc, firstItem(user, "b")["description"])
		assert.Equal(t, it.UpdatedAt, firstItem(user, "b")["updatedAt"])
	})
	t.Run("the first page of all users, prepared", func(t *testing.T) {
		data, errs := e.post(`{ usersConnection(first: 1) { edges { node { id username email } } } }`, nil)
		require.Empty(t, errs)
		edges := data["usersConnection"].(map[string]any)["edges"].([]any)
		require.Len(t, edges, 1)
		first := edges[0].(map[string]any)["node"].(map[string]any)
		var byID struct{ User user }
		e.c.MustPost(`query($id: ID!) { user(id: $id) { `+userFields+` } }`, &byID, client.Var("id", first["id"]))
		assert.Equal(t, byID.User.Email, first["email"])
	})
}

// The executor's caches end with their operation: distinct large variables, one request after
// another, leave nothing behind (caches shared by operations kept 2,048 of them: 900 KB
// variables pinned 1.1 GB).
func TestExecutionCachesEndWithTheOperation(t *testing.T) {
	e := newEnv(t)
	const n, size = 60, 256 << 10
	post := func(i int) {
		name := fmt.Sprintf("%d%s", i, strings.Repeat("x", size))
		data, errs := e.post(`query($u: String!) { userByUsername(username: $u) { id } usersConnection(first: 2) { edges { node { id } } } }`,
			map[string]any{"u": name})
		require.Empty(t, errs)
		require.Nil(t, data["userByUsername"], "no such user")
	}
	post(-1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		post(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d requests of %d KB: heap grew %d KB", n, size>>10, grown>>10)
	assert.Less(t, grown, int64(n*size/4), "operations' variables are not kept")
}
