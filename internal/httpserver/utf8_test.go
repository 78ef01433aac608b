package httpserver_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// A request that is not UTF-8 is refused (400 BAD_REQUEST, saying so) and nothing is stored:
// Go's JSON decoder would turn each stray byte into U+FFFD, and the user would be stored with an
// email other than the one sent.
func TestInvalidUTF8IsRefused(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	base := "http://" + in.base
	users := func() int {
		var n int
		require.NoError(t, in.db.NewRaw("SELECT count(*) FROM users WHERE username LIKE 'utf8_%'").Scan(t.Context(), &n))
		return n
	}
	post := func(t *testing.T, accept, body string) httpAnswer {
		req, _ := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return doGraphQL(t, req, accept)
	}
	const mutation = `mutation($in: NewUser!) { createUser(input: $in) { email } }`
	for _, accept := range []string{mediaJSON, mediaResponse} {
		for name, body := range map[string]string{
			"0xFF in an email in the variables": `{"query":"` + mutation + `","variables":{"in":{"username":"utf8_a","email":"a\xffb@example.com"}}}`,
			"0xFF in the query text":            `{"query":"mutation { createUser(input: {username: \"utf8_b\", email: \"b\xff@example.com\"}) { email } }"}`,
			"a truncated sequence":              `{"query":"` + mutation + `","variables":{"in":{"username":"utf8_c\xc3","email":"c@example.com"}}}`,
			"an encoded surrogate":              `{"query":"` + mutation + `","variables":{"in":{"username":"utf8_d","email":"d\xed\xa0\x80@example.com"}}}`,
		} {
			t.Run(accept+" POST "+name, func(t *testing.T) {
				a := post(t, accept, rawBytes(body))
				assert.Equal(t, http.StatusBadRequest, a.status, a.body)
				assert.Equal(t, accept, a.contentType)
				assert.Equal(t, []string{"BAD_REQUEST"}, a.codes(), a.body)
				assert.Contains(t, a.body, "not valid UTF-8")
				assert.NotContains(t, a.members, "data")
			})
		}
		// Valid UTF-8 that decodes to U+FFFD all the same: an escape of half a surrogate pair.
		for name, body := range map[string]string{
			"a low half in the variables":        `{"query":"` + mutation + `","variables":{"in":{"username":"utf8_e","email":"e\udfffb@example.com"}}}`,
			"a high half in the variables":       `{"query":"` + mutation + `","variables":{"in":{"username":"utf8_f","email":"f\uD800@example.com"}}}`,
			"a high half then not a low half":    `{"query":"` + mutation + `","variables":{"in":{"username":"utf8_g","email":"g\ud800\u0041@example.com"}}}`,
			"a low half in the operation's name": `{"query":"` + mutation + `","operationName":"\udc00","variables":{"in":{"username":"utf8_h","email":"h@example.com"}}}`,
		} {
			t.Run(accept+" POST "+name, func(t *testing.T) {
				a := post(t, accept, body)
				assert.Equal(t, http.StatusBadRequest, a.status, a.body)
				assert.Equal(t, []string{"BAD_REQUEST"}, a.codes(), a.body)
				assert.Contains(t, a.body, "surrogate")
			})
		}
		t.Run(accept+" POST a low half in a string of the document", func(t *testing.T) {
			// A syntax error by the GraphQL specification; the parser alone decodes U+FFFD.
			a := post(t, accept, `{"query":"mutation { createUser(input: {username: \"utf8_i\", email: \"i\\udfff@example.com\"}) { email } }"}`)
			assert.Equal(t, []string{"GRAPHQL_PARSE_FAILED"}, a.codes(), a.body)
			assert.Contains(t, a.body, "surrogate")
			assert.NotContains(t, a.members, "data")
		})
		t.Run(accept+" GET a low half in the variables", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+"/query?query=query(%24u:+String!)+%7B+userByUsername(username:+%24u)+%7B+id+%7D+%7D&variables=%7B%22u%22:%22a%5Cudfff%22%7D", nil)
			a := doGraphQL(t, req, accept)
			assert.Equal(t, http.StatusBadRequest, a.status, a.body)
			assert.Equal(t, []string{"BAD_REQUEST"}, a.codes(), a.body)
			assert.Contains(t, a.body, "surrogate")
		})
		for name, query := range map[string]string{
			"0xFF in the query text": "query=%7B+userByUsername(username:+%22utf8_%FF%22)+%7B+id+%7D+%7D",
			"0xFF in the variables":  "query=query(%24u:+String!)+%7B+userByUsername(username:+%24u)+%7B+id+%7D+%7D&variables=%7B%22u%22:%22a%FF%22%7D",
		} {
			t.Run(accept+" GET "+name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, base+"/query?"+query, nil)
				a := doGraphQL(t, req, accept)
				assert.Equal(t, http.StatusBadRequest, a.status, a.body)
				assert.Equal(t, accept, a.contentType)
				assert.Equal(t, []string{"BAD_REQUEST"}, a.codes(), a.body)
				assert.Contains(t, a.body, "not valid UTF-8")
			})
		}
	}
	assert.Zero(t, users(), "nothing stored")

	// UTF-8 beyond ASCII goes through as it was sent, escaped or not (a whole pair is one
	// character).
	a := post(t, mediaJSON, `{"query":"`+mutation+`","variables":{"in":{"username":"utf8_ok","email":"zoë🏃\ud83c\udfc3@example.com"}}}`)
	assert.Equal(t, http.StatusOK, a.status, a.body)
	assert.JSONEq(t, `{"createUser":{"email":"zoë🏃🏃@example.com"}}`, string(a.members["data"]))
	var email string
	require.NoError(t, in.db.NewRaw("SELECT email FROM users WHERE username = 'utf8_ok'").Scan(t.Context(), &email))
	assert.Equal(t, "zoë🏃🏃@example.com", email)
}

// Over a websocket, a message that is not UTF-8 closes the connection with 1007 (RFC 6455) and
// runs nothing.
func TestInvalidUTF8OverWebsocket(t *testing.T) {
	in := startInstance(t, dbtest.URL(t))
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			c, err := dial(t, in, proto, "")
			require.NoError(t, err)
			typ := "subscribe"
			if proto == "graphql-ws" {
				typ = "start"
			}
			msg := `{"id":"1","type":"` + typ + `","payload":{"query":"mutation { createUser(input: {username: \"utf8_ws\", email: \"ws\xff@example.com\"}) { id } }"}}`
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, c.conn.Write(ctx, websocket.MessageText, []byte(rawBytes(msg))))
			code, reason := c.closeCode(5 * time.Second)
			assert.Equal(t, websocket.StatusInvalidFramePayloadData, code)
			assert.Contains(t, reason, "UTF-8")

			// Valid UTF-8 whose JSON escapes half a surrogate pair decodes to U+FFFD too.
			c, err = dial(t, in, proto, "")
			require.NoError(t, err)
			msg = `{"id":"1","type":"` + typ + `","payload":{"query":"mutation($e: String!) { createUser(input: {username: \"utf8_ws\", email: $e}) { id } }","variables":{"e":"w\udc00s@example.com"}}}`
			require.NoError(t, c.conn.Write(ctx, websocket.MessageText, []byte(msg)))
			code, reason = c.closeCode(5 * time.Second)
			assert.Equal(t, websocket.StatusInvalidFramePayloadData, code)
			assert.Contains(t, reason, "surrogate")
		})
	}
	var n int
	require.NoError(t, in.db.NewRaw("SELECT count(*) FROM users WHERE username = 'utf8_ws'").Scan(t.Context(), &n))
	assert.Zero(t, n)
}

// rawBytes is s with each \xHH written in it made the byte it names.
func rawBytes(s string) string {
	return hexEscape.ReplaceAllStringFunc(s, func(m string) string {
		b, _ := strconv.ParseUint(m[2:], 16, 8)
		return string([]byte{byte(b)})
	})
}

var hexEscape = regexp.MustCompile(`\\x[0-9a-fA-F]{2}`)
