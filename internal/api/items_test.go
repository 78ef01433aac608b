package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

type item struct {
	ID          string
	Title       string
	Description *string
	Owner       struct{ ID string }
	CreatedAt   string
	UpdatedAt   string
}

const itemFields = `id title description owner { id } createdAt updatedAt`

func (e *env) createItem(ownerID, title string, description *string) item {
	e.t.Helper()
	var resp struct{ CreateItem item }
	e.c.MustPost(`mutation($in: NewItem!) { createItem(input: $in) { `+itemFields+` } }`, &resp,
		client.Var("in", map[string]any{"ownerId": ownerID, "title": title, "description": description}))
	return resp.CreateItem
}

func (e *env) countItems() int {
	e.t.Helper()
	n, err := dbtest.DB(e.t).NewSelect().Table("items").Count(context.Background())
	require.NoError(e.t, err)
	return n
}

func ptr[T any](v T) *T { return &v }

func TestItemsCRUD(t *testing.T) {
	e := newEnv(t)
	name := unique("owner")
	owner := e.createUser(name, name+"@example.com")

	it := e.createItem(owner.ID, "  A lamp  ", ptr("brass, 1920s"))
	assert.Equal(t, "A lamp", it.Title, "title is trimmed")
	assert.Equal(t, "brass, 1920s", *it.Description)
	assert.Equal(t, owner.ID, it.Owner.ID)
	bare := e.createItem(owner.ID, "Chair", nil)
	assert.Nil(t, bare.Description)

	t.Run("item by id", func(t *testing.T) {
		var resp struct{ Item *item }
		e.c.MustPost(`query($id: ID!) { item(id: $id) { `+itemFields+` } }`, &resp, client.Var("id", it.ID))
		require.NotNil(t, resp.Item)
		assert.Equal(t, it, *resp.Item)
		var none struct{ Item *item }
		e.c.MustPost(`{ item(id: "999999999") { id } }`, &none)
		assert.Nil(t, none.Item)
	})
	t.Run("items list", func(t *testing.T) {
		var resp struct{ Items []item }
		e.c.MustPost(`query($o: ID) { items(ownerId: $o) { id } }`, &resp, client.Var("o", owner.ID))
		assert.Equal(t, []string{it.ID, bare.ID}, ids(resp.Items))
		e.c.MustPost(`query($o: ID) { items(ownerId: $o, offset: 1, limit: 1) { id } }`, &resp, client.Var("o", owner.ID))
		assert.Equal(t, []string{bare.ID}, ids(resp.Items))
		var all struct{ Items []item }
		e.c.MustPost(`{ items(limit: 100) { id owner { id } } }`, &all)
		assert.Len(t, all.Items, min(100, e.countItems()), "every owner's items without ownerId")
		for i := 1; i < len(all.Items); i++ {
			assert.Less(t, idNum(t, all.Items[i-1].ID), idNum(t, all.Items[i].ID), "ordered by id")
		}
	})
	t.Run("update", func(t *testing.T) {
		var resp struct{ UpdateItem item }
		e.c.MustPost(`mutation($id: ID!) { updateItem(id: $id, input: {title: " Lamp "}) { `+itemFields+` } }`, &resp, client.Var("id", it.ID))
		assert.Equal(t, "Lamp", resp.UpdateItem.Title)
		assert.Equal(t, "brass, 1920s", *resp.UpdateItem.Description, "omitted stays")
		assert.Greater(t, parseTime(t, resp.UpdateItem.UpdatedAt), parseTime(t, it.UpdatedAt))
		e.c.MustPost(`mutation($id: ID!) { updateItem(id: $id, input: {description: null}) { `+itemFields+` } }`, &resp, client.Var("id", it.ID))
		assert.Nil(t, resp.UpdateItem.Description, "null clears the description")
		assert.Equal(t, "Lamp", resp.UpdateItem.Title)
	})
	t.Run("delete", func(t *testing.T) {
		var resp struct{ DeleteItem item }
		e.c.MustPost(`mutation($id: ID!) { deleteItem(id: $id) { `+itemFields+` } }`, &resp, client.Var("id", bare.ID))
		assert.Equal(t, bare, resp.DeleteItem)
		gqlErr := e.mustFail(`mutation($id: ID!) { deleteItem(id: $id) { id } }`, map[string]any{"id": bare.ID})
		assert.Equal(t, "NOT_FOUND", gqlErr.code())
		gqlErr = e.mustFail(`mutation { updateItem(id: "999999999", input: {title: "x"}) { id } }`, nil)
		assert.Equal(t, "NOT_FOUND", gqlErr.code())
	})
	t.Run("deleting the owner deletes its items", func(t *testing.T) {
		before := e.countItems()
		var resp struct{ DeleteUser user }
		e.c.MustPost(`mutation($id: ID!) { deleteUser(id: $id) { id } }`, &resp, client.Var("id", owner.ID))
		assert.Equal(t, before-1, e.countItems())
		var got struct{ Item *item }
		e.c.MustPost(`query($id: ID!) { item(id: $id) { id } }`, &got, client.Var("id", it.ID))
		assert.Nil(t, got.Item)
	})
}

func ids(list []item) []string {
	out := make([]string, len(list))
	for i, it := range list {
		out[i] = it.ID
	}
	return out
}

func TestItemBadInput(t *testing.T) {
	e := newEnv(t)
	name := unique("badi")
	owner := e.createUser(name, name+"@example.com")
	it := e.createItem(owner.ID, "kept", ptr("kept"))
	create := `mutation($in: NewItem!) { createItem(input: $in) { id } }`
	update := `mutation($id: ID!, $in: UpdateItem!) { updateItem(id: $id, input: $in) { id } }`
	cases := []struct {
		name, query string
		vars        map[string]any
		field       string
	}{
		{"unknown owner", create, map[string]any{"in": map[string]any{"ownerId": "999999999", "title": "t"}}, "ownerId"},
		{"malformed owner", create, map[string]any{"in": map[string]any{"ownerId": "abc", "title": "t"}}, "ownerId"},
		{"empty title", create, map[string]any{"in": map[string]any{"ownerId": owner.ID, "title": "   "}}, "title"},
		{"long title", create, map[string]any{"in": map[string]any{"ownerId": owner.ID, "title": strings.Repeat("é", 201)}}, "title"},
		{"nul in title", create, map[string]any{"in": map[string]any{"ownerId": owner.ID, "title": "a\x00b"}}, "title"},
		{"long description", create, map[string]any{"in": map[string]any{"ownerId": owner.ID, "title": "t", "description": strings.Repeat("d", 10001)}}, "description"},
		{"null title on update", update, map[string]any{"id": it.ID, "in": map[string]any{"title": nil}}, "title"},
		{"long description on update", update, map[string]any{"id": it.ID, "in": map[string]any{"description": strings.Repeat("d", 10001)}}, "description"},
		{"malformed id", update, map[string]any{"id": "-1", "in": map[string]any{}}, "id"},
		{"malformed owner filter", `{ items(ownerId: "x") { id } }`, nil, "ownerId"},
		{"negative offset", `{ items(offset: -1) { id } }`, nil, "offset"},
		{"limit over 100", `{ items(limit: 101) { id } }`, nil, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.countItems()
			gqlErr := e.mustFail(tc.query, tc.vars)
			assert.Equal(t, "BAD_USER_INPUT", gqlErr.code(), gqlErr.Message)
			assert.Equal(t, tc.field, gqlErr.field(), gqlErr.Message)
			assert.NotContains(t, gqlErr.Message, "SQLSTATE")
			assert.Equal(t, before, e.countItems(), "nothing written")
		})
	}
	var got struct{ Item item }
	e.c.MustPost(`query($id: ID!) { item(id: $id) { `+itemFields+` } }`, &got, client.Var("id", it.ID))
	assert.Equal(t, it, got.Item, "refused updates changed nothing")
	ok := e.createItem(owner.ID, strings.Repeat("é", 200), ptr(strings.Repeat("d", 10000)))
	assert.Len(t, []rune(ok.Title), 200, "limits count characters, not bytes")
}

func TestNestedQueries(t *testing.T) {
	e := newEnv(t)
	name := unique("nest")
	owner := e.createUser(name, name+"@example.com")
	for i := range 3 {
		e.createItem(owner.ID, fmt.Sprintf("thing %d", i), nil)
	}
	var resp struct {
		User struct {
			Items struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Title string
						Owner struct {
							Username string
							Items    struct{ TotalCount int }
						}
					}
				}
			}
		}
	}
	e.c.MustPost(`query($id: ID!) { user(id: $id) { items { totalCount edges { node { title owner { username items { totalCount } } } } } } }`,
		&resp, client.Var("id", owner.ID))
	assert.Equal(t, 3, resp.User.Items.TotalCount)
	require.Len(t, resp.User.Items.Edges, 3)
	for i, edge := range resp.User.Items.Edges {
		assert.Equal(t, fmt.Sprintf("thing %d", i), edge.Node.Title)
		assert.Equal(t, name, edge.Node.Owner.Username)
		assert.Equal(t, 3, edge.Node.Owner.Items.TotalCount)
	}
}
