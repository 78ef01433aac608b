package httpserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// Hostile input gets a clear error (never a 5xx or INTERNAL_SERVER_ERROR) and the server stays
// healthy. (Depth, aliases, tokens and body size are in guard_test.go.)
func TestHostileInput(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	owner := in.createUser(t, fmt.Sprintf("hostile_%d", time.Now().UnixNano()%1e9))
	post := func(t *testing.T, contentType string, body []byte) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+in.base+"/query", contentType, bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	clear := func(t *testing.T, status int, body string) {
		t.Helper()
		assert.Less(t, status, 500, body)
		assert.NotContains(t, body, "INTERNAL_SERVER_ERROR")
		assert.NotContains(t, strings.ToLower(body), "sqlstate")
		assert.NotContains(t, body, "pgdriver")
	}

	t.Run("content types", func(t *testing.T) {
		query := []byte(`{"query":"{ users(limit: 1) { id } }"}`)
		for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "", "application/jsonx"} {
			status, body := post(t, ct, query)
			clear(t, status, body)
			assert.Equal(t, http.StatusUnsupportedMediaType, status, ct)
			assert.Contains(t, body, `"code":"UNSUPPORTED_MEDIA_TYPE"`, ct)
		}
		status, body := post(t, "application/json; charset=utf-8", query)
		assert.Equal(t, http.StatusOK, status, body)
	})
	t.Run("10 MB body", func(t *testing.T) {
		status, body := post(t, "application/json", bytes.Repeat([]byte("a"), 10<<20))
		assert.Equal(t, http.StatusRequestEntityTooLarge, status)
		clear(t, status, body)
	})
	t.Run("huge variable lists", func(t *testing.T) {
		ids := make([]string, 60000)
		for i := range ids {
			ids[i] = fmt.Sprint(i)
		}
		b, _ := json.Marshal(map[string]any{"query": `query($id: ID!) { user(id: $id) { id } }`, "variables": map[string]any{"id": ids}})
		status, body := post(t, "application/json", b)
		clear(t, status, body)
		b, _ = json.Marshal(map[string]any{"query": `{ users(limit: 1) { id } }`, "variables": map[string]any{"unused": ids[:20000]}})
		status, body = post(t, "application/json", b)
		clear(t, status, body)
	})
	t.Run("metacharacters and NUL in every string argument", func(t *testing.T) {
		values := []string{"'; DROP TABLE users; --", "' OR '1'='1", `\"; SELECT pg_sleep(10); --`, "%_\\", "a\x00b", "\x00",
			"\u202eevil", "😀", strings.Repeat("x", 100000), "$1", "?", "::text", "/* */", "\\x00"}
		ops := []string{
			`query($v: String!) { userByUsername(username: $v) { id } }`,
			`mutation($v: String!) { createUser(input: {username: $v, email: "meta@x.example"}) { id } }`,
			`mutation($v: String!) { createUser(input: {username: "meta_user", email: $v}) { id } }`,
			`mutation($v: String!, $o: ID!) { createItem(input: {ownerId: $o, title: $v}) { id } }`,
			`mutation($v: String!, $o: ID!) { createItem(input: {ownerId: $o, title: "t", description: $v}) { id } }`,
			`mutation($v: String!, $o: ID!) { updateUser(id: $o, input: {username: $v}) { id } }`,
			`mutation($v: String!, $o: ID!) { updateUser(id: $o, input: {email: $v}) { id } }`,
			`query($v: String!) { usersConnection(filter: {usernamePrefix: $v}) { totalCount } }`,
			`query($v: String!) { usersConnection(filter: {emailDomain: $v}) { totalCount } }`,
			`query($v: String!) { itemsConnection(filter: {titleContains: $v}) { totalCount } }`,
			`query($v: String!) { usersConnection(after: $v) { totalCount } }`,
			`query($v: String!) { itemsConnection(last: 2, before: $v) { totalCount } }`,
			`query($v: String!) { user(id: $v) { id } }`,
			`query($v: String!) { usersConnection(filter: {createdAfter: $v}) { totalCount } }`,
		}
		for _, op := range ops {
			for _, v := range values {
				b, _ := json.Marshal(map[string]any{"query": op, "variables": map[string]any{"v": v, "o": owner}})
				status, body := post(t, "application/json", b)
				clear(t, status, body)
			}
		}
	})
	t.Run("ids out of range", func(t *testing.T) {
		for _, id := range []string{"9223372036854775808", "-9223372036854775809", "1e3", "0x10", " 1", "", "1.0", "NaN"} {
			b, _ := json.Marshal(map[string]any{"query": `query($id: ID!) { user(id: $id) { id } }`, "variables": map[string]any{"id": id}})
			status, body := post(t, "application/json", b)
			clear(t, status, body)
			assert.Contains(t, body, "BAD_USER_INPUT", id)
		}
		status, body := post(t, "application/json", []byte(`{"query":"{ users(limit: 99999999999) { id } }"}`))
		clear(t, status, body)
	})

	// Still healthy, and the tables are intact.
	resp, err := http.Get("http://" + in.base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	status, body := post(t, "application/json", []byte(`{"query":"{ users(limit: 1) { id } items(limit: 1) { id } }"}`))
	assert.Equal(t, http.StatusOK, status)
	assert.NotContains(t, body, "errors")
}
