package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nodes with the same user twice answers each copy with that user's page of items, from a
// review: the loaders' group held the duplicate, the lateral join read the owner's page once per
// copy, and each copy listed every item twice.
func TestNodesWithAUserTwice(t *testing.T) {
	e, _ := freshEnv(t)
	u := e.createUser("dup_owner", "dup_owner@example.com")
	it1 := e.createItem(u.ID, "one", nil)
	it2 := e.createItem(u.ID, "two", nil)
	e.createItem(u.ID, "three", nil)

	query := `query($ids: [ID!]!) { nodes(ids: $ids) { ... on User { items(first: 2) {
		totalCount edges { node { id } } pageInfo { hasNextPage } } } } }`
	single, errs := e.post(query, map[string]any{"ids": []string{u.ID}})
	require.Empty(t, errs)
	want := []any{map[string]any{"id": it1.ID}, map[string]any{"id": it2.ID}}
	got := single["nodes"].([]any)[0].(map[string]any)["items"].(map[string]any)
	assert.Equal(t, want, edgeNodes(got), "one id")

	data, errs := e.post(query, map[string]any{"ids": []string{u.ID, u.ID}})
	require.Empty(t, errs)
	for i, n := range data["nodes"].([]any) {
		items := n.(map[string]any)["items"].(map[string]any)
		assert.Equal(t, want, edgeNodes(items), "copy %d of the same user: %v", i, items)
		assert.Equal(t, float64(3), items["totalCount"], "copy %d", i)
	}
}

func edgeNodes(conn map[string]any) []any {
	var out []any
	for _, e := range conn["edges"].([]any) {
		out = append(out, e.(map[string]any)["node"])
	}
	return out
}

// The items of users fetched through nodes take their owner from the user that listed them, as
// a users page's items do (two statements), from a review: ownerOf did not know a nodes element
// as a parent, and read the owners again.
func TestNodesItemsOwnerIsTheListingUser(t *testing.T) {
	e, recorded := freshEnv(t)
	var ids []string
	for i := range 5 {
		u := e.createUser(fmt.Sprintf("own_%02d", i), fmt.Sprintf("own_%02d@example.com", i))
		ids = append(ids, u.ID)
		e.createItem(u.ID, fmt.Sprintf("thing %02d", i), nil)
	}
	recorded.Take()
	_, errs := e.post(`query($ids: [ID!]!) { nodes(ids: $ids) { ... on User {
		items(first: 2) { edges { node { title owner { username } } } } } } }`, map[string]any{"ids": ids})
	require.Empty(t, errs)
	got := recorded.Take()
	assert.Len(t, got, 2, "the users, their items; the owners are the users:\n%s", strings.Join(got, "\n"))
}
