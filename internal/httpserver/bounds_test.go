package httpserver_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
)

// cpuTime is the CPU time this process (the server included) has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRefusalCPU is what refusing one hostile document may cost the process, race detector
// included: generous, since each attack below cost seconds of CPU before it was bounded.
const maxRefusalCPU = 500 * time.Millisecond

// bomb is a document whose fragments each spread the next fan times, levels deep: a few
// hundred bytes that select fan^levels fields.
func bomb(root, on, leaf string, levels, fan int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{ %s { ...F0 } }", root)
	for l := range levels {
		fmt.Fprintf(&b, " fragment F%d on %s {", l, on)
		for range fan {
			fmt.Fprintf(&b, " ...F%d", l+1)
		}
		b.WriteString(" }")
	}
	fmt.Fprintf(&b, " fragment F%d on %s { %s }", levels, on, leaf)
	return b.String()
}

// Documents that cost seconds to minutes of CPU before anything ran (parsing, validation,
// complexity) are refused in milliseconds of CPU, with a code that says why; the CPU each
// cost unbounded is noted on its case.
func TestPreExecutionCostIsBounded(t *testing.T) {
	g := startGuarded(t, guardOptions{maxBody: 1 << 20}) // the default limits
	// Only the complexity limit: it must stand on its own.
	costOnly := startGuarded(t, guardOptions{maxBody: 1 << 20, limits: api.Limits{Fields: 1 << 30}})
	cases := []struct {
		name  string
		g     *guarded
		query string
		code  string
	}{
		// 725 bytes selecting 10^8 fields: gqlgen's complexity walked every spread (15 s).
		{"fragment bomb", g, bomb(`user(id: "1")`, "User", "id", 8, 10), "TOO_MANY_FIELDS"},
		{"fragment bomb, complexity alone", costOnly, bomb(`user(id: "1")`, "User", "id", 8, 10), "COMPLEXITY_LIMIT_EXCEEDED"},
		// Introspection cost nothing, so this one ran (cheaply: execution collects each
		// fragment once).
		{"fragment bomb under __schema", g, bomb("__schema", "__Schema", "queryType { name }", 8, 10), "TOO_MANY_FIELDS"},
		{"fragment bomb under __schema, complexity alone", costOnly, bomb("__schema", "__Schema", "queryType { name }", 8, 10), "COMPLEXITY_LIMIT_EXCEEDED"},
		// 15 KB within every other limit: the overlapping-fields validation compared all
		// 12 million pairs (1.6 s).
		{"4,900 copies of a field", g, `{ user(id: "1") { ` + strings.Repeat("id ", 4900) + `} }`, "TOO_MANY_FIELDS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cpuTime(t)
			resp := tc.g.do(t, "", tc.query, nil)
			used := cpuTime(t) - before
			assert.Equal(t, tc.code, resp.code(), "%+v", resp.Errors)
			assert.True(t, len(resp.Data) == 0, "refused before anything ran")
			assert.Less(t, used, maxRefusalCPU, "CPU used by the request")
			t.Logf("%d bytes: %s in %v of CPU", len(tc.query), resp.code(), used)
		})
	}

	t.Run("__schema under 100 aliases", func(t *testing.T) {
		// 100 copies of the whole schema (4.3 MB; 1.6 s of CPU, past the deadline under load):
		// introspection cost nothing and was not capped.
		intro, err := os.ReadFile(filepath.Join("testdata", "introspection.graphql"))
		require.NoError(t, err)
		fragments := string(intro[strings.Index(string(intro), "fragment "):])
		var b strings.Builder
		b.WriteString("{")
		for i := range 100 {
			fmt.Fprintf(&b, " s%d: __schema { ...Schema }", i)
		}
		b.WriteString(" } fragment Schema on __Schema { types { ...FullType } directives { name locations args { ...InputValue } } } ")
		b.WriteString(fragments)
		for _, srv := range []*guarded{g, costOnly} {
			before := cpuTime(t)
			resp := srv.do(t, "", b.String(), nil)
			used := cpuTime(t) - before
			assert.True(t, len(resp.Data) == 0, "refused before anything ran")
			if srv == costOnly {
				assert.Contains(t, respCodes(resp), "INTROSPECTION_LIMIT_EXCEEDED", "%+v", resp.Errors)
			} else { // 699 selections: counted before validation
				assert.Contains(t, respCodes(resp), "TOO_MANY_FIELDS", "%+v", resp.Errors)
			}
			assert.Less(t, used, maxRefusalCPU, "CPU used by the request")
			t.Logf("%d bytes: %v in %v of CPU", b.Len(), respCodes(resp), used)
		}
	})
	t.Run("introspection per document", func(t *testing.T) {
		one := g.do(t, "", `{ a: __schema { queryType { name } } }`, nil)
		assert.Empty(t, one.Errors)
		same := g.do(t, "", `{ __schema { queryType { name } } __schema { mutationType { name } } }`, nil)
		assert.Empty(t, same.Errors, "copies without an alias run once")
		two := g.do(t, "", `{ a: __schema { queryType { name } } ...F } fragment F on Query { b: __schema { queryType { name } } }`, nil)
		assert.Equal(t, "INTROSPECTION_LIMIT_EXCEEDED", two.code(), "%+v", two.Errors)
		var types strings.Builder
		for i := range 11 {
			fmt.Fprintf(&types, " t%d: __type(name: \"User\") { name }", i)
		}
		assert.Empty(t, g.do(t, "", "{"+strings.TrimSuffix(types.String(), ` t10: __type(name: "User") { name }`)+" }", nil).Errors, "ten __type")
		eleven := g.do(t, "", "{"+types.String()+" }", nil)
		assert.Equal(t, "INTROSPECTION_LIMIT_EXCEEDED", eleven.code(), "%+v", eleven.Errors)
	})
	t.Run("introspection is costed", func(t *testing.T) {
		// 1 + 2 for __schema { queryType { name } }; each type's fields add their own.
		small := startGuarded(t, guardOptions{limits: api.Limits{Complexity: 5}})
		assert.Empty(t, small.do(t, "", `{ __schema { queryType { name } } }`, nil).Errors)
		resp := small.do(t, "", `{ __schema { types { name kind description fields { name } } } }`, nil)
		assert.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", resp.code(), "%+v", resp.Errors)
	})
	t.Run("a field count at the limit passes", func(t *testing.T) {
		// user, its argument's value and 498 copies of id: 500.
		at := g.do(t, "", `{ user(id: "1") { `+strings.Repeat("id ", 498)+`} }`, nil)
		assert.Empty(t, at.Errors)
		over := g.do(t, "", `{ user(id: "1") { `+strings.Repeat("id ", 499)+`} }`, nil)
		assert.Equal(t, "TOO_MANY_FIELDS", over.code(), "%+v", over.Errors)
		// A fragment counts wherever it is spread: 2 × (user, its argument, the spread and
		// 248 ids) = 502.
		twice := g.do(t, "", `{ a: user(id: "1") { ...U } b: user(id: "2") { ...U } } fragment U on User { `+strings.Repeat("id ", 248)+`}`, nil)
		assert.Equal(t, "TOO_MANY_FIELDS", twice.code(), "%+v", twice.Errors)
		// Argument values count: 9 for each copy of this field (it was accepted at 56 copies,
		// well within the complexity limit, and each pair of copies is compared).
		field := `usersConnection(filter: {usernamePrefix: "a", emailDomain: "b"}, orderBy: {field: USERNAME, direction: ASC}) { pageInfo { hasNextPage } } `
		assert.Empty(t, g.do(t, "", "{ "+strings.Repeat(field, 55)+"}", nil).Errors, "495")
		args := g.do(t, "", "{ "+strings.Repeat(field, 56)+"}", nil)
		assert.Equal(t, "TOO_MANY_FIELDS", args.code(), "%+v", args.Errors)
	})
	t.Run("fields that cannot merge are still reported", func(t *testing.T) {
		resp := g.do(t, "", `{ user(id: "1") { id: username id } }`, nil)
		assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", resp.code(), "%+v", resp.Errors)
		require.NotEmpty(t, resp.Errors)
		assert.Contains(t, resp.Errors[0].Message, "different fields")
	})
	t.Run("what clients send passes", func(t *testing.T) {
		intro, err := os.ReadFile(filepath.Join("testdata", "introspection.graphql"))
		require.NoError(t, err)
		resp := g.do(t, "", string(intro), nil)
		assert.Empty(t, resp.Errors)
		assert.Contains(t, resp.Data, "__schema")

		// Writes without a token and subscriptions over POST are refused, but only once the
		// document passed every limit. The largest page the examples may ask for.
		vars := map[string]map[string]any{
			"CreateItem":    {"input": map[string]any{"ownerId": "1", "title": "t"}},
			"ItemChanges":   {},
			"UsersPage":     {"first": 100},
			"CreateUser":    {"input": map[string]any{"username": "u", "email": "u@example.com"}},
			"RenameUser":    {"id": "1"},
			"Refetch":       {"id": "VXNlcjox"},
			"UsersByIds":    {"ids": slices.Repeat([]any{"VXNlcjox"}, 100)}, // as many as nodes takes
			"UserDeletions": {},
		}
		files, err := filepath.Glob(filepath.Join("..", "..", "examples", "operations", "*.graphql"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		ran := 0
		for _, file := range files {
			doc, err := os.ReadFile(file)
			require.NoError(t, err)
			for _, line := range strings.Split(string(doc), "\n") {
				fields := strings.Fields(strings.NewReplacer("(", " ", "{", " ").Replace(line))
				if len(fields) < 2 || (fields[0] != "query" && fields[0] != "mutation" && fields[0] != "subscription") {
					continue
				}
				name := fields[1]
				require.Contains(t, vars, name, "variables for %s", name)
				body, err := json.Marshal(map[string]any{"query": string(doc), "operationName": name, "variables": vars[name]})
				require.NoError(t, err)
				resp := g.raw(t, "", body, nil)
				for _, code := range respCodes(resp) {
					assert.Contains(t, []string{"UNAUTHENTICATED", "BAD_REQUEST"}, code, "%s %s: %+v", file, name, resp.Errors)
				}
				ran++
			}
		}
		assert.Equal(t, len(vars), ran)
	})
}

func respCodes(r gqlResp) []string {
	var out []string
	for _, e := range r.Errors {
		s, _ := e.Extensions["code"].(string)
		out = append(out, s)
	}
	return out
}
