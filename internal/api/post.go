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
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/graph"
)

// post is gqlgen's POST transport (transport.POST of v0.17.98: the same requests, statuses,
// headers and bodies) with one change: the response is written around its data rather than
// through json.Marshal, which scans and compacts the data, already compact JSON, once more (6.5%
// of the server's CPU on a nested page of 20 users and 100 items).
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

const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// Do implements graphql.Transport.
func (post) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	contentType := responseContentType(r)
	w.Header().Add("Content-Type", contentType)
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

	rc, opErr := exec.CreateOperationContext(ctx, &params)
	if opErr != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(opErr) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity
			if contentType == mediaGraphQLResponse {
				status = http.StatusBadRequest
			}
		}
		w.WriteHeader(status)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	resp := responses(ctx)
	writeResponse(w, resp)
	if resp != nil {
		graph.ReleaseData(rc, resp.Data) // written whole: its buffer serves the next answer
	}
}

// responseContentType is the media type of the answer, as gqlgen's POST chooses it from Accept.
func responseContentType(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", mediaJSON:
			return mediaJSON
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		}
	}
	return mediaGraphQLResponse
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
	buf.WriteString(`"data":`)
	switch {
	case len(resp.Data) == 0:
		buf.WriteString("null")
	case needsEscape(resp.Data):
		json.HTMLEscape(buf, resp.Data)
	default:
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
