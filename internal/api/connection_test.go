package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

type pageInfo struct {
	HasNextPage     bool
	HasPreviousPage bool
	StartCursor     *string
	EndCursor       *string
}

type conn struct {
	Edges []struct {
		Cursor string
		Node   struct{ ID string }
	}
	PageInfo   pageInfo
	TotalCount int
}

func (c conn) ids() []string {
	out := make([]string, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node.ID
	}
	return out
}

const connFields = `edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }`

// page runs a query whose data has one connection at path and decodes it.
func (e *env) page(query string, vars map[string]any, path ...string) conn {
	e.t.Helper()
	data, errs := e.post(query, vars)
	require.Empty(e.t, errs)
	var v any = data
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	b, err := json.Marshal(v)
	require.NoError(e.t, err)
	var c conn
	require.NoError(e.t, json.Unmarshal(b, &c))
	return c
}

// walk pages through a whole connection, forward with first/after or backward with last/before,
// and returns the node ids in list order.
func walk(t *testing.T, backward bool, size int, fetch func(vars map[string]any) conn) []string {
	t.Helper()
	var all []string
	var cursor *string
	for range 100 {
		vars := map[string]any{"first": size, "after": cursor}
		if backward {
			vars = map[string]any{"last": size, "before": cursor}
		}
		c := fetch(vars)
		require.LessOrEqual(t, len(c.Edges), size)
		if backward {
			all = append(c.ids(), all...)
			assert.False(t, c.PageInfo.HasNextPage, "backward: hasNextPage is not computed (false), as in graphql-relay-js")
			if !c.PageInfo.HasPreviousPage {
				return all
			}
			cursor = c.PageInfo.StartCursor
		} else {
			all = append(all, c.ids()...)
			assert.False(t, c.PageInfo.HasPreviousPage, "forward: hasPreviousPage is not computed (false), as in graphql-relay-js")
			if !c.PageInfo.HasNextPage {
				return all
			}
			cursor = c.PageInfo.EndCursor
		}
		require.NotNil(t, cursor)
	}
	t.Fatal("paging did not end")
	return nil
}

func TestUsersConnectionOrders(t *testing.T) {
	e := newEnv(t)
	prefix := unique("uc") + "_"
	var made []user
	for _, suffix := range []string{"d", "B", "g", "a", "F", "c", "e"} {
		made = append(made, e.createUser(prefix+suffix, prefix+suffix+"@example.com"))
	}
	query := `query($first: Int, $after: String, $last: Int, $before: String, $order: UserOrder, $p: String) {
		usersConnection(first: $first, after: $after, last: $last, before: $before, orderBy: $order, filter: {usernamePrefix: $p}) {
			` + connFields + ` totalCount } }`
	orders := map[string]func(a, b user) int{
		"ID":         func(a, b user) int { return int(idNum(t, a.ID) - idNum(t, b.ID)) },
		"USERNAME":   func(a, b user) int { return strings.Compare(a.Username, b.Username) },
		"CREATED_AT": func(a, b user) int { return parseTime(t, a.CreatedAt).Compare(parseTime(t, b.CreatedAt)) },
	}
	for field, cmp := range orders {
		for _, dir := range []string{"ASC", "DESC"} {
			t.Run(field+" "+dir, func(t *testing.T) {
				want := slices.Clone(made)
				slices.SortStableFunc(want, func(a, b user) int {
					c := cmp(a, b)
					if c == 0 {
						c = int(idNum(t, a.ID) - idNum(t, b.ID))
					}
					if dir == "DESC" {
						c = -c
					}
					return c
				})
				var wantIDs []string
				for _, u := range want {
					wantIDs = append(wantIDs, u.ID)
				}
				fetch := func(vars map[string]any) conn {
					vars["order"] = map[string]any{"field": field, "direction": dir}
					vars["p"] = strings.ToUpper(prefix)
					c := e.page(query, vars, "usersConnection")
					assert.Equal(t, len(made), c.TotalCount)
					return c
				}
				for _, size := range []int{1, 3, 7, 10} {
					assert.Equal(t, wantIDs, walk(t, false, size, fetch), "forward by %d", size)
					assert.Equal(t, wantIDs, walk(t, true, size, fetch), "backward by %d", size)
				}
			})
		}
	}
	t.Run("default order and size", func(t *testing.T) {
		c := e.page(`query($p: String) { usersConnection(filter: {usernamePrefix: $p}) { `+connFields+` } }`,
			map[string]any{"p": prefix}, "usersConnection")
		assert.Len(t, c.Edges, 7)
		assert.False(t, c.PageInfo.HasNextPage)
		assert.False(t, c.PageInfo.HasPreviousPage)
		assert.Equal(t, made[0].ID, c.Edges[0].Node.ID)
		assert.Equal(t, c.Edges[0].Cursor, *c.PageInfo.StartCursor)
		assert.Equal(t, c.Edges[6].Cursor, *c.PageInfo.EndCursor)
	})
	t.Run("first: 0 still tells whether there is more", func(t *testing.T) {
		c := e.page(`query($p: String) { usersConnection(first: 0, filter: {usernamePrefix: $p}) { `+connFields+` totalCount } }`,
			map[string]any{"p": prefix}, "usersConnection")
		assert.Empty(t, c.Edges)
		assert.True(t, c.PageInfo.HasNextPage)
		assert.Equal(t, 7, c.TotalCount)
		c = e.page(`query($p: String) { usersConnection(last: 0, filter: {usernamePrefix: $p}) { `+connFields+` } }`,
			map[string]any{"p": prefix}, "usersConnection")
		assert.True(t, c.PageInfo.HasPreviousPage)
	})
	t.Run("empty page", func(t *testing.T) {
		c := e.page(`{ usersConnection(first: 0, filter: {usernamePrefix: "nobody-has-this"}) { `+connFields+` totalCount } }`, nil, "usersConnection")
		assert.Empty(t, c.Edges)
		assert.Nil(t, c.PageInfo.StartCursor)
		assert.Nil(t, c.PageInfo.EndCursor)
		assert.Zero(t, c.TotalCount)
	})
}

// Rows inserted between two page requests neither repeat nor hide rows of the original list.
func TestPagingAcrossInserts(t *testing.T) {
	e := newEnv(t)
	prefix := unique("pi") + "_"
	var original []string
	for _, s := range []string{"b", "d", "f", "h", "j", "l"} {
		original = append(original, e.createUser(prefix+s, prefix+s+"@example.com").Username)
	}
	query := `query($first: Int, $after: String, $last: Int, $before: String, $p: String) {
		usersConnection(first: $first, after: $after, last: $last, before: $before, filter: {usernamePrefix: $p},
			orderBy: {field: USERNAME}) { edges { cursor node { id username } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`
	type page struct {
		UsersConnection struct {
			Edges    []struct{ Node struct{ Username string } }
			PageInfo pageInfo
		}
	}
	fetch := func(vars map[string]any) page {
		vars["p"] = prefix
		data, errs := e.post(query, vars)
		require.Empty(t, errs)
		b, _ := json.Marshal(data)
		var p page
		require.NoError(t, json.Unmarshal(b, &p))
		return p
	}
	names := func(p page) []string {
		var out []string
		for _, e := range p.UsersConnection.Edges {
			out = append(out, e.Node.Username)
		}
		return out
	}

	first := fetch(map[string]any{"first": 3})
	assert.Equal(t, original[:3], names(first))
	// New rows before and after the cursor.
	e.createUser(prefix+"a", prefix+"a@example.com")
	e.createUser(prefix+"e", prefix+"e@example.com")
	e.createUser(prefix+"k", prefix+"k@example.com")
	second := fetch(map[string]any{"first": 3, "after": first.UsersConnection.PageInfo.EndCursor})
	assert.Equal(t, []string{prefix + "h", prefix + "j", prefix + "k"}, names(second),
		"continues right after the cursor: the new row before it is not repeated, the one after it is in place")
	assert.True(t, second.UsersConnection.PageInfo.HasNextPage)

	last := fetch(map[string]any{"last": 2})
	assert.Equal(t, []string{prefix + "k", prefix + "l"}, names(last))
	e.createUser(prefix+"i", prefix+"i@example.com")
	e.createUser(prefix+"z", prefix+"z@example.com")
	before := fetch(map[string]any{"last": 3, "before": last.UsersConnection.PageInfo.StartCursor})
	assert.Equal(t, []string{prefix + "h", prefix + "i", prefix + "j"}, names(before),
		"backward continues right before the cursor, with the new row in place")
	assert.True(t, before.UsersConnection.PageInfo.HasPreviousPage)

	// The cursor's own row goes away: the next page still starts right after its position.
	var gone struct{ UserByUsername struct{ ID string } }
	e.c.MustPost(`query($u: String!) { userByUsername(username: $u) { id } }`, &gone, client.Var("u", prefix+"f"))
	_, errs := e.post(`mutation($id: ID!) { deleteUser(id: $id) { id } }`, map[string]any{"id": gone.UserByUsername.ID})
	require.Empty(t, errs)
	again := fetch(map[string]any{"first": 2, "after": first.UsersConnection.PageInfo.EndCursor})
	assert.Equal(t, []string{prefix + "h", prefix + "i"}, names(again))
}

func TestUsersConnectionFilters(t *testing.T) {
	e := newEnv(t)
	prefix := unique("uf")
	a := e.createUser(prefix+"_ann", prefix+"ann@Alpha.example")
	time.Sleep(5 * time.Millisecond)
	b := e.createUser(prefix+"_bob", prefix+"bob@beta.example")
	time.Sleep(5 * time.Millisecond)
	c := e.createUser(prefix+"xcat", prefix+"cat@alpha.EXAMPLE")
	query := `query($f: UserFilter) { usersConnection(first: 100, filter: $f) { ` + connFields + ` totalCount } }`
	cases := []struct {
		name   string
		filter map[string]any
		want   []user
	}{
		{"prefix, any case", map[string]any{"usernamePrefix": strings.ToUpper(prefix) + "_"}, []user{a, b}},
		{"prefix is literal: _ is not a wildcard", map[string]any{"usernamePrefix": prefix + "_"}, []user{a, b}},
		{"prefix with %", map[string]any{"usernamePrefix": prefix + "%"}, nil},
		{"email domain, any case", map[string]any{"usernamePrefix": prefix, "emailDomain": "ALPHA.example"}, []user{a, c}},
		{"created range", map[string]any{"usernamePrefix": prefix, "createdAfter": b.CreatedAt, "createdBefore": c.CreatedAt}, []user{b}},
		{"created after is inclusive", map[string]any{"usernamePrefix": prefix, "createdAfter": a.CreatedAt}, []user{a, b, c}},
		{"all together", map[string]any{"usernamePrefix": prefix + "_", "emailDomain": "beta.example", "createdBefore": c.CreatedAt}, []user{b}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.page(query, map[string]any{"f": tc.filter}, "usersConnection")
			var want []string
			for _, u := range tc.want {
				want = append(want, u.ID)
			}
			assert.Equal(t, want, nilIfEmpty(got.ids()))
			assert.Equal(t, len(want), got.TotalCount)
		})
	}
}

// forge makes a cursor with the given JSON, as a hostile client could.
func forge(js string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(js))
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestConnectionArgumentErrors(t *testing.T) {
	e := newEnv(t)
	name := unique("ce")
	u := e.createUser(name, name+"@example.com")
	it := e.createItem(u.ID, "x", nil)
	_ = it
	users := e.page(`{ usersConnection(first: 1) { `+connFields+` } }`, nil, "usersConnection")
	userCursor := users.Edges[0].Cursor
	byName := e.page(`{ usersConnection(first: 1, orderBy: {field: USERNAME}) { `+connFields+` } }`, nil, "usersConnection")
	itemCursor := e.page(`{ itemsConnection(first: 1) { `+connFields+` } }`, nil, "itemsConnection").Edges[0].Cursor

	q := `query($first: Int, $after: String, $last: Int, $before: String, $order: UserOrder) {
		usersConnection(first: $first, after: $after, last: $last, before: $before, orderBy: $order) { edges { cursor } } }`
	cases := []struct {
		name  string
		vars  map[string]any
		field string
	}{
		{"first and last", map[string]any{"first": 1, "last": 1}, "last"},
		{"after and before", map[string]any{"after": userCursor, "before": userCursor}, "before"},
		{"first over 100", map[string]any{"first": 101}, "first"},
		{"negative first", map[string]any{"first": -1}, "first"},
		{"last over 100", map[string]any{"last": 101}, "last"},
		{"after with last", map[string]any{"last": 2, "after": userCursor}, "after"},
		{"before with first", map[string]any{"first": 2, "before": userCursor}, "before"},
		{"garbage cursor", map[string]any{"first": 2, "after": "garbage!"}, "after"},
		{"base64 but not a cursor", map[string]any{"first": 2, "after": "bm90IGEgY3Vyc29y"}, "after"},
		{"cursor of another list", map[string]any{"first": 2, "after": itemCursor}, "after"},
		{"cursor of another order", map[string]any{"first": 2, "after": byName.Edges[0].Cursor}, "after"},
		{"cursor of another order, backward", map[string]any{"last": 2, "before": userCursor, "order": map[string]any{"field": "CREATED_AT"}}, "before"},
		{"forged cursor: bad time", map[string]any{"first": 2, "after": forge(`{"l":"user","f":"CREATED_AT","v":"nope","i":1}`), "order": map[string]any{"field": "CREATED_AT"}}, "after"},
		{"forged cursor: empty time", map[string]any{"first": 2, "after": forge(`{"l":"user","f":"CREATED_AT","i":1}`), "order": map[string]any{"field": "CREATED_AT"}}, "after"},
		{"forged cursor: year 0", map[string]any{"first": 2, "after": forge(`{"l":"user","f":"CREATED_AT","v":"0000-01-01T00:00:00Z","i":1}`), "order": map[string]any{"field": "CREATED_AT"}}, "after"},
		{"forged cursor: NUL in text", map[string]any{"first": 2, "after": forge(`{"l":"user","f":"USERNAME","v":"a\u0000b","i":1}`), "order": map[string]any{"field": "USERNAME"}}, "after"},
		{"forged cursor: value for id order", map[string]any{"first": 2, "after": forge(`{"l":"user","f":"ID","v":"x","i":1}`)}, "after"},
		{"forged cursor: no id", map[string]any{"first": 2, "after": forge(`{"l":"user","f":"ID"}`)}, "after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gqlErr := e.mustFail(q, tc.vars)
			assert.Equal(t, "BAD_USER_INPUT", gqlErr.code(), gqlErr.Message)
			assert.Equal(t, tc.field, gqlErr.field(), gqlErr.Message)
		})
	}
	t.Run("bad times", func(t *testing.T) {
		for _, v := range []string{"yesterday", "0000-01-01T00:00:00Z", "2026-01-01T00:00:00+99:00", "2026-01-01", "a\u0000"} {
			for _, query := range []string{
				`{ usersConnection(filter: {createdAfter: "` + v + `"}) { edges { cursor } } }`,
				`{ itemsConnection(filter: {createdBefore: "` + v + `"}) { edges { cursor } } }`,
			} {
				gqlErr := e.mustFail(query, nil)
				want := "BAD_USER_INPUT"
				if strings.Contains(v, "\x00") {
					want = "GRAPHQL_PARSE_FAILED" // a NUL in the document itself
				}
				assert.Equal(t, want, gqlErr.code(), "%s: %s", query, gqlErr.Message)
			}
			gqlErr := e.mustFail(`query($t: Time) { usersConnection(filter: {createdAfter: $t}) { edges { cursor } } }`, map[string]any{"t": v})
			assert.Equal(t, "BAD_USER_INPUT", gqlErr.code(), v)
			assert.Equal(t, "createdAfter", gqlErr.field(), v)
		}
	})
	t.Run("item paging and filters", func(t *testing.T) {
		for query, field := range map[string]string{
			`{ itemsConnection(first: 1, after: "` + userCursor + `") { edges { cursor } } }`:         "after",
			`{ itemsConnection(last: 500) { edges { cursor } } }`:                                     "last",
			`{ itemsConnection(filter: {ownerId: "nope"}) { edges { cursor } } }`:                     "ownerId",
			`query($s: String) { itemsConnection(filter: {titleContains: $s}) { edges { cursor } } }`: "titleContains",
			`{ user(id: "1") { items(first: 1, last: 1) { edges { cursor } } } }`:                     "last",
		} {
			gqlErr := e.mustFail(query, map[string]any{"s": "a\x00"})
			assert.Equal(t, "BAD_USER_INPUT", gqlErr.code(), query)
			assert.Equal(t, field, gqlErr.field(), query)
		}
	})
}

func TestItemsConnections(t *testing.T) {
	e := newEnv(t)
	name := unique("ic")
	owner := e.createUser(name, name+"@example.com")
	other := e.createUser(name+"_o", name+"_o@example.com")
	titles := []string{"Delta lamp", "alpha chair", "Charlie 100% wool", "bravo LAMP", "echo table"}
	var made []item
	for _, title := range titles {
		made = append(made, e.createItem(owner.ID, title, nil))
	}
	e.createItem(other.ID, "other lamp", nil)

	byTitle := slices.Clone(made)
	sort.SliceStable(byTitle, func(i, j int) bool { return byTitle[i].Title < byTitle[j].Title })
	want := func(list []item, desc bool) []string {
		out := ids(list)
		if desc {
			slices.Reverse(out)
		}
		return out
	}
	top := `query($first: Int, $after: String, $last: Int, $before: String, $order: ItemOrder, $f: ItemFilter) {
		itemsConnection(first: $first, after: $after, last: $last, before: $before, orderBy: $order, filter: $f) { ` + connFields + ` totalCount } }`
	nested := `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String, $order: ItemOrder, $f: ItemFilter) {
		user(id: $id) { items(first: $first, after: $after, last: $last, before: $before, orderBy: $order, filter: $f) { ` + connFields + ` totalCount } } }`
	for _, field := range []string{"ID", "TITLE", "CREATED_AT"} {
		for _, dir := range []string{"ASC", "DESC"} {
			expected := want(made, dir == "DESC") // ids and creation times grow together
			if field == "TITLE" {
				expected = want(byTitle, dir == "DESC")
			}
			order := map[string]any{"field": field, "direction": dir}
			t.Run("itemsConnection "+field+" "+dir, func(t *testing.T) {
				fetch := func(vars map[string]any) conn {
					vars["order"], vars["f"] = order, map[string]any{"ownerId": owner.ID}
					c := e.page(top, vars, "itemsConnection")
					assert.Equal(t, len(made), c.TotalCount)
					return c
				}
				assert.Equal(t, expected, walk(t, false, 2, fetch))
				assert.Equal(t, expected, walk(t, true, 2, fetch))
			})
			t.Run("User.items "+field+" "+dir, func(t *testing.T) {
				fetch := func(vars map[string]any) conn {
					vars["order"], vars["id"] = order, owner.ID
					c := e.page(nested, vars, "user", "items")
					assert.Equal(t, len(made), c.TotalCount)
					return c
				}
				assert.Equal(t, expected, walk(t, false, 2, fetch))
				assert.Equal(t, expected, walk(t, true, 3, fetch))
			})
		}
	}
	t.Run("filters", func(t *testing.T) {
		cases := []struct {
			name   string
			filter map[string]any
			want   []item
		}{
			{"title contains, any case", map[string]any{"ownerId": owner.ID, "titleContains": "LaMp"}, []item{made[0], made[3]}},
			{"title contains a literal %", map[string]any{"ownerId": owner.ID, "titleContains": "100%"}, []item{made[2]}},
			{"% alone is not a wildcard", map[string]any{"ownerId": owner.ID, "titleContains": "%"}, []item{made[2]}},
			{"created range", map[string]any{"ownerId": owner.ID, "createdAfter": made[1].CreatedAt, "createdBefore": made[3].CreatedAt}, []item{made[1], made[2]}},
			{"every owner", map[string]any{"titleContains": name + "-never"}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := e.page(top, map[string]any{"first": 100, "f": tc.filter}, "itemsConnection")
				assert.Equal(t, nilIfEmpty(ids(tc.want)), nilIfEmpty(c.ids()))
				assert.Equal(t, len(tc.want), c.TotalCount)
			})
		}
		c := e.page(top, map[string]any{"first": 100, "f": map[string]any{"titleContains": "lamp"}}, "itemsConnection")
		assert.GreaterOrEqual(t, c.TotalCount, 3, "without ownerId every owner's items match")
	})
}

// Rows that tie on the sort key are ordered by id, and no page repeats or skips one of them.
func TestPagingThroughTies(t *testing.T) {
	e := newEnv(t)
	name := unique("tie")
	owner := e.createUser(name, name+"@example.com")
	// One statement: every row gets the same created_at; titles tie in pairs.
	var idsInserted []int64
	require.NoError(t, dbtest.DB(t).NewRaw(`INSERT INTO items (owner_id, title)
		SELECT ?, 'same ' || (g / 2) FROM generate_series(0, 7) g RETURNING id`, idNum(t, owner.ID)).Scan(context.Background(), &idsInserted))
	require.Len(t, idsInserted, 8)
	var all []string
	for _, id := range idsInserted {
		all = append(all, gqlscalar.ID{Type: gqlscalar.TypeItem, Row: id}.String())
	}
	query := `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String, $order: ItemOrder) {
		user(id: $id) { items(first: $first, after: $after, last: $last, before: $before, orderBy: $order) { ` + connFields + ` } } }`
	for _, field := range []string{"TITLE", "CREATED_AT"} {
		for _, dir := range []string{"ASC", "DESC"} {
			want := slices.Clone(all) // titles 'same 0','same 0','same 1',... follow id order, as do ties
			if dir == "DESC" {
				slices.Reverse(want)
			}
			fetch := func(vars map[string]any) conn {
				vars["id"], vars["order"] = owner.ID, map[string]any{"field": field, "direction": dir}
				return e.page(query, vars, "user", "items")
			}
			assert.Equal(t, want, walk(t, false, 1, fetch), "%s %s forward", field, dir)
			assert.Equal(t, want, walk(t, true, 1, fetch), "%s %s backward", field, dir)
			assert.Equal(t, want, walk(t, false, 3, fetch), "%s %s forward by 3", field, dir)
		}
	}
}
