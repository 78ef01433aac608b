package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// Relay itself against a server: examples/relay/relay.mjs runs what relay-compiler compiled from
// examples/relay/src (a @refetchable fragment, @connection lists) with relay-runtime's
// Environment, Network and Store. It fetches a page of users with their items, pages forward
// through the connection, refetches a renamed user through node(id:), and finds user 1 and
// item 1 to be two records of the store; it fails on anything else (see the script).
func TestRelayClient(t *testing.T) {
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is not on PATH: this test runs examples/relay/relay.mjs with Node.js")
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "relay"))
	require.NoError(t, err)
	for _, need := range []string{"node_modules/relay-runtime", "src/__generated__/AppUsersQuery.graphql.js"} {
		if _, err := os.Stat(filepath.Join(dir, need)); err != nil {
			t.Fatalf("examples/relay has no %s (%v): run `make relay-check` (`make test` does)", need, err)
		}
	}

	// A database of its own: user 1 and item 1 both exist, so a user and an item share a row
	// number.
	dbURL := dbtest.Empty(t)
	db, err := dbtest.Open(dbURL)
	require.NoError(t, err)
	defer db.Close()
	_, err = database.Up(context.Background(), db)
	require.NoError(t, err)
	in := startInstance(t, dbURL)
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("relay_%d", i)
		uid := in.createUser(t, name)
		names = append(names, name)
		for j := range 3 {
			in.mutate(t, `mutation($o: ID!, $t: String!) { createItem(input: {ownerId: $o, title: $t}) { id } }`,
				map[string]any{"o": uid, "t": fmt.Sprintf("%s item %d", name, j)})
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "relay.mjs", "http://"+in.base+"/query")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node relay.mjs (context: %v): %s", ctx.Err(), stderr.String())
	t.Logf("Relay saw %s", bytes.TrimSpace(out))

	var seen struct {
		Sent      []string
		Page1     []string
		Page2     []string
		Refetched struct{ ID, Username string }
		Twin      struct {
			DatabaseID int64
			User, Item string
			Title      string
		}
	}
	require.NoError(t, json.Unmarshal(out, &seen), "output %q", out)
	assert.Equal(t, []string{"AppUsersQuery", "UsersListPaginationQuery", "UserItemsRefetchQuery", "ItemByNumberQuery"}, seen.Sent)
	assert.Equal(t, names[:2], seen.Page1)
	assert.Equal(t, names[2:4], seen.Page2)
	assert.Equal(t, names[2]+"_renamed", seen.Refetched.Username)
	assert.Equal(t, int64(1), seen.Twin.DatabaseID)
	assert.Equal(t, "VXNlcjox", seen.Twin.User)
	assert.Equal(t, "SXRlbTox", seen.Twin.Item)
	assert.Equal(t, "relay_0 item 0", seen.Twin.Title)
}
