package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// maxErrorAnswer bounds what any request that fails may be answered, whatever it sent.
const maxErrorAnswer = 4 << 10

var codeRE = regexp.MustCompile(`"code":"([A-Z_]+)"`)

// codes returns the extensions.code values of an answer in order (JSON, SSE or multipart).
func codes(body []byte) []string {
	var out []string
	for _, m := range codeRE.FindAllSubmatch(body, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// Errors never echo large input: each answer is a few KB at most, with a stable code, whatever
// the request quoted (a body that is not a GraphQL request, names, values, operation names), and
// a response carries the first errors only, then one that counts the rest.
func TestErrorAnswersAreBounded(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	big := strings.Repeat("x", 200<<10)
	// 1 MB of batched operations, under the 1 MiB body limit.
	batch := []byte("[")
	for len(batch) < 1000<<10 {
		batch = append(batch, `{"query":"{ __typename }"},`...)
	}
	batch = append(batch[:len(batch)-1], ']')
	// Unknown directives: one validation error each. 13 KB of them (the attack) are over
	// the field limit, which counts directives, and refused before validation; 300 are within it
	// and make 300 errors.
	unknown := func(n int) string {
		var b strings.Builder
		b.WriteString("{ __typename")
		for i := range n {
			b.WriteString(" @d" + strconv.Itoa(i))
		}
		return b.String() + " }"
	}
	var directives strings.Builder
	directives.WriteString(unknown(300))
	var manyDirectives strings.Builder
	for i := 300; manyDirectives.Len() < 13<<10; i += 300 {
		manyDirectives.Reset()
		manyDirectives.WriteString(unknown(i))
	}
	// 100 aliased fields that each fail when they run.
	var failing strings.Builder
	failing.WriteString("{")
	for i := range 100 {
		failing.WriteString(" a" + strconv.Itoa(i) + `: user(id: "not-an-id") { id }`)
	}
	failing.WriteString(" }")
	gql := func(query string, vars map[string]any, more ...string) []byte {
		m := map[string]any{"query": query, "variables": vars}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name   string
		accept string // selects the transport: plain POST, SSE, multipart/mixed
		body   []byte
		code   string // the first error's
		last   string // the last error's, when another
	}{
		{name: "batch array", body: batch, code: "BATCH_NOT_SUPPORTED"},
		{name: "batch array over SSE", accept: "text/event-stream", body: batch, code: "BATCH_NOT_SUPPORTED"},
		{name: "batch array over multipart/mixed", accept: "multipart/mixed;deferSpec=20220824", body: batch, code: "BATCH_NOT_SUPPORTED"},
		{name: "empty array", body: []byte(" [] "), code: "BATCH_NOT_SUPPORTED"},
		{name: "truncated JSON", body: []byte(`{"query":"{ __typename }","pad":"` + big), code: "BAD_REQUEST"},
		{name: "truncated JSON over SSE", accept: "text/event-stream", body: []byte(`{"query":"{ __typename }","pad":"` + big), code: "BAD_REQUEST"},
		{name: "query not a string", body: []byte(`{"pad":"` + big + `","query":5}`), code: "BAD_REQUEST"},
		{name: "variables not an object", body: []byte(`{"query":"{ __typename }","variables":["` + big + `"]}`), code: "BAD_REQUEST"},
		{name: "a string", body: []byte(`"` + big + `"`), code: "BAD_REQUEST"},
		{name: "unknown directives", body: gql(directives.String(), nil), code: "GRAPHQL_VALIDATION_FAILED", last: "TOO_MANY_ERRORS"},
		{name: "13 KB of unknown directives", body: gql(manyDirectives.String(), nil), code: "TOO_MANY_FIELDS"},
		{name: "unknown directives over SSE", accept: "text/event-stream", body: gql(directives.String(), nil), code: "GRAPHQL_VALIDATION_FAILED", last: "TOO_MANY_ERRORS"},
		{name: "long field name", body: gql("{ "+big+" }", nil), code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "long argument name", body: gql(`{ user(`+big+`: "1") { id } }`, nil), code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "long enum value", body: gql(`{ users(orderBy: {field: `+strings.ToUpper(big)+`}) { id } }`, nil), code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "long operation name", body: gql("{ __typename }", nil, "operationName", big), code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "long id argument", body: gql(`{ user(id: "`+big+`") { id } }`, nil), code: "BAD_USER_INPUT"},
		{name: "long variable of the wrong type", body: gql(`query($n: Int) { users(limit: $n) { id } }`, map[string]any{"n": big}), code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "long unknown variable field", body: gql(`query($f: UserFilter) { users(filter: $f) { id } }`, map[string]any{"f": map[string]any{big: 1}}), code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "100 failing fields", body: gql(failing.String(), nil), code: "BAD_USER_INPUT", last: "TOO_MANY_ERRORS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, "http://"+in.base+"/query", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			require.NoError(t, err)
			assert.Less(t, resp.StatusCode, 500)
			assert.Less(t, len(body), maxErrorAnswer, "%d bytes answered to %d: %.300s", len(body), len(tc.body), body)
			got := codes(body)
			require.NotEmpty(t, got, "%.300s", body)
			assert.Equal(t, tc.code, got[0], "%.300s", body)
			if tc.last != "" {
				assert.Equal(t, tc.last, got[len(got)-1], "%.300s", body)
			}
		})
	}
	t.Run("GET with a long field name", func(t *testing.T) {
		resp, err := http.Get("http://" + in.base + "/query?query=" + url.QueryEscape("{ "+big[:100<<10]+" }"))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		assert.Less(t, len(body), maxErrorAnswer, "%d bytes: %.300s", len(body), body)
		assert.Equal(t, []string{"GRAPHQL_VALIDATION_FAILED"}, codes(body))
	})
	t.Run("websocket", func(t *testing.T) {
		c, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		for i, query := range []string{"subscription { " + big[:20<<10] + " }", strings.Replace(directives.String(), "{ __typename", "subscription { userChanged", 1)} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			require.NoError(t, wsjson.Write(ctx, c.conn, map[string]any{"id": strconv.Itoa(i), "type": "subscribe", "payload": map[string]any{"query": query}}))
			cancel()
			msg := c.read(5 * time.Second)
			for msg["type"] == "complete" { // of the subscription before
				msg = c.read(5 * time.Second)
			}
			require.Equal(t, "error", msg["type"], "%v", msg)
			b, _ := json.Marshal(msg)
			assert.Less(t, len(b), maxErrorAnswer, "%d bytes: %.300s", len(b), b)
			assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", codes(b)[0])
		}
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
	})

	// A request that succeeds is answered whole.
	resp, err := http.Post("http://"+in.base+"/query", "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"data":{"__typename":"Query"}}`, string(body))
}
