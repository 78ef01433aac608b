package httpserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// An item's owner deleted (with its items) between the read of the items and the read of their
// owners used to answer INTERNAL_SERVER_ERROR and null the whole list. The answer is now what a
// read at one moment sees: the items with their owners, or neither.
func TestOwnerDeletedWhileItsItemsAreRead(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	ctx := context.Background()
	for round := range 3 {
		name := fmt.Sprintf("gone%d_%d", time.Now().UnixNano()%1e9, round)
		uid := in.createUser(t, name)
		for i := range 2 {
			in.mutate(t, `mutation($o: ID!, $t: String!) { createItem(input: {ownerId: $o, title: $t}) { id } }`,
				map[string]any{"o": uid, "t": fmt.Sprint("thing ", i)})
		}
		id := rowOf(t, uid)

		// Delete the owner in a transaction that also locks users: a read of users waits for
		// it to commit, a read of items alone does not.
		tx, err := in.db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "DELETE FROM users WHERE id = ?", id)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
		require.NoError(t, err)

		queries := []string{
			fmt.Sprintf(`{ items(ownerId: %q, limit: 10) { id owner { username } } }`, uid),
			fmt.Sprintf(`{ itemsConnection(first: 10, filter: {ownerId: %q}) { edges { node { id owner { username } } } } }`, uid),
		}
		q := queries[round%len(queries)]
		answered := make(chan gqlBody, 1)
		go func() { answered <- postQuery(in, q) }()
		waitBlocked(t, in.db, "%") // the query
		require.NoError(t, tx.Commit())

		var got gqlBody
		select {
		case got = <-answered:
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
		}
		require.Empty(t, got.Errors, "query %s", q)
		require.NotNil(t, got.Data, "query %s", q)
		// The items were deleted with their owner: a read of that moment sees no items, or
		// (had it run before the delete) items with their owner.
		for _, v := range got.Data {
			assert.NotContains(t, fmt.Sprint(v), "owner:<nil>", "query %s", q)
		}
	}
}
