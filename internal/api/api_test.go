package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// gqlError is one entry of a response's errors list.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string  { s, _ := e.Extensions["code"].(string); return s }
func (e gqlError) field() string { s, _ := e.Extensions["field"].(string); return s }

type env struct {
	t   *testing.T
	h   http.Handler
	c   *client.Client
	log *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	logs := new(bytes.Buffer)
	h := api.New(&graph.Resolver{DB: dbtest.DB(t)}, api.Options{
		QueryCacheSize: 100,
		Logger:         slog.New(slog.NewJSONHandler(logs, nil)),
	})
	return &env{t: t, h: h, c: client.New(h), log: logs}
}

// post sends a GraphQL request over POST and returns the decoded data and errors, whatever the status.
func (e *env) post(query string, vars map[string]any) (map[string]any, []gqlError) {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(e.t, err)
	req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var resp struct {
		Data   map[string]any `json:"data"`
		Errors []gqlError     `json:"errors"`
	}
	require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &resp), w.Body.String())
	return resp.Data, resp.Errors
}

// mustFail sends the request and returns its only error.
func (e *env) mustFail(query string, vars map[string]any) gqlError {
	e.t.Helper()
	_, errs := e.post(query, vars)
	require.Len(e.t, errs, 1, "want exactly one error")
	return errs[0]
}

type user struct {
	ID        string
	Username  string
	Email     string
	CreatedAt string
	UpdatedAt string
}

const userFields = `id username email createdAt updatedAt`

func (e *env) createUser(username, email string) user {
	e.t.Helper()
	var resp struct{ CreateUser user }
	e.c.MustPost(`mutation($in: NewUser!) { createUser(input: $in) { `+userFields+` } }`, &resp,
		client.Var("in", map[string]any{"username": username, "email": email}))
	return resp.CreateUser
}

func (e *env) countUsers() int {
	e.t.Helper()
	n, err := dbtest.DB(e.t).NewSelect().Table("users").Count(context.Background())
	require.NoError(e.t, err)
	return n
}

// unique returns a username no other test uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()%1e12)
}

func TestCreateAndRead(t *testing.T) {
	e := newEnv(t)
	name := unique("Alice")
	u := e.createUser("  "+name+"  ", name+"@Example.com")
	assert.Equal(t, name, u.Username, "username is trimmed")
	assert.Equal(t, name+"@Example.com", u.Email)
	assert.NotEmpty(t, u.ID)
	created, err := time.Parse(time.RFC3339Nano, u.CreatedAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), created, time.Minute)
	assert.Equal(t, u.CreatedAt, u.UpdatedAt)

	t.Run("user by id", func(t *testing.T) {
		var resp struct{ User *user }
		e.c.MustPost(`query($id: ID!) { user(id: $id) { `+userFields+` } }`, &resp, client.Var("id", u.ID))
		require.NotNil(t, resp.User)
		assert.Equal(t, u, *resp.User)
	})
	t.Run("user by id, none", func(t *testing.T) {
		var resp struct{ User *user }
		e.c.MustPost(`{ user(id: "999999999") { id } }`, &resp)
		assert.Nil(t, resp.User)
	})
	t.Run("user by username, any case", func(t *testing.T) {
		for _, q := range []string{name, strings.ToUpper(name), " " + strings.ToLower(name)} {
			var resp struct{ UserByUsername *user }
			e.c.MustPost(`query($u: String!) { userByUsername(username: $u) { id } }`, &resp, client.Var("u", q))
			require.NotNil(t, resp.UserByUsername, q)
			assert.Equal(t, u.ID, resp.UserByUsername.ID)
		}
	})
	t.Run("user by username, none", func(t *testing.T) {
		for _, q := range []string{"nobody_here", "x", strings.Repeat("y", 1000), "a'; DROP TABLE users; --"} {
			var resp struct{ UserByUsername *user }
			e.c.MustPost(`query($u: String!) { userByUsername(username: $u) { id } }`, &resp, client.Var("u", q))
			assert.Nil(t, resp.UserByUsername, q)
		}
	})
}

func TestListUsers(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		name := unique(fmt.Sprintf("list%d", i))
		e.createUser(name, name+"@example.com")
	}
	var all struct{ Users []user }
	e.c.MustPost(`{ users(limit: 100) { id } }`, &all)
	require.GreaterOrEqual(t, len(all.Users), 5)
	for i := 1; i < len(all.Users); i++ {
		assert.Less(t, idNum(t, all.Users[i-1].ID), idNum(t, all.Users[i].ID), "ordered by id")
	}

	var page struct{ Users []user }
	e.c.MustPost(`{ users(offset: 2, limit: 2) { id } }`, &page)
	assert.Equal(t, all.Users[2:4], page.Users)

	var def struct{ Users []user }
	e.c.MustPost(`{ users { id } }`, &def)
	assert.Equal(t, all.Users[:min(10, len(all.Users))], def.Users, "defaults: offset 0, limit 10")

	var past struct{ Users []user }
	e.c.MustPost(`{ users(offset: 100000) { id } }`, &past)
	assert.Empty(t, past.Users)
}

// idNum is the row number of a global id as the API writes it (User.id, Item.id).
func idNum(t *testing.T, id string) int64 {
	t.Helper()
	g, err := gqlscalar.ParseID(id)
	require.NoError(t, err)
	require.NotEqual(t, gqlscalar.Untyped, g.Type, "%q is a global id", id)
	return g.Row
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	existing := e.createUser(unique("bad"), unique("bad")+"@example.com")
	cases := []struct {
		name, query string
		vars        map[string]any
		field       string
	}{
		{"short username", `mutation { createUser(input: {username: "ab", email: "ab@example.com"}) { id } }`, nil, "username"},
		{"long username", `mutation($u: String!) { createUser(input: {username: $u, email: "l@example.com"}) { id } }`, map[string]any{"u": strings.Repeat("a", 33)}, "username"},
		{"blank username", `mutation { createUser(input: {username: "     ", email: "b@example.com"}) { id } }`, nil, "username"},
		{"space in username", `mutation { createUser(input: {username: "a b c", email: "s@example.com"}) { id } }`, nil, "username"},
		{"non-ascii username", `mutation { createUser(input: {username: "zoë_", email: "z@example.com"}) { id } }`, nil, "username"},
		{"sql in username", `mutation { createUser(input: {username: "x'); DROP TABLE users;--", email: "q@example.com"}) { id } }`, nil, "username"},
		{"nul in username", `mutation($u: String!) { createUser(input: {username: $u, email: "n@example.com"}) { id } }`, map[string]any{"u": "abc\x00def"}, "username"},
		{"email without at", `mutation { createUser(input: {username: "valid_name1", email: "not-an-email"}) { id } }`, nil, "email"},
		{"email with display name", `mutation { createUser(input: {username: "valid_name2", email: "Bob <bob@example.com>"}) { id } }`, nil, "email"},
		{"email too long", `mutation($e: String!) { createUser(input: {username: "valid_name3", email: $e}) { id } }`, map[string]any{"e": strings.Repeat("a", 250) + "@example.com"}, "email"},
		{"email with nul", `mutation($e: String!) { createUser(input: {username: "valid_name4", email: $e}) { id } }`, map[string]any{"e": "a\x00b@example.com"}, "email"},
		{"empty email", `mutation { createUser(input: {username: "valid_name5", email: ""}) { id } }`, nil, "email"},
		{"malformed id", `{ user(id: "abc") { id } }`, nil, "id"},
		{"zero id", `{ user(id: "0") { id } }`, nil, "id"},
		{"negative id", `{ user(id: "-5") { id } }`, nil, "id"},
		{"id out of range", `{ user(id: "99999999999999999999999") { id } }`, nil, "id"},
		{"malformed id variable", `query($id: ID!) { user(id: $id) { id } }`, map[string]any{"id": "1 OR 1=1"}, "id"},
		{"malformed id on delete", `mutation { deleteUser(id: "x") { id } }`, nil, "id"},
		{"malformed id on update", `mutation { updateUser(id: "x", input: {}) { id } }`, nil, "id"},
		{"negative offset", `{ users(offset: -1) { id } }`, nil, "offset"},
		{"zero limit", `{ users(limit: 0) { id } }`, nil, "limit"},
		{"limit over 100", `{ users(limit: 101) { id } }`, nil, "limit"},
		{"null username on update", `mutation($id: ID!) { updateUser(id: $id, input: {username: null}) { id } }`, map[string]any{"id": existing.ID}, "username"},
		{"null email on update", `mutation($id: ID!, $in: UpdateUser!) { updateUser(id: $id, input: $in) { id } }`, map[string]any{"id": existing.ID, "in": map[string]any{"email": nil}}, "email"},
		{"bad email on update", `mutation($id: ID!) { updateUser(id: $id, input: {email: "nope"}) { id } }`, map[string]any{"id": existing.ID}, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.countUsers()
			gqlErr := e.mustFail(tc.query, tc.vars)
			assert.Equal(t, "BAD_USER_INPUT", gqlErr.code(), gqlErr.Message)
			assert.Equal(t, tc.field, gqlErr.field())
			assert.Contains(t, gqlErr.Message, tc.field)
			assert.Equal(t, before, e.countUsers(), "nothing written")
		})
	}
	var after struct{ User user }
	e.c.MustPost(`query($id: ID!) { user(id: $id) { `+userFields+` } }`, &after, client.Var("id", existing.ID))
	assert.Equal(t, existing, after.User, "failed updates changed nothing")
}

func TestGraphQLFaultsKeepTheirCodes(t *testing.T) {
	e := newEnv(t)
	cases := map[string]struct {
		query string
		vars  map[string]any
		code  string
	}{
		"syntax error":         {`{ users { id `, nil, "GRAPHQL_PARSE_FAILED"},
		"unknown field":        {`{ users { password } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		"wrong literal type":   {`{ users(limit: "ten") { id } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		"wrong variable type":  {`query($l: Int!) { users(limit: $l) { id } }`, map[string]any{"l": "ten"}, "GRAPHQL_VALIDATION_FAILED"},
		"missing variable":     {`query($id: ID!) { user(id: $id) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		"missing input field":  {`mutation { createUser(input: {username: "abc"}) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		"float for an int var": {`query($l: Int!) { users(limit: $l) { id } }`, map[string]any{"l": 1.5}, "GRAPHQL_VALIDATION_FAILED"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			gqlErr := e.mustFail(tc.query, tc.vars)
			assert.Equal(t, tc.code, gqlErr.code(), gqlErr.Message)
		})
	}
}

func TestConflicts(t *testing.T) {
	e := newEnv(t)
	name := unique("Carol")
	first := e.createUser(name, name+"@example.com")
	other := e.createUser(unique("dave"), unique("dave")+"@example.com")

	cases := []struct {
		name, query string
		vars        map[string]any
		field       string
	}{
		{"username, other case", `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
			map[string]any{"u": strings.ToUpper(name), "e": "fresh1@example.com"}, "username"},
		{"email, other case", `mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
			map[string]any{"u": unique("fresh"), "e": strings.ToUpper(name) + "@EXAMPLE.COM"}, "email"},
		{"update to a taken username", `mutation($id: ID!, $u: String!) { updateUser(id: $id, input: {username: $u}) { id } }`,
			map[string]any{"id": other.ID, "u": strings.ToLower(name)}, "username"},
		{"update to a taken email", `mutation($id: ID!, $e: String!) { updateUser(id: $id, input: {email: $e}) { id } }`,
			map[string]any{"id": other.ID, "e": first.Email}, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.countUsers()
			gqlErr := e.mustFail(tc.query, tc.vars)
			assert.Equal(t, "CONFLICT", gqlErr.code(), gqlErr.Message)
			assert.Equal(t, tc.field, gqlErr.field())
			assert.NotContains(t, strings.ToLower(gqlErr.Message), "sqlstate")
			assert.NotContains(t, gqlErr.Message, "users_")
			assert.Equal(t, before, e.countUsers())
		})
	}
	var after struct{ User user }
	e.c.MustPost(`query($id: ID!) { user(id: $id) { `+userFields+` } }`, &after, client.Var("id", other.ID))
	assert.Equal(t, other, after.User, "the refused update changed nothing")
}

func TestUpdateUser(t *testing.T) {
	e := newEnv(t)
	name := unique("erin")
	u := e.createUser(name, name+"@example.com")

	update := func(input map[string]any) user {
		t.Helper()
		var resp struct{ UpdateUser user }
		e.c.MustPost(`mutation($id: ID!, $in: UpdateUser!) { updateUser(id: $id, input: $in) { `+userFields+` } }`,
			&resp, client.Var("id", u.ID), client.Var("in", input))
		return resp.UpdateUser
	}
	renamed := update(map[string]any{"username": " " + name + "_2 "})
	assert.Equal(t, name+"_2", renamed.Username)
	assert.Equal(t, u.Email, renamed.Email, "an omitted field stays")
	assert.Equal(t, u.CreatedAt, renamed.CreatedAt)
	assert.Greater(t, parseTime(t, renamed.UpdatedAt), parseTime(t, u.UpdatedAt), "updatedAt moves")

	moved := update(map[string]any{"email": "new_" + name + "@example.org"})
	assert.Equal(t, name+"_2", moved.Username)
	assert.Equal(t, "new_"+name+"@example.org", moved.Email)
	assert.Greater(t, parseTime(t, moved.UpdatedAt), parseTime(t, renamed.UpdatedAt))

	same := update(map[string]any{})
	assert.Equal(t, moved.Username, same.Username)
	assert.Greater(t, parseTime(t, same.UpdatedAt), parseTime(t, moved.UpdatedAt), "every update moves updatedAt")

	recased := update(map[string]any{"username": strings.ToUpper(name) + "_2"})
	assert.Equal(t, strings.ToUpper(name)+"_2", recased.Username, "a user may change the case of its own name")

	t.Run("missing user", func(t *testing.T) {
		gqlErr := e.mustFail(`mutation { updateUser(id: "999999999", input: {username: "ghost"}) { id } }`, nil)
		assert.Equal(t, "NOT_FOUND", gqlErr.code())
		assert.Equal(t, "user not found", gqlErr.Message)
		assert.Empty(t, gqlErr.field())
		assert.Equal(t, []any{"updateUser"}, gqlErr.Path)
	})
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return ts
}

func TestDeleteUser(t *testing.T) {
	e := newEnv(t)
	name := unique("frank")
	u := e.createUser(name, name+"@example.com")

	var resp struct{ DeleteUser user }
	e.c.MustPost(`mutation($id: ID!) { deleteUser(id: $id) { `+userFields+` } }`, &resp, client.Var("id", u.ID))
	assert.Equal(t, u, resp.DeleteUser, "returns the user as it was")

	var after struct{ User *user }
	e.c.MustPost(`query($id: ID!) { user(id: $id) { id } }`, &after, client.Var("id", u.ID))
	assert.Nil(t, after.User)

	gqlErr := e.mustFail(`mutation($id: ID!) { deleteUser(id: $id) { id } }`, map[string]any{"id": u.ID})
	assert.Equal(t, "NOT_FOUND", gqlErr.code())

	again := e.createUser(name, name+"@example.com")
	assert.NotEqual(t, u.ID, again.ID, "the name is free again, under a new id")
}

func TestConcurrentCreateSameUsername(t *testing.T) {
	e := newEnv(t)
	name := unique("race")
	const n = 50
	var wg sync.WaitGroup
	results := make([][]gqlError, n)
	for i := range n {
		wg.Go(func() {
			_, errs := e.post(`mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
				map[string]any{"u": name, "e": fmt.Sprintf("race%d_%s@example.com", i, name)})
			results[i] = errs
		})
	}
	wg.Wait()
	created, conflicts := 0, 0
	for _, errs := range results {
		switch {
		case len(errs) == 0:
			created++
		case len(errs) == 1 && errs[0].code() == "CONFLICT" && errs[0].field() == "username":
			conflicts++
		default:
			t.Errorf("unexpected errors: %+v", errs)
		}
	}
	assert.Equal(t, 1, created)
	assert.Equal(t, n-1, conflicts)
	n2, err := dbtest.DB(t).NewSelect().Table("users").Where("lower(username) = lower(?)", name).Count(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n2)
}

func TestInternalErrorsAreNotLeaked(t *testing.T) {
	db, err := dbtest.Open(dbtest.URL(t))
	require.NoError(t, err)
	require.NoError(t, db.Close()) // every query now fails inside the driver
	logs := new(bytes.Buffer)
	h := api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 10, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	e := &env{t: t, h: h, c: client.New(h), log: logs}

	gqlErr := e.mustFail(`{ user(id: "1") { id } }`, nil)
	assert.Equal(t, "INTERNAL_SERVER_ERROR", gqlErr.code())
	assert.Equal(t, "internal server error", gqlErr.Message)
	assert.Contains(t, logs.String(), "sql: database is closed", "the cause is logged")

	gqlErr = e.mustFail(`mutation { createUser(input: {username: "gina", email: "gina@example.com"}) { id } }`, nil)
	assert.Equal(t, "INTERNAL_SERVER_ERROR", gqlErr.code())
	assert.Equal(t, "internal server error", gqlErr.Message)
}

func TestIntrospection(t *testing.T) {
	e := newEnv(t)
	var resp struct {
		Schema struct {
			QueryType    struct{ Name string }
			MutationType struct{ Name string }
			Types        []struct{ Name string }
		} `json:"__schema"`
	}
	e.c.MustPost(`{ __schema { queryType { name } mutationType { name } types { name } } }`, &resp)
	assert.Equal(t, "Query", resp.Schema.QueryType.Name)
	assert.Equal(t, "Mutation", resp.Schema.MutationType.Name)
	var names []string
	for _, ty := range resp.Schema.Types {
		names = append(names, ty.Name)
	}
	assert.Subset(t, names, []string{"User", "NewUser", "UpdateUser", "Time"})
}

func TestGetRequests(t *testing.T) {
	e := newEnv(t)
	name := unique("henry")
	u := e.createUser(name, name+"@example.com")
	req := httptest.NewRequest(http.MethodGet, "/query?query="+
		strings.ReplaceAll(`{user(id:"`+u.ID+`"){username}}`, `"`, "%22"), nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	body, _ := io.ReadAll(w.Body)
	assert.JSONEq(t, `{"data":{"user":{"username":"`+name+`"}}}`, string(body))

	// Mutations are refused over GET: a link must not be able to change data.
	req = httptest.NewRequest(http.MethodGet, `/query?query=mutation%7BdeleteUser(id:%22`+u.ID+`%22)%7Bid%7D%7D`, nil)
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	assert.NotEqual(t, http.StatusOK, w.Code)
	var still struct{ User *user }
	e.c.MustPost(`query($id: ID!) { user(id: $id) { id } }`, &still, client.Var("id", u.ID))
	assert.NotNil(t, still.User)
}

// A statement PostgreSQL cancels for running past statement_timeout is TIMEOUT, not internal.
func TestStatementTimeoutIsTIMEOUT(t *testing.T) {
	db, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: "st-test", MaxConns: 2, StatementTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer db.Close()
	e := &env{t: t, h: api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 10, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})}
	name := unique("stuck")
	u := newEnv(t).createUser(name, name+"@example.com")
	ctx := context.Background()
	tx, err := dbtest.DB(t).BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, "SELECT 1 FROM users WHERE id = ? FOR UPDATE", idNum(t, u.ID))
	require.NoError(t, err)
	gqlErr := e.mustFail(`mutation($id: ID!) { updateUser(id: $id, input: {email: "late@x.example"}) { id } }`, map[string]any{"id": u.ID})
	assert.Equal(t, "TIMEOUT", gqlErr.code(), gqlErr.Message)
}

// With Concurrency 1, an operation waits while another executes, and runs once it is done.
func TestOperationsWaitTheirTurn(t *testing.T) {
	db := dbtest.DB(t)
	h := api.New(&graph.Resolver{DB: db}, api.Options{
		QueryCacheSize: 10, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Limits: api.Limits{Concurrency: 1},
	})
	e := &env{t: t, h: h, c: client.New(h)}
	name := unique("turns")
	u := e.createUser(name, name+"@example.com")

	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, "SELECT 1 FROM users WHERE id = ? FOR UPDATE", idNum(t, u.ID))
	require.NoError(t, err)

	type result struct {
		data map[string]any
		errs []gqlError
	}
	update := make(chan result, 1)
	go func() {
		d, errs := e.post(`mutation($id: ID!) { updateUser(id: $id, input: {email: "turn@x.example"}) { email } }`, map[string]any{"id": u.ID})
		update <- result{d, errs}
	}()
	require.Eventually(t, func() bool { // the update holds the only turn, blocked on the row lock
		var n int
		_ = db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE%'").Scan(ctx, &n)
		return n == 1
	}, 10*time.Second, 10*time.Millisecond)

	read := make(chan result, 1)
	go func() {
		d, errs := e.post(`query($id: ID!) { user(id: $id) { email } }`, map[string]any{"id": u.ID})
		read <- result{d, errs}
	}()
	select {
	case r := <-read:
		t.Fatalf("a query ran while another held the only turn: %v %v", r.data, r.errs)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, tx.Commit())
	r := <-update
	require.Empty(t, r.errs)
	r = <-read
	require.Empty(t, r.errs)
	assert.Equal(t, "turn@x.example", r.data["user"].(map[string]any)["email"], "it ran after the update")
}
