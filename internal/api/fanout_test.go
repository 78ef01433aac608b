package api

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/auth"
)

// groupKey puts two subscriptions in one group only when the document, the operation, the
// variables and what the caller may see are all the same.
func TestGroupKeyTellsSubscriptionsApart(t *testing.T) {
	const doc = `subscription Items($o: ID, $k: [String!]) { itemChanged(ownerId: $o) { kind item { id title } } }`
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	user := func(id int64, role auth.Role, expires time.Time) *auth.Principal {
		return &auth.Principal{UserID: id, Role: role, Expires: expires}
	}
	caller := func(policy auth.Policy, p *auth.Principal, err error) context.Context {
		return auth.WithCaller(context.Background(), policy, p, err)
	}
	jwt := auth.Policy{}
	alice := caller(jwt, user(1, auth.User, expires), nil)
	// op builds an operation; each call builds its variables anew, nested maps included.
	op := func(query, name string, vars map[string]any) *graphql.OperationContext {
		return &graphql.OperationContext{RawQuery: query, OperationName: name, Variables: vars}
	}
	vars := func() map[string]any {
		return map[string]any{"o": "VXNlcjox", "k": []any{"a", "b"}, "f": map[string]any{"x": 1, "y": true}}
	}
	base := op(doc, "Items", vars())

	for _, tc := range []struct {
		name string
		ctx  context.Context
		op   *graphql.OperationContext
		same bool
	}{
		{"the same subscription, built again", caller(jwt, user(1, auth.User, expires), nil), op(doc, "Items", vars()), true},
		{"variables inserted in another order", alice, op(doc, "Items", func() map[string]any {
			f := map[string]any{}
			f["y"], f["x"] = true, 1
			v := map[string]any{}
			v["f"], v["k"], v["o"] = f, []any{"a", "b"}, "VXNlcjox"
			return v
		}()), true},

		{"another variable value", alice, op(doc, "Items", func() map[string]any { v := vars(); v["o"] = "VXNlcjoy"; return v }()), false},
		{"a nested variable value", alice, op(doc, "Items", func() map[string]any {
			v := vars()
			v["f"] = map[string]any{"x": 2, "y": true}
			return v
		}()), false},
		{"a list in another order", alice, op(doc, "Items", func() map[string]any { v := vars(); v["k"] = []any{"b", "a"}; return v }()), false},
		{"a number for a string", alice, op(doc, "Items", func() map[string]any { v := vars(); v["o"] = 1; return v }()), false},
		{"a variable null", alice, op(doc, "Items", func() map[string]any { v := vars(); v["o"] = nil; return v }()), false},
		{"a variable left out", alice, op(doc, "Items", func() map[string]any { v := vars(); delete(v, "o"); return v }()), false},
		{"no variables", alice, op(doc, "Items", nil), false},
		{"another operation name", alice, op(doc, "", vars()), false},
		{"another document", alice, op(`subscription Items($o: ID, $k: [String!]) { itemChanged(ownerId: $o) { kind } }`, "Items", vars()), false},
		{"the same document spaced otherwise", alice, op(doc+" ", "Items", vars()), false},
		{"the document's end in the operation name", alice, op(doc[:len(doc)-1], "}Items", vars()), false},

		{"another user", caller(jwt, user(2, auth.User, expires), nil), base, false},
		{"another role", caller(jwt, user(1, auth.Admin, expires), nil), base, false},
		{"another expiry", caller(jwt, user(1, auth.User, expires.Add(time.Second)), nil), base, false},
		{"an expiry a nanosecond later", caller(jwt, user(1, auth.User, expires.Add(time.Nanosecond)), nil), base, false},
		{"open sign-up", caller(auth.Policy{OpenSignup: true}, user(1, auth.User, expires), nil), base, false},
		{"anonymous", caller(jwt, nil, nil), base, false},
		{"a refused token", caller(jwt, nil, errors.New("token is malformed")), base, false},
		{"open policy", caller(auth.Policy{Open: true}, nil, nil), base, false},
		{"no caller at all", context.Background(), base, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, ok := groupKey(alice, base)
			require.True(t, ok)
			got, ok := groupKey(tc.ctx, tc.op)
			require.True(t, ok)
			if tc.same {
				assert.Equal(t, want, got)
			} else {
				assert.NotEqual(t, want, got)
			}
		})
	}
}

// Every kind of caller has groups of its own; the same caller made again shares them, and so does
// a context with no caller at all with open mode (the auth package treats it as open mode).
func TestGroupKeyCallers(t *testing.T) {
	op := &graphql.OperationContext{RawQuery: `subscription { userCreated { id } }`, Variables: map[string]any{}}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	caller := func(policy auth.Policy, p *auth.Principal, err error) context.Context {
		return auth.WithCaller(context.Background(), policy, p, err)
	}
	callers := map[string]context.Context{
		"user 1":                 caller(auth.Policy{}, &auth.Principal{UserID: 1, Role: auth.User, Expires: expires}, nil),
		"user 2":                 caller(auth.Policy{}, &auth.Principal{UserID: 2, Role: auth.User, Expires: expires}, nil),
		"admin 1":                caller(auth.Policy{}, &auth.Principal{UserID: 1, Role: auth.Admin, Expires: expires}, nil),
		"user 1 expiring later":  caller(auth.Policy{}, &auth.Principal{UserID: 1, Role: auth.User, Expires: expires.Add(time.Hour)}, nil),
		"user 1 with signup":     caller(auth.Policy{OpenSignup: true}, &auth.Principal{UserID: 1, Role: auth.User, Expires: expires}, nil),
		"anonymous":              caller(auth.Policy{}, nil, nil),
		"anonymous with signup":  caller(auth.Policy{OpenSignup: true}, nil, nil),
		"refused: malformed":     caller(auth.Policy{}, nil, errors.New("token is malformed")),
		"refused: bad signature": caller(auth.Policy{}, nil, errors.New("token signature is invalid")),
		"open":                   caller(auth.Policy{Open: true}, nil, nil),
	}
	owners := map[string]string{} // key -> the caller that made it
	for name, ctx := range callers {
		key, ok := groupKey(ctx, op)
		require.True(t, ok)
		if other, seen := owners[key]; seen {
			t.Errorf("%s and %s share a group", name, other)
		}
		owners[key] = name
	}
	assert.Len(t, owners, len(callers))

	// The same caller made again, and a context without one (open, for the auth package).
	again, _ := groupKey(caller(auth.Policy{}, &auth.Principal{UserID: 2, Role: auth.User, Expires: expires}, nil), op)
	assert.Equal(t, "user 2", owners[again])
	none, _ := groupKey(context.Background(), op)
	assert.Equal(t, "open", owners[none])
}

// Variables that cannot be written as JSON cannot be compared: that subscription has no group.
func TestGroupKeyWithoutJSONVariables(t *testing.T) {
	_, ok := groupKey(context.Background(), &graphql.OperationContext{
		RawQuery: `subscription { userCreated { id } }`, Variables: map[string]any{"x": math.NaN()},
	})
	assert.False(t, ok)
}
