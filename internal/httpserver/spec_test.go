package httpserver_test

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// httpAnswer is one HTTP answer of /query, its body kept whole to see which members it has.
type httpAnswer struct {
	status      int
	contentType string // the media type, without parameters
	charset     string
	header      http.Header
	members     map[string]json.RawMessage
	body        string
}

func (a httpAnswer) codes() []string {
	var errs []struct {
		Extensions struct{ Code string }
	}
	_ = json.Unmarshal(a.members["errors"], &errs)
	var codes []string
	for _, e := range errs {
		codes = append(codes, e.Extensions.Code)
	}
	return codes
}

// sendGraphQL sends a GraphQL request to base's /query: by GET (the parameters in the URL) or by POST
// (a JSON body), with accept as its Accept header ("-" for none).
func sendGraphQL(t *testing.T, base, method, accept string, params map[string]any) httpAnswer {
	t.Helper()
	var req *http.Request
	if method == http.MethodGet {
		q := url.Values{}
		for k, v := range params {
			if s, ok := v.(string); ok {
				q.Set(k, s)
			} else {
				b, _ := json.Marshal(v)
				q.Set(k, string(b))
			}
		}
		req, _ = http.NewRequest(http.MethodGet, base+"/query?"+q.Encode(), nil)
	} else {
		b, _ := json.Marshal(params)
		req, _ = http.NewRequest(method, base+"/query", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
	}
	return doGraphQL(t, req, accept)
}

func doGraphQL(t *testing.T, req *http.Request, accept string) httpAnswer {
	t.Helper()
	if accept != "-" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: string(body)}
	var params map[string]string
	a.contentType, params, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
	a.charset = params["charset"]
	require.NoError(t, json.Unmarshal(body, &a.members), "%s", body)
	return a
}

const (
	mediaJSON     = "application/json"
	mediaResponse = "application/graphql-response+json"
)

// Requests that fail before they execute: under application/json (or no Accept, or */*) 200,
// under application/graphql-response+json 400; no "data" member under either; the Content-Type
// is the media type chosen; GET and POST alike.
func TestRequestErrorsBySpec(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	base := "http://" + in.base
	failures := []struct {
		name   string
		params map[string]any
		code   string
	}{
		{"parse error", map[string]any{"query": "{ users(limit: 1) { id }"}, "GRAPHQL_PARSE_FAILED"},
		{"validation error", map[string]any{"query": "{ users(limit: 1) { id noSuchField } }"}, "GRAPHQL_VALIDATION_FAILED"},
		{"variable coercion error", map[string]any{
			"query": "query($n: Int!) { users(limit: $n) { id } }", "variables": map[string]any{"n": "ten"},
		}, "GRAPHQL_VALIDATION_FAILED"},
		{"null for a non-null variable", map[string]any{
			"query": "query($id: ID!) { user(id: $id) { id } }", "variables": map[string]any{"id": nil},
		}, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown operation name", map[string]any{"query": "query A { me { id } }", "operationName": "B"}, "GRAPHQL_VALIDATION_FAILED"},
	}
	accepts := []struct{ accept, media string }{
		{mediaJSON, mediaJSON},
		{"-", mediaJSON},
		{"*/*", mediaJSON},
		{mediaResponse, mediaResponse},
		{"application/graphql-response+json, application/json;q=0.9", mediaResponse},
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, f := range failures {
			for _, acc := range accepts {
				t.Run(method+" "+f.name+" Accept "+acc.accept, func(t *testing.T) {
					a := sendGraphQL(t, base, method, acc.accept, f.params)
					want := http.StatusOK
					if acc.media == mediaResponse {
						want = http.StatusBadRequest
					}
					assert.Equal(t, want, a.status, a.body)
					assert.Equal(t, acc.media, a.contentType)
					assert.Equal(t, "utf-8", a.charset)
					assert.NotContains(t, a.members, "data", "not executed: no data member: %s", a.body)
					assert.Equal(t, []string{f.code}, a.codes(), a.body)
				})
			}
		}
	}
}

// Once an operation executed, its answer has data, null when a non-null root field failed, and
// 200 under either media type.
func TestExecutedAnswersHaveData(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	base := "http://" + in.base
	create := map[string]any{
		"query":     "mutation($in: NewUser!) { createUser(input: $in) { username } }",
		"variables": map[string]any{"in": map[string]any{"username": "spec_user", "email": "spec@example.com"}},
	}
	for _, acc := range []struct{ accept, media string }{{mediaJSON, mediaJSON}, {mediaResponse, mediaResponse}} {
		t.Run(acc.accept, func(t *testing.T) {
			a := sendGraphQL(t, base, http.MethodPost, acc.accept, create)
			assert.Equal(t, http.StatusOK, a.status, a.body)
			assert.Equal(t, acc.media, a.contentType)
			if acc.media == mediaJSON {
				assert.JSONEq(t, `{"createUser":{"username":"spec_user"}}`, string(a.members["data"]))
				return
			}
			// The second time: the root field fails on the conflict, and data is null.
			assert.Equal(t, "null", string(a.members["data"]), a.body)
			assert.Equal(t, []string{"CONFLICT"}, a.codes())
		})
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, acc := range []struct{ accept, media string }{{mediaJSON, mediaJSON}, {"-", mediaJSON}, {"*/*", mediaJSON}, {mediaResponse, mediaResponse}} {
			t.Run(method+" query Accept "+acc.accept, func(t *testing.T) {
				a := sendGraphQL(t, base, method, acc.accept, map[string]any{"query": `query($u: String!) { userByUsername(username: $u) { username } }`, "variables": map[string]any{"u": "spec_user"}})
				assert.Equal(t, http.StatusOK, a.status, a.body)
				assert.Equal(t, acc.media, a.contentType)
				assert.JSONEq(t, `{"userByUsername":{"username":"spec_user"}}`, string(a.members["data"]))
				assert.NotContains(t, a.members, "errors")
			})
		}
	}
}

// An Accept header that names neither media type is refused with 406 (what the spec
// recommends), before anything runs.
func TestUnacceptableAccept(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	base := "http://" + in.base
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, accept := range []string{"text/html", "application/xml, text/plain", "application/json;q=0", "application/graphql+json", "application/json; charset=iso-8859-1"} {
			t.Run(method+" "+accept, func(t *testing.T) {
				a := sendGraphQL(t, base, method, accept, map[string]any{
					"query": `mutation { createUser(input: {username: "not_acceptable", email: "na@example.com"}) { id } }`,
				})
				assert.Equal(t, http.StatusNotAcceptable, a.status, a.body)
				assert.Equal(t, mediaJSON, a.contentType)
				assert.Equal(t, []string{"NOT_ACCEPTABLE"}, a.codes())
			})
		}
	}
	var n int
	require.NoError(t, in.db.NewRaw("SELECT count(*) FROM users WHERE username = 'not_acceptable'").Scan(t.Context(), &n))
	assert.Zero(t, n, "nothing ran")
}

// GET is for queries: a mutation is 405 with Allow: POST, and writes nothing.
func TestMutationOverGETIsRefused(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	base := "http://" + in.base
	for _, accept := range []string{mediaJSON, mediaResponse} {
		a := sendGraphQL(t, base, http.MethodGet, accept, map[string]any{
			"query": `mutation { createUser(input: {username: "by_get", email: "by_get@example.com"}) { id } }`,
		})
		assert.Equal(t, http.StatusMethodNotAllowed, a.status, a.body)
		assert.Equal(t, http.MethodPost, a.header.Get("Allow"))
		assert.Equal(t, accept, a.contentType)
		assert.Equal(t, []string{"METHOD_NOT_ALLOWED"}, a.codes())
		assert.NotContains(t, a.members, "data")
	}
	var n int
	require.NoError(t, in.db.NewRaw("SELECT count(*) FROM users WHERE username = 'by_get'").Scan(t.Context(), &n))
	assert.Zero(t, n)
}

// What is not a GraphQL request at all is 400 BAD_REQUEST, in the media type accepted.
func TestMalformedRequestsBySpec(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	base := "http://" + in.base
	for _, accept := range []string{mediaJSON, mediaResponse} {
		for name, body := range map[string]string{
			"not JSON":             `{"query": `,
			"no query":             `{"qeury": "{ me { id } }"}`,
			"query not a string":   `{"query": 5}`,
			"variables not a map":  `{"query": "{ me { id } }", "variables": [7]}`,
			"extensions a string":  `{"query": "{ me { id } }", "extensions": "x"}`,
			"operationName a list": `{"query": "{ me { id } }", "operationName": ["x"]}`,
		} {
			t.Run(accept+" "+name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				a := doGraphQL(t, req, accept)
				assert.Equal(t, http.StatusBadRequest, a.status, a.body)
				assert.Equal(t, accept, a.contentType)
				assert.Equal(t, []string{"BAD_REQUEST"}, a.codes(), a.body)
				assert.NotContains(t, a.members, "data")
			})
		}
		t.Run(accept+" GET variables not JSON", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+"/query?query=%7B+me+%7B+id+%7D+%7D&variables=%7Bx", nil)
			a := doGraphQL(t, req, accept)
			assert.Equal(t, http.StatusBadRequest, a.status, a.body)
			assert.Equal(t, accept, a.contentType)
			assert.Equal(t, []string{"BAD_REQUEST"}, a.codes(), a.body)
		})
	}
}

// A method /query does not serve (PUT, PATCH, DELETE) is 405 with Allow: GET, POST, as a GraphQL
// error in the media type accepted (it was 400 "transport not supported", in text/plain).
func TestOtherMethodsAreNotAllowed(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, accept := range []string{mediaJSON, mediaResponse} {
			a := sendGraphQL(t, "http://"+in.base, method, accept, map[string]any{"query": `{ me { id } }`})
			assert.Equal(t, http.StatusMethodNotAllowed, a.status, "%s %s", method, a.body)
			assert.Equal(t, "GET, POST", a.header.Get("Allow"), method)
			assert.Equal(t, accept, a.contentType, method)
			assert.Equal(t, []string{"METHOD_NOT_ALLOWED"}, a.codes(), method)
		}
	}
}

// A request sent for incremental delivery (@defer, multipart/mixed) that is refused before it
// runs is answered as a POST would be, in the first JSON media type it accepts: what Apollo
// Client sends gets 400 under application/graphql-response+json, with no "data" (gqlgen's
// multipart transport answered 422 application/json with "data": null whatever the Accept).
func TestDeferRequestErrorsBySpec(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	for accept, want := range map[string]struct {
		status int
		media  string
	}{
		"multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json;q=0.9": {http.StatusBadRequest, mediaResponse},
		"multipart/mixed;deferSpec=20220824,application/json":                                         {http.StatusOK, mediaJSON},
	} {
		for name, query := range map[string]string{
			"parse":      `{ users(limit: 1) { id ... @defer { email } }`,
			"validation": `{ users(limit: 1) { id ... @defer { nickname } } }`,
		} {
			b, _ := json.Marshal(map[string]any{"query": query})
			req, _ := http.NewRequest(http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
			a := doGraphQL(t, req, accept)
			assert.Equal(t, want.status, a.status, "%s %s: %s", accept, name, a.body)
			assert.Equal(t, want.media, a.contentType, "%s %s", accept, name)
			assert.NotContains(t, a.members, "data", "%s %s", accept, name)
			assert.Len(t, a.codes(), 1, "%s %s: %s", accept, name, a.body)
		}
	}
}
