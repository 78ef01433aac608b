package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The GraphQL handler never answers a request with a server error, whatever the body: every
// fault a client can cause has a code of its own. go test -fuzz=FuzzGraphQLRequest ./internal/api
// (against the package's test database; the seeds run in make test).
func FuzzGraphQLRequest(f *testing.F) {
	for _, seed := range []string{
		`{"query":"{ users { id username } }"}`,
		`{"query":"query($id: ID!) { user(id: $id) { id } }","variables":{"id":"1"}}`,
		`{"query":"mutation { createUser(input: {username: \"fz_seed\", email: \"fz@x.example\"}) { id } }"}`,
		`{"query":"{ usersConnection(first: 2, after: \"eyJsIjoidXNlciJ9\") { edges { cursor } } }"}`,
		`{"query":"{ itemsConnection(filter: {titleContains: \"%_\\\\\"}) { totalCount } }"}`,
		`{"query":"{ user(id: \"99999999999999999999\") { id } }"}`,
		`{"query":"{ users(limit: 2147483648) { id } }"}`,
		`{"query":"{ __schema { types { name } } }"}`,
		`{"query":"subscription { userCreated { id } }"}`,
		`{"query": 5}`, `[]`, `{`, ``, `{"query":"{ users { id "}`, "{\"query\":\"{ userByUsername(username: \\\"\\u0000\\\") { id } }\"}",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(&testing.T{})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%q: HTTP %d: %s", body, w.Code, w.Body.String())
		}
		if bytes.Contains(w.Body.Bytes(), []byte("INTERNAL_SERVER_ERROR")) {
			t.Fatalf("%q: %s", body, w.Body.String())
		}
	})
}
