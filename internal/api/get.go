package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/internal/jsontext"
	"github.com/wikigraph/wikigraph/internal/media"
)

// get is the GET transport: the parameters in the URL's query (query, operationName, and
// variables and extensions as JSON), queries only (a mutation is 405), answered as POST answers
// (run). gqlgen's transport.GET answered its own refusals without a code, a mutation with 406,
// and let bytes that are not UTF-8 through as U+FFFD.
type get struct{}

var _ graphql.Transport = get{}

// Supports implements graphql.Transport: a GET, not an upgrade.
func (get) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get("Upgrade") == ""
}

// Do implements graphql.Transport.
func (get) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	answer, ok := media.Negotiate(r.Header.Get("Accept"))
	if !ok {
		notAcceptable(w)
		return
	}
	w.Header().Set("Content-Type", media.ContentType(answer))
	start := graphql.Now()
	refuse := func(format string, args ...any) {
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{{
			Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": "BAD_REQUEST"},
		}}))
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		refuse("the URL's query is malformed: %v", err)
		return
	}
	for name, values := range query {
		valid := utf8.ValidString(name)
		for _, v := range values {
			valid = valid && utf8.ValidString(v)
		}
		if !valid {
			refuse("the URL's query is not valid UTF-8 (in the %s parameter): percent-encode the text in UTF-8", shortName(name))
			return
		}
	}
	params := &graphql.RawParams{
		Query:         query.Get("query"),
		OperationName: query.Get("operationName"),
		Headers:       r.Header,
	}
	for name, into := range map[string]*map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if v := query.Get(name); v != "" {
			if jsontext.LoneSurrogate([]byte(v)) >= 0 {
				refuse("the %s parameter holds half of a UTF-16 surrogate pair (a \\u escape from D800 to DFFF without its other half): send the character itself, or both halves", name)
				return
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(v)))
			dec.UseNumber()
			if err := dec.Decode(into); err != nil {
				refuse("the %q parameter must be a JSON object", name)
				return
			}
		}
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	run(w, r, exec, params, answer)
}

// shortName is a parameter's name as an error may quote it.
func shortName(name string) string {
	if len(name) > 40 || !utf8.ValidString(name) {
		return "named"
	}
	return strconv.Quote(name)
}
