package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/media"
)

// post is gqlgen's POST transport (transport.POST of v0.17.98: the same requests) with the
// statuses, media types and bodies of the GraphQL over HTTP specification (see run), and its
// response written around its data rather than through json.Marshal, which scans and compacts
// the data, already compact JSON, once more (6.5% of the server's CPU on a nested page of 20
// users and 100 items).
type post struct{}

var _ graphql.Transport = post{}

// Supports implements graphql.Transport: a POST of application/json, not an upgrade.
func (post) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	return r.Method == http.MethodPost && mediaType == "application/json"
}

// Do implements graphql.Transport.
func (post) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	answer, ok := media.Negotiate(r.Header.Get("Accept"))
	if !ok {
		notAcceptable(w)
		return
	}
	w.Header().Set("Content-Type", media.ContentType(answer))
	start := graphql.Now()

	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("could not read request body: %+v", err)}))
		return
	}
	var params graphql.RawParams
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		gqlErr := gqlerror.Errorf("%s%+v body:%s", undecodedBody, err, string(body))
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlErr}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	run(w, r, exec, &params, answer)
}

// run validates and executes one operation, as POST and GET carry it, and answers it in media
// type answer. A request refused before it executed (it did not parse or validate, its variables
// did not coerce, a limit refused it) is answered without "data", as the GraphQL specification
// asks of a request error: with 200 under application/json, whose non-2xx answers a client
// cannot tell from a proxy's, and with a 4xx (or 5xx) under application/graphql-response+json,
// where a 2xx says the operation executed. Once it executed, the answer has "data" (null when a
// non-null root field failed) and 200 under either.
func run(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, answer string) {
	ctx := r.Context()
	rc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil && params.Query == "" && errcode.GetErrorKind(opErr) == errcode.KindProtocol &&
		opErr[0].Message == noOperation {
		// No document at all (nor one persisted under a hash): not a GraphQL request.
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{{
			Message:    `the request has no "query": send the document's text in it`,
			Extensions: map[string]any{"code": "BAD_REQUEST"},
		}}))
		return
	}
	if opErr != nil {
		w.WriteHeader(refusedStatus(answer, opErr))
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	if r.Method == http.MethodGet && rc.Operation.Operation == ast.Mutation {
		// GET is safe: a link, a prefetch or a cross-site <img> must not write.
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), gqlerror.List{{
			Message:    "a mutation cannot be sent with GET: POST it",
			Extensions: map[string]any{"code": methodNotAllowed},
		}}))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	resp := responses(ctx)
	if resp != nil && len(resp.Data) == 0 && len(resp.Errors) > 0 {
		// Refused before it executed, by an operation middleware (a subscription without a
		// stream, a client over its budget, no turn within the deadline).
		w.WriteHeader(refusedStatus(answer, resp.Errors))
	}
	writeResponse(w, resp)
	if resp != nil {
		graph.ReleaseData(rc, resp.Data) // written whole: its buffer serves the next answer
	}
}

// noOperation is gqlgen's message for a request without a document.
const noOperation = "no operation provided"

// methodNotAllowed is the code of a mutation sent with GET, and of a method /query does not serve.
const methodNotAllowed = "METHOD_NOT_ALLOWED"

// refusedStatus is the status of an answer without data, by its first error's code: 200 under
// application/json (a client over its budget gets 429 all the same, through clients.SetHint);
// under application/graphql-response+json 400 for what the client must change, 429 for a client
// over its budget, 503 for a server too busy or a database unavailable, 500 for a fault of its
// own.
func refusedStatus(answer string, errs gqlerror.List) int {
	if answer != media.GraphQLResponse {
		return http.StatusOK
	}
	switch code, _ := errs[0].Extensions["code"].(string); code {
	case rateLimited:
		return http.StatusTooManyRequests
	case string(apperr.Timeout), string(apperr.Unavailable):
		return http.StatusServiceUnavailable
	case string(apperr.Internal):
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// notAcceptable answers a request whose Accept header names neither media type of an answer.
func notAcceptable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", media.ContentType(media.JSON))
	w.WriteHeader(http.StatusNotAcceptable)
	_, _ = io.WriteString(w, `{"errors":[{"message":"the Accept header names no media type this server answers in: accept `+
		`application/graphql-response+json or application/json","extensions":{"code":"NOT_ACCEPTABLE"}}]}`)
}

// writeResponse writes resp as json.Marshal would, byte for byte: the members in the order of
// graphql.Response's fields, the data as it is (gqlgen's marshallers write compact JSON) but with
// <, >, & and the line separators escaped, as json.Marshal escapes them.
func writeResponse(w io.Writer, resp *graphql.Response) {
	if resp == nil {
		_, _ = io.WriteString(w, "null") // as json.Marshal writes a nil response
		return
	}
	buf := answers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledAnswer {
			buf.Reset()
			answers.Put(buf)
		}
	}()
	buf.Grow(len(resp.Data) + 64)
	buf.WriteByte('{')
	if len(resp.Errors) > 0 {
		member(buf, "errors", resp.Errors)
		buf.WriteByte(',')
	}
	switch {
	case len(resp.Data) == 0 && len(resp.Errors) > 0:
		// Not executed: no "data" at all (a request error, in the GraphQL specification's
		// words). One that executed has data, "null" if a non-null root field failed.
		buf.Truncate(buf.Len() - 1) // the comma after the errors
	case len(resp.Data) == 0:
		buf.WriteString(`"data":null`)
	case needsEscape(resp.Data):
		buf.WriteString(`"data":`)
		json.HTMLEscape(buf, resp.Data)
	default:
		buf.WriteString(`"data":`)
		buf.Write(resp.Data)
	}
	if resp.Label != "" {
		buf.WriteByte(',')
		member(buf, "label", resp.Label)
	}
	if len(resp.Path) > 0 {
		buf.WriteByte(',')
		member(buf, "path", resp.Path)
	}
	if resp.HasNext != nil {
		buf.WriteByte(',')
		member(buf, "hasNext", *resp.HasNext)
	}
	if len(resp.Extensions) > 0 {
		buf.WriteByte(',')
		member(buf, "extensions", resp.Extensions)
	}
	buf.WriteByte('}')
	if rw, ok := w.(http.ResponseWriter); ok {
		// Its length, known here: net/http would otherwise chunk an answer over 2 KB (a nested
		// page), one more write to the socket and a chunk header formatted for each write.
		// (No effect after WriteHeader: those answers are errors, short enough to get one anyway.)
		rw.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	}
	_, _ = w.Write(buf.Bytes())
}

// answers are the buffers POST answers are written in: an answer is written whole (its length
// first), then the buffer is free: net/http and the middleware copy what they keep.
var answers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledAnswer bounds the buffers kept for the next answers.
const maxPooledAnswer = 256 << 10

func member(buf *bytes.Buffer, name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Errorf("unable to marshal %s: %w", name, err)) // as gqlgen's writeJson
	}
	buf.WriteString(`"` + name + `":`)
	buf.Write(b)
}

// needsEscape reports whether data holds what json.Marshal escapes in a string: <, > and &, or
// the line separators U+2028 and U+2029. (bytes.ContainsAny with the two separators in its set
// decodes every rune: 3.4% of the CPU of a nested page; bytes.IndexAny tests a byte at a time;
// each search here is a vectorised scan.)
func needsEscape(data []byte) bool {
	return bytes.IndexByte(data, '<') >= 0 || bytes.IndexByte(data, '>') >= 0 || bytes.IndexByte(data, '&') >= 0 ||
		bytes.Contains(data, lineSeparator) || bytes.Contains(data, paragraphSeparator)
}

var lineSeparator, paragraphSeparator = []byte("\u2028"), []byte("\u2029")

// otherMethods is the last transport: a request no other one takes. A method /query does not
// serve is 405 with Allow (gqlgen alone answers 400 "transport not supported" in text/plain); a
// GET or POST no transport took is not a GraphQL request: 400.
type otherMethods struct{}

func (otherMethods) Supports(*http.Request) bool { return true }

func (otherMethods) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	answer, ok := media.Negotiate(r.Header.Get("Accept"))
	if !ok {
		answer = media.JSON
	}
	w.Header().Set("Content-Type", media.ContentType(answer))
	status, code, message := http.StatusBadRequest, "BAD_REQUEST", "not a GraphQL request: POST a JSON object {\"query\": \"...\"} as application/json, or GET a query"
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		status, code, message = http.StatusMethodNotAllowed, methodNotAllowed, "/query serves GET and POST, not "+r.Method
	}
	w.WriteHeader(status)
	writeResponse(w, exec.DispatchError(r.Context(), gqlerror.List{{Message: message, Extensions: map[string]any{"code": code}}}))
}

// multipartRefusals answers a request gqlgen's multipart/mixed transport (@defer) refuses before
// it runs as POST answers one (see run): gqlgen writes 422 and "data": null whatever the Accept.
// Apollo Client asks for multipart/mixed, application/graphql-response+json and
// application/json: such a refusal is a single JSON answer in the first of those two it accepts.
type multipartRefusals struct{ graphql.Transport }

func (t multipartRefusals) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	c := &refusalCatcher{ResponseWriter: w}
	t.Transport.Do(c, r, exec)
	if !c.caught {
		return
	}
	var refused struct{ Errors gqlerror.List }
	if json.Unmarshal(c.body.Bytes(), &refused) != nil || len(refused.Errors) == 0 {
		w.WriteHeader(c.status) // not a refusal of ours to rewrite: as gqlgen wrote it
		_, _ = w.Write(c.body.Bytes())
		return
	}
	answer, ok := media.Negotiate(r.Header.Get("Accept"))
	if !ok {
		answer = media.JSON
	}
	w.Header().Set("Content-Type", media.ContentType(answer))
	w.WriteHeader(refusedStatus(answer, refused.Errors))
	writeResponse(w, &graphql.Response{Errors: refused.Errors})
}

// refusalCatcher holds back an answer written with an error status while the Content-Type is
// still JSON (gqlgen's multipart transport sets multipart/mixed before it streams).
type refusalCatcher struct {
	http.ResponseWriter
	caught bool
	status int
	body   bytes.Buffer
}

func (c *refusalCatcher) WriteHeader(status int) {
	if status >= http.StatusBadRequest && strings.HasPrefix(c.Header().Get("Content-Type"), media.JSON) {
		c.caught, c.status = true, status
		return
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *refusalCatcher) Write(b []byte) (int, error) {
	if c.caught {
		return c.body.Write(b)
	}
	return c.ResponseWriter.Write(b)
}

func (c *refusalCatcher) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok && !c.caught {
		f.Flush()
	}
}
