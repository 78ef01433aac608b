package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/items"
)

// A page of users with their first items and each item's owner costs a constant number of
// statements, whatever the page size: no N+1.
func TestNestedQueryStatementCount(t *testing.T) {
	db, err := dbtest.Open(dbtest.URL(t))
	require.NoError(t, err)
	defer db.Close()
	counter := dbtest.RecordStatements(db)
	h := api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 10})
	c := client.New(h)

	setup := newEnv(t)
	prefix := unique("n1") + "_"
	for i := range 100 {
		u := setup.createUser(fmt.Sprintf("%s%03d", prefix, i), fmt.Sprintf("%s%03d@example.com", prefix, i))
		for j := range 7 {
			setup.createItem(u.ID, fmt.Sprintf("item %d of %d", j, i), nil)
		}
	}

	type response struct {
		UsersConnection struct {
			Edges []struct {
				Node struct {
					ID    string
					Items struct {
						TotalCount int
						PageInfo   struct{ HasNextPage bool }
						Edges      []struct {
							Node struct {
								Title string
								Owner struct{ ID string }
							}
						}
					}
				}
			}
		}
	}
	query := `query($n: Int!, $p: String!) {
		usersConnection(first: $n, filter: {usernamePrefix: $p}) { edges { node { id
			items(first: 5) { pageInfo { hasNextPage } edges { node { title owner { id } } } }
		} } } }`
	for _, n := range []int{1, 10, 100} {
		t.Run(fmt.Sprintf("%d users", n), func(t *testing.T) {
			counter.Take()
			var resp response
			c.MustPost(query, &resp, client.Var("n", n), client.Var("p", prefix))
			got := counter.Take()
			// users page, items of every user (one lateral join); each item's owner is the
			// user that listed it, already read.
			assert.Len(t, got, 2, "statements:\n%v", got)
			require.Len(t, resp.UsersConnection.Edges, n)
			for i, edge := range resp.UsersConnection.Edges {
				require.Len(t, edge.Node.Items.Edges, 5)
				assert.True(t, edge.Node.Items.PageInfo.HasNextPage)
				for j, it := range edge.Node.Items.Edges {
					assert.Equal(t, fmt.Sprintf("item %d of %d", j, i), it.Node.Title)
					assert.Equal(t, edge.Node.ID, it.Node.Owner.ID)
				}
			}
		})
	}
	t.Run("with totalCount", func(t *testing.T) {
		counter.Take()
		var resp response
		c.MustPost(`query($p: String!) { usersConnection(first: 100, filter: {usernamePrefix: $p}) { edges { node { id
			items(first: 2) { totalCount edges { node { title owner { id } } } } } } } }`, &resp, client.Var("p", prefix))
		got := counter.Take()
		assert.Len(t, got, 3, "one more statement counts every user's items: %v", got)
		for _, edge := range resp.UsersConnection.Edges {
			assert.Equal(t, 7, edge.Node.Items.TotalCount)
		}
	})
	t.Run("different arguments per alias", func(t *testing.T) {
		counter.Take()
		var resp struct {
			UsersConnection struct {
				Edges []struct {
					Node struct {
						A, B struct {
							Edges []struct{ Node struct{ Title string } }
						}
					}
				}
			}
		}
		c.MustPost(`query($p: String!) { usersConnection(first: 50, filter: {usernamePrefix: $p}) { edges { node {
			a: items(first: 1) { edges { node { title } } }
			b: items(last: 2, orderBy: {field: TITLE}) { edges { node { title } } } } } } }`, &resp, client.Var("p", prefix))
		assert.Len(t, counter.Take(), 3, "one statement per distinct argument set")
		require.Len(t, resp.UsersConnection.Edges, 50)
		for i, edge := range resp.UsersConnection.Edges {
			require.Len(t, edge.Node.A.Edges, 1)
			assert.Equal(t, fmt.Sprintf("item 0 of %d", i), edge.Node.A.Edges[0].Node.Title)
			require.Len(t, edge.Node.B.Edges, 2)
			assert.Equal(t, fmt.Sprintf("item 5 of %d", i), edge.Node.B.Edges[0].Node.Title)
			assert.Equal(t, fmt.Sprintf("item 6 of %d", i), edge.Node.B.Edges[1].Node.Title)
		}
	})
	t.Run("items, their owners, the owners' items", func(t *testing.T) {
		counter.Take()
		var resp struct {
			ItemsConnection struct {
				Edges []struct {
					Node struct {
						Owner struct {
							ID    string
							Items struct {
								TotalCount int
								Edges      []struct {
									Node struct{ Owner struct{ ID string } }
								}
							}
						}
					}
				}
			}
		}
		c.MustPost(`{ itemsConnection(first: 60) { edges { node {
			owner { id items(first: 2) { totalCount edges { node { owner { id } } } } } } } } }`, &resp)
		got := counter.Take()
		// items page with their owners (one join), the owners' items, their counts; the inner
		// owners are the users that listed them.
		assert.Len(t, got, 3, "statements: %v", got)
		require.Len(t, resp.ItemsConnection.Edges, 60)
		for _, edge := range resp.ItemsConnection.Edges {
			for _, inner := range edge.Node.Owner.Items.Edges {
				assert.Equal(t, edge.Node.Owner.ID, inner.Node.Owner.ID)
			}
		}
	})
}

// A page of users that asks each user for the same usual page of items (no filter, no cursor)
// reads users and items in one statement, and answers exactly what the two statements answer.
func TestNestedPageInOneStatement(t *testing.T) {
	db, err := dbtest.Open(dbtest.URL(t))
	require.NoError(t, err)
	defer db.Close()
	counter := dbtest.RecordStatements(db)
	e := newEnv(t)
	prefix := unique("one") + "_"
	for i := range 6 {
		u := e.createUser(fmt.Sprintf("%s%d", prefix, (i*5)%6), fmt.Sprintf("%s%d@example.com", prefix, i))
		for j := range (i + 1) % 4 { // 0 to 3 items; the two newest users have some
			e.createItem(u.ID, fmt.Sprintf("t%d", (j*7)%5), nil)
		}
	}
	for name, pages := range map[string]*items.Pages{
		"sizes in the text":   items.NewPages(db, coalesce.Options{}),
		"sizes as parameters": items.NewPagesBounded(db, 0, coalesce.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			h := api.New(&graph.Resolver{DB: db, ItemPages: pages}, api.Options{QueryCacheSize: 10})
			compareNestedPages(t, h, counter, prefix)
		})
	}
}

func compareNestedPages(t *testing.T, h http.Handler, counter *dbtest.Statements, prefix string) {
	post := func(query string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(fmt.Sprintf(`{"query":%q}`, query)))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.NotContains(t, w.Body.String(), `"errors"`)
		return w.Body.String()
	}
	// Every user there is matches this filter; with it the page is not the usual shape and takes
	// the two statements.
	const everyone = `, filter: {createdAfter: "1970-01-01T00:00:00Z"}`
	for _, tc := range []struct{ users, items, fields string }{ // the newest users: this test's
		{`first: 12, orderBy: {direction: DESC}`, `first: 2`, `id title`},
		{`last: 12`, `last: 2, orderBy: {field: TITLE}`, `id title`},
		{`last: 4, orderBy: {field: CREATED_AT}`, `first: 3`, `id title description createdAt owner { username email }`},
		{`first: 12, orderBy: {field: ID, direction: DESC}`, `first: 0`, `id`},
		{`last: 12`, `orderBy: {field: CREATED_AT, direction: DESC}`, `title createdAt`},
		{`last: 9`, ``, `id`},         // items' default page
		{`last: 1`, `first: 3`, `id`}, // one user: its items through the batch loader, primed
		{`last: 2`, `first: 3`, `id`}, // every user of the page has items
	} {
		args := ""
		if tc.items != "" {
			args = "(" + tc.items + ")"
		}
		query := func(extra string) string {
			return `{ usersConnection(` + tc.users + extra + `) { pageInfo { hasNextPage startCursor endCursor }
				edges { cursor node { id username email items` + args + ` { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
					edges { cursor node { ` + tc.fields + ` } } } } } } }`
		}
		counter.Take()
		one := post(query(""))
		stmts := counter.Take()
		assert.Len(t, stmts, 1+len(stmtsCounting(stmts)), "users and items in one statement (and the counts): %v", stmts)
		two := post(query(everyone))
		assert.Greater(t, len(counter.Take()), len(stmts), "the filtered page takes more statements")
		assert.Equal(t, two, one, "%s / %s", tc.users, tc.items)
		assert.Contains(t, one, prefix)
	}
}

// stmtsCounting returns the statements that count (totalCount).
func stmtsCounting(stmts []string) []string {
	var out []string
	for _, s := range stmts {
		if strings.Contains(s, "count(") {
			out = append(out, s)
		}
	}
	return out
}

// Identical nested reads at the same moment share one run of their statement: those arriving
// while it runs wait for the next one, which serves them all. Each still gets the whole answer
// it would get alone, backward pages (reversed per request) included.
func TestConcurrentNestedReadsShareAStatement(t *testing.T) {
	ctx := context.Background()
	db, err := dbtest.Open(dbtest.URL(t))
	require.NoError(t, err)
	defer db.Close()
	counter := dbtest.RecordStatements(db)
	e := newEnv(t)
	prefix := unique("shared") + "_"
	for i := range 4 {
		u := e.createUser(fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s%d@example.com", prefix, i))
		for j := range 3 {
			e.createItem(u.ID, fmt.Sprintf("t%d", j), nil)
		}
	}
	pages := items.NewPages(db, coalesce.Options{})
	h := api.New(&graph.Resolver{DB: db, ItemPages: pages}, api.Options{QueryCacheSize: 10})
	const query = `{ usersConnection(last: 3) { pageInfo { hasPreviousPage startCursor }
		edges { cursor node { username items(last: 2) { pageInfo { hasPreviousPage } edges { cursor node { id title owner { username } } } } } } } }`
	post := func() string {
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(fmt.Sprintf(`{"query":%q}`, query)))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Body.String()
	}
	alone := post()
	require.NotContains(t, alone, `"errors"`)
	require.Contains(t, alone, prefix+"3")

	// The first read's statement waits for a lock on items; 15 more arrive meanwhile.
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, "LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	counter.Take()
	const n = 16
	answers := make(chan string, n)
	go func() { answers <- post() }()
	require.Eventually(t, func() bool {
		var waiting int
		_ = db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE '%LEFT JOIN LATERAL%'`).Scan(ctx, &waiting)
		return waiting == 1
	}, 10*time.Second, 5*time.Millisecond, "the first read waits for the lock")
	for range n - 1 {
		go func() { answers <- post() }()
	}
	require.Eventually(t, func() bool { return pages.Waiting() == n-1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, tx.Commit())
	for range n {
		assert.Equal(t, alone, <-answers)
	}
	var nested int
	for _, s := range counter.Take() {
		if strings.HasPrefix(s, "SELECT u.id") && strings.Contains(s, "LEFT JOIN LATERAL") {
			nested++
		}
	}
	assert.Equal(t, 2, nested, "the first read's statement, then one for the 15 that waited")
}

// What a nested page reads brief (only the columns its own selection needs) answers only there:
// the same fragment's items field elsewhere in the document, merged with one asking for more
// (another root field, another page), and an owner asked for its details, get full rows. Root
// fields resolve concurrently, so each shape runs many times.
func TestBriefPagesAnswerOnlyWhereTheyWereRead(t *testing.T) {
	e := newEnv(t)
	prefix := unique("brief") + "_"
	desc := "described"
	var last user
	for i := range 3 {
		last = e.createUser(fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s%d@example.com", prefix, i))
		for j := range 2 {
			e.createItem(last.ID, fmt.Sprintf("t%d", j), &desc)
		}
	}
	const (
		f = `
		fragment F on User { items(first: 2) { edges { node { id title } } } }`
		g = `
		fragment G on User { items(first: 2) { edges { node { description createdAt owner { email } } } } }`
	)
	check := func(name string, query string, vars map[string]any, full func(data map[string]any) []any) {
		t.Helper()
		for range 20 {
			data, errs := e.post(query, vars)
			require.Empty(t, errs, name)
			nodes := full(data)
			require.NotEmpty(t, nodes, name)
			for _, n := range nodes {
				node := n.(map[string]any)["node"].(map[string]any)
				assert.Equal(t, desc, node["description"], name)
				assert.NotEqual(t, "0001-01-01T00:00:00Z", node["createdAt"], name)
				assert.Contains(t, node["owner"].(map[string]any)["email"], "@example.com", name)
			}
		}
	}
	edgesOf := func(v any) []any { return v.(map[string]any)["items"].(map[string]any)["edges"].([]any) }
	check("another root field", `query($id: ID!) {
			usersConnection(last: 1) { edges { node { id ...F } } }
			user(id: $id) { ...F ...G } }`+f+g, map[string]any{"id": last.ID},
		func(data map[string]any) []any { return edgesOf(data["user"]) })
	check("another page", `{
			a: usersConnection(last: 1) { edges { node { id ...F } } }
			b: usersConnection(last: 1) { edges { node { id ...F ...G } } } }`+f+g, nil,
		func(data map[string]any) []any {
			return edgesOf(data["b"].(map[string]any)["edges"].([]any)[0].(map[string]any)["node"])
		})
	check("an owner's details", `query($id: ID!) {
			usersConnection(last: 1) { edges { node { id ...F } } }
			user(id: $id) { items(first: 2) { edges { node { description createdAt owner { email } } } } } }`+f,
		map[string]any{"id": last.ID},
		func(data map[string]any) []any { return edgesOf(data["user"]) })
}
