package main

import (
	"encoding/json"
	"testing"

	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

func TestVariableID(t *testing.T) {
	for _, tc := range []struct {
		body string
		id   int64
		ok   bool
	}{
		{`{"query":"query User($id: ID!) { user(id: $id) { id username email } }","variables":{"id":"12345"}}`, 12345, true},
		{`{"variables":{"id":"1"},"query":"{ user(id: \"9\") { id } }"}`, 1, true},
		{`{"query":"query Users { users(limit: 10) { id username email } }"}`, 0, false},
		{`{"variables":{"id":""}}`, 0, false},
		{`{"variables":{"id":"12a"}}`, 0, false},
		{`{"variables":{"id":"12`, 0, false},
		{`{"variables":{"id":"99999999999999999999"}}`, 0, false},
	} {
		id, ok := variableID([]byte(tc.body))
		if id != tc.id || ok != tc.ok {
			t.Errorf("variableID(%s) = %d, %v; want %d, %v", tc.body, id, ok, tc.id, tc.ok)
		}
	}
}

// The floor's JSON must read back as what it wrote, as our server's does.
func TestUserJSON(t *testing.T) {
	for _, u := range []user{
		{id: 10, username: "user_10", email: "user_10@bench.example"},
		{id: 1, username: `a"b\c`, email: "tab\there, line\nthere, é, \u2028"},
	} {
		out := u.appendJSON(nil)
		var got struct{ ID, Username, Email string }
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		if got.ID != (gqlscalar.ID{Type: gqlscalar.TypeUser, Row: u.id}).String() || got.Username != u.username || got.Email != u.email {
			t.Errorf("%s read back as %+v", out, got)
		}
	}
	// The id as the server writes it since issue 14: the global id (base64 of "User:10").
	want := `{"id":"VXNlcjoxMA==","username":"user_10","email":"user_10@bench.example"}`
	if got := string((&user{id: 10, username: "user_10", email: "user_10@bench.example"}).appendJSON(nil)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
