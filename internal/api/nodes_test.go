package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/nodes"
)

// freshEnv is an env on a database of its own, whose rows are numbered from 1 (user 1 and item
// 1 both exist once each is created), recording its statements.
func freshEnv(t *testing.T) (*env, *dbtest.Statements) {
	t.Helper()
	db := dbtest.Migrated(t)
	recorded := dbtest.RecordStatements(db)
	logs := new(bytes.Buffer)
	h := api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 100, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	return &env{t: t, h: h, c: client.New(h), log: logs}, recorded
}

func userGID(row int64) string { return gqlscalar.ID{Type: gqlscalar.TypeUser, Row: row}.String() }
func itemGID(row int64) string { return gqlscalar.ID{Type: gqlscalar.TypeItem, Row: row}.String() }

// User 1 and item 1 have distinct ids (the Relay convention's base64 of "User:1" and
// "Item:1"), databaseId carries the row number, and node finds each as what it is.
func TestGlobalIDsAreUniqueAcrossTypes(t *testing.T) {
	e, _ := freshEnv(t)
	u := e.createUser("first_user", "first@example.com")
	it := e.createItem(u.ID, "first item", nil)
	assert.Equal(t, "VXNlcjox", u.ID, `base64("User:1")`)
	assert.Equal(t, "SXRlbTox", it.ID, `base64("Item:1")`)
	assert.NotEqual(t, u.ID, it.ID)

	var rows struct {
		User struct {
			ID, Username string
			DatabaseID   int
		}
		Item struct {
			ID, Title  string
			DatabaseID int
		}
	}
	e.c.MustPost(`{ user(id: 1) { id databaseId username } item(id: "1") { id databaseId title } }`, &rows)
	assert.Equal(t, 1, rows.User.DatabaseID)
	assert.Equal(t, 1, rows.Item.DatabaseID)
	assert.Equal(t, u.ID, rows.User.ID)
	assert.Equal(t, it.ID, rows.Item.ID)

	query := `query($id: ID!) { node(id: $id) { __typename id
		... on User { databaseId username }
		... on Item { databaseId title owner { id } } } }`
	var user struct{ Node map[string]any }
	e.c.MustPost(query, &user, client.Var("id", u.ID))
	assert.Equal(t, map[string]any{"__typename": "User", "id": u.ID, "databaseId": float64(1), "username": "first_user"}, user.Node)
	var item struct{ Node map[string]any }
	e.c.MustPost(query, &item, client.Var("id", it.ID))
	assert.Equal(t, map[string]any{"__typename": "Item", "id": it.ID, "databaseId": float64(1), "title": "first item",
		"owner": map[string]any{"id": u.ID}}, item.Node)

	t.Run("a well-formed id of no row is null", func(t *testing.T) {
		for _, id := range []string{userGID(999999), itemGID(999999)} {
			data, errs := e.post(query, map[string]any{"id": id})
			assert.Empty(t, errs)
			assert.Equal(t, map[string]any{"node": nil}, data)
		}
	})
	t.Run("anything else is BAD_USER_INPUT", func(t *testing.T) {
		for _, id := range []any{
			"1", 1, // a row number does not say its type
			"zzz", "", "VXNlcjox=", "VXNlcjowMQ==", // garbage, a non-canonical padding, "User:01"
			"UG9zdDox", // "Post:1": no such type
		} {
			got := e.mustFail(query, map[string]any{"id": id})
			assert.Equal(t, "BAD_USER_INPUT", got.code(), "%v: %s", id, got.Message)
			assert.Equal(t, "id", got.field(), "%v", id)
		}
	})
	t.Run("the id is a plain field, with every other", func(t *testing.T) {
		var resp struct {
			UsersConnection struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		e.c.MustPost(`{ usersConnection(first: 1) { edges { node { id } } } }`, &resp)
		require.Len(t, resp.UsersConnection.Edges, 1)
		assert.Equal(t, u.ID, resp.UsersConnection.Edges[0].Node.ID)
	})
}

// Every argument and input field naming a user or an item takes its global id, or its row
// number as a string or an integer (what the REST service's clients send); another type's
// global id, or garbage, is BAD_USER_INPUT on that field.
func TestIDArgumentsTakeEitherForm(t *testing.T) {
	e, _ := freshEnv(t)
	owner := e.createUser("owner_a", "owner_a@example.com")
	other := e.createUser("owner_b", "owner_b@example.com") // user 2
	ownerRow := idNum(t, owner.ID)
	forms := func(gid string) map[string]any {
		row := idNum(t, gid)
		return map[string]any{"global id": gid, "row as string": strconv.FormatInt(row, 10), "row as number": row}
	}

	for form, ownerID := range forms(owner.ID) {
		t.Run(form, func(t *testing.T) {
			it := e.createItem(fmt.Sprint(ownerID), "made with the "+form, nil)
			if n, ok := ownerID.(int64); ok { // createItem's helper sends a string; send the number too
				var resp struct{ CreateItem item }
				e.c.MustPost(`mutation($o: ID!) { createItem(input: {ownerId: $o, title: "by number"}) { `+itemFields+` } }`, &resp, client.Var("o", n))
				assert.Equal(t, owner.ID, resp.CreateItem.Owner.ID)
			}
			assert.Equal(t, owner.ID, it.Owner.ID)
			for itForm, itemID := range forms(it.ID) {
				vars := map[string]any{"u": ownerID, "i": itemID}
				data, errs := e.post(`query($u: ID!, $i: ID!) {
					user(id: $u) { id }
					item(id: $i) { id }
					items(ownerId: $u, limit: 100) { id }
					itemsConnection(first: 100, filter: {ownerId: $u}) { edges { node { id } } }
					owned: user(id: $u) { items(first: 100, filter: {ownerId: $u}) { edges { node { id } } } }
				}`, vars)
				require.Empty(t, errs, "%s / %s", form, itForm)
				assert.Equal(t, owner.ID, data["user"].(map[string]any)["id"])
				assert.Equal(t, it.ID, data["item"].(map[string]any)["id"])
				assert.Contains(t, fmt.Sprint(data["items"]), it.ID)
				assert.Contains(t, fmt.Sprint(data["itemsConnection"]), it.ID)
				assert.Contains(t, fmt.Sprint(data["owned"]), it.ID)

				data, errs = e.post(`mutation($u: ID!, $i: ID!) {
					updateUser(id: $u, input: {}) { id }
					updateItem(id: $i, input: {description: "again"}) { id description }
				}`, vars)
				require.Empty(t, errs, "%s / %s", form, itForm)
				assert.Equal(t, owner.ID, data["updateUser"].(map[string]any)["id"])
				assert.Equal(t, it.ID, data["updateItem"].(map[string]any)["id"])
			}
			data, errs := e.post(`mutation($i: ID!) { deleteItem(id: $i) { id } }`, map[string]any{"i": forms(it.ID)[form]})
			require.Empty(t, errs)
			assert.Equal(t, it.ID, data["deleteItem"].(map[string]any)["id"])
		})
	}

	t.Run("deleteUser", func(t *testing.T) {
		third := e.createUser("owner_c", "owner_c@example.com")
		for _, c := range []struct {
			id   any
			want string
		}{{idNum(t, other.ID), other.ID}, {strconv.FormatInt(ownerRow, 10), owner.ID}, {third.ID, third.ID}} {
			data, errs := e.post(`mutation($u: ID!) { deleteUser(id: $u) { id } }`, map[string]any{"u": c.id})
			require.Empty(t, errs, "%v", c.id)
			assert.Equal(t, c.want, data["deleteUser"].(map[string]any)["id"], "%v", c.id)
		}
	})
}

// A global id of the wrong type, or an id that is neither form, is BAD_USER_INPUT naming the
// argument or input field, and nothing is read or written.
func TestWrongIDsAreBadUserInput(t *testing.T) {
	e, recorded := freshEnv(t)
	u := e.createUser("typed", "typed@example.com")
	it := e.createItem(u.ID, "typed item", nil)
	recorded.Take()
	for _, c := range []struct {
		query, field string
	}{
		{`query($id: ID!) { user(id: $id) { id } }`, "id"},
		{`query($id: ID!) { items(ownerId: $id) { id } }`, "ownerId"},
		{`query($id: ID!) { itemsConnection(filter: {ownerId: $id}) { totalCount } }`, "ownerId"},
		{`mutation($id: ID!) { updateUser(id: $id, input: {username: "renamed"}) { id } }`, "id"},
		{`mutation($id: ID!) { deleteUser(id: $id) { id } }`, "id"},
		{`mutation($id: ID!) { createItem(input: {ownerId: $id, title: "x"}) { id } }`, "ownerId"},
	} {
		got := e.mustFail(c.query, map[string]any{"id": it.ID}) // an item's id where a user's goes
		assert.Equal(t, "BAD_USER_INPUT", got.code(), c.query)
		assert.Equal(t, c.field, got.field(), c.query)
		assert.Equal(t, c.field+" is the id of an Item, not of a User", got.Message, c.query)
	}
	for _, c := range []struct {
		query, field string
	}{
		{`query($id: ID!) { item(id: $id) { id } }`, "id"},
		{`mutation($id: ID!) { updateItem(id: $id, input: {title: "renamed"}) { id } }`, "id"},
		{`mutation($id: ID!) { deleteItem(id: $id) { id } }`, "id"},
	} {
		got := e.mustFail(c.query, map[string]any{"id": u.ID})
		assert.Equal(t, "BAD_USER_INPUT", got.code(), c.query)
		assert.Equal(t, c.field, got.field(), c.query)
		assert.Equal(t, c.field+" is the id of a User, not of an Item", got.Message, c.query)
	}
	for _, garbage := range []any{"x1", "0", "-3", 1.5, "SXRlbTox\n", strings.Repeat("A", 40)} {
		got := e.mustFail(`query($id: ID!) { user(id: $id) { id } }`, map[string]any{"id": garbage})
		assert.Equal(t, "BAD_USER_INPUT", got.code(), "%v", garbage)
		assert.Equal(t, "id", got.field(), "%v", garbage)
		assert.Equal(t, "id must be a global id or a row number", got.Message, "%v", garbage)
		got = e.mustFail(`mutation($id: ID!) { createItem(input: {ownerId: $id, title: "x"}) { id } }`, map[string]any{"id": garbage})
		assert.Equal(t, "BAD_USER_INPUT", got.code(), "%v", garbage)
		assert.Equal(t, "ownerId", got.field(), "%v", garbage)
	}
	assert.Empty(t, recorded.Take(), "nothing read or written")
}

// nodes answers in order, null where nothing is, duplicates included, in one statement per type
// however many ids.
func TestNodesOneStatementPerType(t *testing.T) {
	e, recorded := freshEnv(t)
	var users, itemIDs []string
	for i := range 60 {
		u := e.createUser(fmt.Sprintf("nodes_%02d", i), fmt.Sprintf("nodes_%02d@example.com", i))
		users = append(users, u.ID)
		itemIDs = append(itemIDs, e.createItem(u.ID, fmt.Sprintf("thing %02d", i), nil).ID)
	}
	query := `query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
		... on User { username }
		... on Item { title owner { username } } } }`

	for _, n := range []int{1, 10, 50} {
		t.Run(fmt.Sprintf("%d of each", n), func(t *testing.T) {
			var ids []string
			var want []any
			for i := range n {
				ids = append(ids, users[i], itemIDs[i])
				want = append(want,
					map[string]any{"__typename": "User", "id": users[i], "username": fmt.Sprintf("nodes_%02d", i)},
					map[string]any{"__typename": "Item", "id": itemIDs[i], "title": fmt.Sprintf("thing %02d", i),
						"owner": map[string]any{"username": fmt.Sprintf("nodes_%02d", i)}})
			}
			recorded.Take()
			data, errs := e.post(query, map[string]any{"ids": ids})
			got := recorded.Take()
			require.Empty(t, errs)
			assert.Equal(t, want, data["nodes"])
			// The users (one lookup), the items with their owners (one join).
			assert.Len(t, got, 2, "statements:\n%s", strings.Join(got, "\n"))
		})
	}
	t.Run("users with their items", func(t *testing.T) {
		recorded.Take()
		var resp struct {
			Nodes []struct {
				Items struct {
					Edges []struct{ Node struct{ Title string } }
				}
			}
		}
		e.c.MustPost(`query($ids: [ID!]!) { nodes(ids: $ids) { ... on User { items(first: 2) { edges { node { title } } } } } }`,
			&resp, client.Var("ids", users[:20]))
		got := recorded.Take()
		require.Len(t, resp.Nodes, 20)
		for i, n := range resp.Nodes {
			require.Len(t, n.Items.Edges, 1)
			assert.Equal(t, fmt.Sprintf("thing %02d", i), n.Items.Edges[0].Node.Title)
		}
		// The users, then every user's items in one statement (the users were listed together).
		assert.Len(t, got, 2, "statements:\n%s", strings.Join(got, "\n"))
	})
	t.Run("order, duplicates, missing rows", func(t *testing.T) {
		ids := []string{itemIDs[3], userGID(999999), users[0], itemIDs[3], itemGID(999999), users[0]}
		recorded.Take()
		data, errs := e.post(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids})
		got := recorded.Take()
		require.Empty(t, errs)
		assert.Equal(t, []any{
			map[string]any{"id": itemIDs[3]}, nil, map[string]any{"id": users[0]}, map[string]any{"id": itemIDs[3]}, nil, map[string]any{"id": users[0]},
		}, data["nodes"])
		assert.Len(t, got, 2, "statements:\n%s", strings.Join(got, "\n"))
	})
	t.Run("one type, one statement; none, none", func(t *testing.T) {
		recorded.Take()
		data, errs := e.post(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": users[:40]})
		require.Empty(t, errs)
		assert.Len(t, data["nodes"], 40)
		assert.Len(t, recorded.Take(), 1)
		data, errs = e.post(`{ nodes(ids: []) { id } }`, nil)
		require.Empty(t, errs)
		assert.Equal(t, []any{}, data["nodes"])
		assert.Empty(t, recorded.Take())
	})
	t.Run("a row number or garbage among them", func(t *testing.T) {
		for _, bad := range []any{"1", 1, "nope"} {
			got := e.mustFail(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []any{users[0], bad}})
			assert.Equal(t, "BAD_USER_INPUT", got.code(), "%v", bad)
			assert.Equal(t, "ids", got.field(), "%v", bad)
		}
		assert.Empty(t, recorded.Take(), "nothing read")
	})
}

// nodes takes at most nodes.MaxIDs ids; a hostile list is refused before anything runs, by the
// cost limit, and quickly.
func TestNodesAreBounded(t *testing.T) {
	e, recorded := freshEnv(t)
	u := e.createUser("bounded", "bounded@example.com")
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = u.ID
		}
		return out
	}
	data, errs := e.post(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids(nodes.MaxIDs)})
	require.Empty(t, errs)
	assert.Len(t, data["nodes"], nodes.MaxIDs)

	recorded.Take()
	err := e.mustFail(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids(nodes.MaxIDs + 1)})
	assert.Equal(t, "BAD_USER_INPUT", err.code())
	assert.Equal(t, "ids", err.field())
	assert.Contains(t, err.Message, "at most 100 ids")

	// 100,000 row numbers (400 KB), or as many global ids as the body limit (1 MiB) lets in.
	for id, n := range map[string]int{"1": 100_000, u.ID: 90_000} {
		body, jerr := json.Marshal(map[string]any{
			"query":     `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
			"variables": map[string]any{"ids": slicesRepeat(id, n)},
		})
		require.NoError(t, jerr)
		start := time.Now()
		req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		took := time.Since(start)
		out, _ := io.ReadAll(w.Body)
		assert.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", firstCode(t, out), "%.300s", out)
		assert.Less(t, took, 2*time.Second, "refused quickly")
	}
	assert.Empty(t, recorded.Take(), "nothing read")
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func firstCode(t *testing.T, body []byte) string {
	t.Helper()
	var resp struct{ Errors []gqlError }
	require.NoError(t, json.Unmarshal(body, &resp), "%.300s", body)
	require.NotEmpty(t, resp.Errors, "%.300s", body)
	return resp.Errors[0].code()
}
