package main

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/wikigraph/wikigraph/internal/users"
)

// Seed sizes.
const (
	seedUsers = 100_000
	seedItems = 500_000
	deepAfter = 50_000 // the deep usersConnection page starts after this many users
)

// operation is one measured GraphQL operation and the same data access as raw SQL for pgbench.
type operation struct {
	Name string
	// request appends the JSON body of request i of worker w to buf.
	request func(buf []byte, rng *rand.Rand, run string, w, i int) []byte
	// check accepts a response body that carries the data asked for (errors are refused before).
	check func(body []byte) bool
	// pgbench is the custom script: the statements the server sends for one request, with the
	// same parameters (:id random, :run, :client_id, :n counting the client's transactions).
	pgbench string
}

func contains(s string) func([]byte) bool {
	return func(body []byte) bool { return bytes.Contains(body, []byte(s)) }
}

func fixed(body string) func([]byte, *rand.Rand, string, int, int) []byte {
	return func(buf []byte, _ *rand.Rand, _ string, _, _ int) []byte { return append(buf, body...) }
}

// The columns bun selects for a user.
const userColumns = `"u"."id", "u"."username", "u"."email", "u"."created_at", "u"."updated_at"`

var deepCursor = users.CursorOf(&users.User{ID: deepAfter}, users.OrderByID)

// pgbench scripts count their own transactions in :n (pgbench keeps a client's variables from one
// transaction to the next), so the rows they create are unique per client and run.
const countTx = "\\set n :n + 1\n"

var operations = []operation{
	{
		Name: "user(id)",
		request: func(buf []byte, rng *rand.Rand, _ string, _, _ int) []byte {
			buf = append(buf, `{"query":"query User($id: ID!) { user(id: $id) { id username email } }","variables":{"id":"`...)
			buf = strconv.AppendInt(buf, 1+rng.Int64N(seedUsers), 10)
			return append(buf, `"}}`...)
		},
		check: contains(`"username":"user_`),
		pgbench: "\\set id random(1, " + strconv.Itoa(seedUsers) + ")\n" +
			`SELECT ` + userColumns + ` FROM "users" AS "u" WHERE (id = :id);` + "\n",
	},
	{
		Name:    "users(limit:10)",
		request: fixed(`{"query":"query Users { users(limit: 10) { id username email } }"}`),
		check:   contains(`"username":"user_10"`),
		pgbench: `SELECT ` + userColumns + ` FROM "users" AS "u" ORDER BY id ASC LIMIT 10;` + "\n",
	},
	{
		Name:    "users(limit:20)",
		request: fixed(`{"query":"query Users { users(limit: 20) { id username email } }"}`),
		check:   contains(`"username":"user_20"`),
		pgbench: `SELECT ` + userColumns + ` FROM "users" AS "u" ORDER BY id ASC LIMIT 20;` + "\n",
	},
	{
		Name: "usersConnection page 1",
		request: fixed(`{"query":"query Page($after: String) { usersConnection(first: 10, after: $after) ` +
			`{ edges { cursor node { id username email } } pageInfo { hasNextPage endCursor } } }","variables":{"after":null}}`),
		check:   contains(`"username":"user_10"`),
		pgbench: `SELECT ` + userColumns + ` FROM "users" AS "u" ORDER BY u.id ASC LIMIT 11;` + "\n",
	},
	{
		Name: "usersConnection 50,000 deep",
		request: fixed(`{"query":"query Page($after: String) { usersConnection(first: 10, after: $after) ` +
			`{ edges { cursor node { id username email } } pageInfo { hasNextPage endCursor } } }","variables":{"after":"` + deepCursor + `"}}`),
		check:   contains(`"username":"user_` + strconv.Itoa(deepAfter+10) + `"`),
		pgbench: `SELECT ` + userColumns + ` FROM "users" AS "u" WHERE (u.id > ` + strconv.Itoa(deepAfter) + `) ORDER BY u.id ASC LIMIT 11;` + "\n",
	},
	{
		Name: "nested 20×5×owner",
		request: fixed(`{"query":"query Nested { users(limit: 20) { id username ` +
			`items(first: 5) { edges { node { id title owner { id username } } } } } }"}`),
		check:   contains(`"title":"item `),
		pgbench: nestedSQL,
	},
	{
		// Issue 12's nested query, the one PostGraphile is compared on (peer.go): connections
		// at both levels, and the owner's username only.
		Name: "nested connection 20×5×owner",
		request: fixed(`{"query":"query NestedConnection { usersConnection(first: 20) { edges { node { id username ` +
			`items(first: 5) { edges { node { id title owner { username } } } } } } } }"}`),
		check:   contains(lastNestedTitle),
		pgbench: nestedConnectionSQL,
	},
	{
		Name: "createUser",
		request: func(buf []byte, _ *rand.Rand, run string, w, i int) []byte {
			buf = append(buf, `{"query":"mutation Create($in: NewUser!) { createUser(input: $in) { id username email createdAt } }","variables":{"in":{"username":"b`...)
			buf = appendName(buf, run, w, i)
			buf = append(buf, `","email":"b`...)
			buf = appendName(buf, run, w, i)
			return append(buf, `@bench.example"}}}`...)
		},
		check: contains(`"createdAt":"`),
		pgbench: countTx + `INSERT INTO "users" ("id", "username", "email", "created_at", "updated_at") ` +
			`VALUES (DEFAULT, 'p' || :run || '_' || :client_id || '_' || :n, 'p' || :run || '_' || :client_id || '_' || :n || '@bench.example', DEFAULT, DEFAULT) ` +
			`RETURNING *;` + "\n",
	},
	{
		Name: "updateUser",
		request: func(buf []byte, rng *rand.Rand, run string, w, i int) []byte {
			buf = append(buf, `{"query":"mutation Update($id: ID!, $in: UpdateUser!) { updateUser(id: $id, input: $in) { id email updatedAt } }","variables":{"id":"`...)
			buf = strconv.AppendInt(buf, 1+rng.Int64N(seedUsers), 10)
			buf = append(buf, `","in":{"email":"u`...)
			buf = appendName(buf, run, w, i)
			return append(buf, `@bench.example"}}}`...)
		},
		check: contains(`"updatedAt":"`),
		pgbench: countTx + "\\set id random(1, " + strconv.Itoa(seedUsers) + ")\n" +
			`UPDATE "users" AS "u" SET updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond'), ` +
			`email = 'q' || :run || '_' || :client_id || '_' || :n || '@bench.example' WHERE (id = :id) RETURNING *;` + "\n",
	},
}

// appendName appends a name unique to run, worker and request (usernames allow 32 characters).
func appendName(buf []byte, run string, w, i int) []byte {
	buf = append(buf, run...)
	buf = append(buf, '_')
	buf = strconv.AppendInt(buf, int64(w), 36)
	buf = append(buf, '_')
	return strconv.AppendInt(buf, int64(i), 36)
}

// nestedSQL is what the server sends for the nested query: the page of users (the shared
// lookup's statement), then the first 5 items of each (one more, for hasNextPage) in one lateral
// join, only the columns asked for (items.Pages.ByOwner). Each item's owner is the user that
// listed it: no statement.
var nestedSQL = `SELECT id, username, email, created_at, updated_at FROM users ORDER BY id ASC LIMIT 20 OFFSET 0;
SELECT i.id, i.owner_id, i.title FROM unnest('{` + firstIDs(20) + `}'::bigint[]) AS o(owner_id) CROSS JOIN LATERAL ` +
	`(SELECT i.id, i.owner_id, i.title FROM items AS i WHERE i.owner_id = o.owner_id ORDER BY i.id ASC LIMIT 6) AS i ` +
	`ORDER BY o.owner_id, i.id ASC;
`

// nestedConnectionSQL is what the server sends for the nested connection query: the page of users
// (one row more, for hasNextPage) and the first 5 items of each of them in one statement
// (items.Pages.UsersWithItems), only the columns asked for. The owners are the page's users: no
// statement.
var nestedConnectionSQL = `SELECT u.id, u.username, i.id, i.title FROM (SELECT u.id, u.username FROM users AS u ` +
	`ORDER BY u.id ASC LIMIT 21) AS u LEFT JOIN LATERAL (SELECT i.id, i.owner_id, i.title FROM items AS i ` +
	`WHERE i.owner_id = u.id ORDER BY i.id ASC LIMIT 6) AS i ON true ORDER BY u.id ASC, i.id ASC;
`

// lastNestedTitle is in a nested answer only when it holds all 5 items of the 20th user: item g
// belongs to user 1 + (g-1) mod seedUsers, so user 20's fifth is item 20 + 4·seedUsers.
var lastNestedTitle = `"title":"item ` + strconv.Itoa(20+4*seedUsers) + `"`

// firstIDs returns "1,2,…,n".
func firstIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(ids, ",")
}
