package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The POST transport writes a response as gqlgen's own (json.Marshal) would, byte for byte, but
// for one that never executed (errors, no data), which has no "data" member at all.
func TestWriteResponseAsJSONMarshal(t *testing.T) {
	yes := true
	for name, resp := range map[string]*graphql.Response{
		"data":               {Data: json.RawMessage(`{"user":{"id":"1","username":"ada"}}`)},
		"no data":            {},
		"null data":          {Data: json.RawMessage(`null`)},
		"html and unicode":   {Data: json.RawMessage(`{"t":"<b>&amp;</b> é \\u003c"}`)},
		"line separators":    {Data: json.RawMessage("{\"t\":\"a\u2028b\u2029c\"}")},
		"errors and data":    {Data: json.RawMessage(`{"a":null}`), Errors: gqlerror.List{{Message: "bad <input>", Path: ast.Path{ast.PathName("a"), ast.PathIndex(0)}, Extensions: map[string]any{"code": "BAD_USER_INPUT"}}}},
		"errors only":        {Errors: gqlerror.List{{Message: "x", Locations: []gqlerror.Location{{Line: 1, Column: 2}}}}},
		"errors, extensions": {Errors: gqlerror.List{{Message: "x"}}, Extensions: map[string]any{"k": 1}},
		"incremental part":   {Data: json.RawMessage(`{"owner":{"id":"2"}}`), Label: "o", Path: ast.Path{ast.PathName("items"), ast.PathIndex(3)}, HasNext: &yes},
		"extensions":         {Data: json.RawMessage(`{}`), Extensions: map[string]any{"retryAfter": 2, "z": "<"}},
		"empty errors list":  {Data: json.RawMessage(`{}`), Errors: gqlerror.List{}},
		"nil":                nil,
	} {
		t.Run(name, func(t *testing.T) {
			if name == "nil" {
				resp = nil
			}
			want, err := json.Marshal(resp)
			require.NoError(t, err)
			if resp != nil && len(resp.Errors) > 0 && resp.Data == nil {
				want = bytes.Replace(want, []byte(`,"data":null`), nil, 1)
			}
			var got bytes.Buffer
			writeResponse(&got, resp)
			assert.Equal(t, string(want), got.String())
		})
	}
}

// An answer goes out with its length, however long: not chunked.
func TestPostAnswerHasItsLength(t *testing.T) {
	for _, size := range []int{10, 5_000, 100_000} {
		data := json.RawMessage(`{"t":"` + strings.Repeat("x", size) + `"}`)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeResponse(w, &graphql.Response{Data: data})
		}))
		resp, err := http.Get(srv.URL)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_ = resp.Body.Close()
		srv.Close()
		assert.Empty(t, resp.TransferEncoding, "size %d", size)
		assert.Equal(t, int64(len(body)), resp.ContentLength, "size %d", size)
		assert.JSONEq(t, `{"data":`+string(data)+`}`, string(body))
	}
}
