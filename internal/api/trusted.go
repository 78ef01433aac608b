package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/auth"
)

// Trusted documents: a server started with a persisted-documents manifest (TRUSTED_DOCUMENTS,
// as GraphQL Code Generator's client preset writes it: a JSON object from "sha256:<hex>" to the
// document's text) runs those documents and no other. A request names one by its id:
//
//   - documentId, a request parameter beside query (GraphQL over HTTP's persisted documents):
//     in a POST's JSON body, in a GET's URL, in a websocket subscribe message's payload;
//     "sha256:<hex>" or the bare hex;
//   - extensions.persistedQuery.sha256Hash (version 1), as Apollo Client's persisted queries
//     link sends it, on any transport.
//
// A request whose text is exactly a trusted document's runs too (it is that document). Any
// other text is refused with TRUSTED_DOCUMENT_REQUIRED, an id naming no trusted document with
// TRUSTED_DOCUMENT_NOT_FOUND, both before anything is parsed. Neither is the APQ miss
// (PERSISTED_QUERY_NOT_FOUND), on which an Apollo client would send the text and be refused
// again. With trusted documents on, automatic persisted queries are off: the manifest is the
// only store of documents by hash, and nothing can be registered.
const (
	trustedDocumentRequired = "TRUSTED_DOCUMENT_REQUIRED"
	trustedDocumentNotFound = "TRUSTED_DOCUMENT_NOT_FOUND"
)

// Refused before the document is parsed: protocol errors to gqlgen, as a document that fails
// validation is (400 under application/graphql-response+json, an error message over a
// websocket).
func init() {
	errcode.RegisterErrorType(trustedDocumentRequired, errcode.KindProtocol)
	errcode.RegisterErrorType(trustedDocumentNotFound, errcode.KindProtocol)
}

// TrustedDocuments are the documents of a manifest, each parsed and validated against the schema
// once, at start.
type TrustedDocuments struct {
	// AdminBypass lets a caller with a valid admin token send any document (tooling, support).
	// No caller has one in AUTH_MODE=none.
	AdminBypass bool
	// Introspection lets anyone send a query that asks only for __schema, __type and
	// __typename (GraphiQL, code generators), within the introspection limits.
	Introspection bool

	byHash map[string]*trustedDocument // by the lowercase hex of its sha256
	byText map[string]*ast.QueryDocument
}

type trustedDocument struct {
	text string
	doc  *ast.QueryDocument
}

// Len is the number of documents.
func (t *TrustedDocuments) Len() int { return len(t.byHash) }

// LoadTrustedDocuments reads a persisted-documents manifest and checks every entry: its key is
// sha256:<64 hex digits> (or the bare hex), the sha256 of its exact text; the text parses and
// passes validation against the schema within limits, as a request's document would. The error
// names each bad entry, so a manifest the schema has moved on from stops the server at start
// rather than failing its clients later.
func LoadTrustedDocuments(path string, limits Limits) (*TrustedDocuments, error) {
	limits = limits.withDefaults()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("TRUSTED_DOCUMENTS %s: "+format, append([]any{path}, args...)...)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fail("%w", errors.Unwrap(err)) // the path is said once
	}
	var manifest map[string]string
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&manifest); err != nil || dec.More() || manifest == nil {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return nil, fail("not a persisted-documents manifest (a JSON object from document id to document text): %v", err)
	}
	if len(manifest) == 0 {
		return nil, fail("the manifest holds no document: the server would refuse every request")
	}
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	t := &TrustedDocuments{byHash: make(map[string]*trustedDocument, len(manifest)), byText: make(map[string]*ast.QueryDocument, len(manifest))}
	var problems []string
	keys := make([]string, 0, len(manifest))
	for k := range manifest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		text := manifest[key]
		doc, problem := checkTrustedDocument(schema, key, text, limits)
		if problem != "" {
			problems = append(problems, fmt.Sprintf("entry %q%s: %s", shortKey(key), operationNames(doc), problem))
			continue
		}
		hexKey := strings.ToLower(strings.TrimPrefix(key, "sha256:"))
		if d, ok := t.byText[text]; ok {
			doc = d // the same text under both forms of its id
		}
		t.byHash[hexKey] = &trustedDocument{text: text, doc: doc}
		t.byText[text] = doc
	}
	if bad := len(problems); bad > 0 {
		const most = 10
		more := ""
		if bad > most {
			more = fmt.Sprintf("; and %d more", bad-most)
			problems = problems[:most]
		}
		return nil, fail("%d of its %d documents cannot be trusted: %s%s (is the manifest generated from the current schema and operations?)",
			bad, len(keys), strings.Join(problems, "; "), more)
	}
	return t, nil
}

// checkTrustedDocument parses and validates one entry; problem is empty when it is good. doc is
// returned when the text parsed, to name its operations.
func checkTrustedDocument(schema *ast.Schema, key, text string, limits Limits) (doc *ast.QueryDocument, problem string) {
	hexKey, _ := strings.CutPrefix(key, "sha256:")
	if len(hexKey) != sha256.Size*2 || !isHex(hexKey) {
		return nil, "the key is not a sha256 id (sha256:<64 hex digits>, or the 64 hex digits): generate the manifest with hashAlgorithm sha256"
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: text}, limits.Tokens)
	if err != nil {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) {
			return nil, "the document does not parse: " + located(gqlErr)
		}
		return nil, "the document does not parse: " + err.Error()
	}
	sum := sha256.Sum256([]byte(text))
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, hexKey) {
		return doc, fmt.Sprintf("the key is not the sha256 of the document's text (that is sha256:%s)", got)
	}
	if len(doc.Operations) == 0 {
		return doc, "the document has no operation"
	}
	if errs := validator.ValidateWithRules(schema, doc, validationRules(limits)); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs[:min(len(errs), 3)] {
			msgs = append(msgs, located(e))
		}
		if len(errs) > 3 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-3))
		}
		return doc, "not valid against the schema and the query limits: " + strings.Join(msgs, ", ")
	}
	return doc, ""
}

// located is an error's message and where in the document it is.
func located(e *gqlerror.Error) string {
	if len(e.Locations) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (line %d, column %d)", e.Message, e.Locations[0].Line, e.Locations[0].Column)
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// shortKey is a manifest key as an error names it: enough of it to find.
func shortKey(k string) string {
	if len(k) <= 24 {
		return k
	}
	return k[:20] + "..."
}

// operationNames says which operations a document holds, for an error about it.
func operationNames(doc *ast.QueryDocument) string {
	if doc == nil || len(doc.Operations) == 0 {
		return ""
	}
	names := make([]string, 0, len(doc.Operations))
	for _, op := range doc.Operations {
		name := op.Name
		if name == "" {
			name = "(anonymous)"
		}
		names = append(names, string(op.Operation)+" "+name)
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// lookup returns the document an id names: sha256:<hex> or the bare hex.
func (t *TrustedDocuments) lookup(id string) *trustedDocument {
	hexID, _ := strings.CutPrefix(id, "sha256:")
	if d, ok := t.byHash[hexID]; ok {
		return d
	}
	if lower := strings.ToLower(hexID); lower != hexID {
		return t.byHash[lower]
	}
	return nil
}

// trustedOnly is the extension that puts a request's trusted document in place of its id, and
// refuses any other document (save the bypasses), before gqlgen parses anything.
type trustedOnly struct {
	docs   *TrustedDocuments
	tokens int
}

var (
	_ graphql.HandlerExtension          = trustedOnly{}
	_ graphql.OperationParameterMutator = trustedOnly{}
)

func (trustedOnly) ExtensionName() string                   { return "TrustedDocuments" }
func (trustedOnly) Validate(graphql.ExecutableSchema) error { return nil }

func (t trustedOnly) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	id, hasID := documentIDOf(ctx)
	var doc *trustedDocument
	if hasID {
		if doc = t.docs.lookup(id); doc == nil {
			return notTrusted(trustedDocumentNotFound, fmt.Sprintf("no trusted document has the documentId %q", shortKey(id)))
		}
	}
	if pq := params.Extensions["persistedQuery"]; pq != nil {
		hash, ok := persistedQueryHash(pq)
		if !ok {
			return notTrusted(trustedDocumentNotFound, "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<hex>\"}")
		}
		d := t.docs.lookup(hash)
		switch {
		case d == nil && params.Query != "" && !hasID && t.bypass(ctx, params.Query):
			return nil // its text runs; nothing is stored
		case d == nil && params.Query != "":
			return notTrusted(trustedDocumentRequired, "this server runs only its trusted documents: a persisted query cannot be registered")
		case d == nil:
			return notTrusted(trustedDocumentNotFound, fmt.Sprintf("no trusted document has the sha256Hash %q", shortKey(hash)))
		case doc != nil && d != doc:
			return notTrusted(trustedDocumentNotFound, "documentId and extensions.persistedQuery name different documents")
		}
		doc = d
	}
	if doc != nil {
		if params.Query != "" && params.Query != doc.text {
			return notTrusted(trustedDocumentRequired, "the query is not the trusted document its id names: send the id alone")
		}
		params.Query = doc.text // parsed and validated already (pinnedCache)
		return nil
	}
	if params.Query == "" {
		return nil // no document at all: gqlgen says so
	}
	if _, ok := t.docs.byText[params.Query]; ok || t.bypass(ctx, params.Query) {
		return nil
	}
	return notTrusted(trustedDocumentRequired,
		"this server runs only its trusted documents: send the document's id (documentId, or extensions.persistedQuery.sha256Hash), not its text")
}

// persistedQueryHash reads Apollo's {"version": 1, "sha256Hash": "<hex>"} (the version a
// json.Number as gqlgen's transports and ours decode it, a float64 from a plain decoder).
func persistedQueryHash(pq any) (string, bool) {
	m, ok := pq.(map[string]any)
	if !ok {
		return "", false
	}
	hash, _ := m["sha256Hash"].(string)
	switch v := m["version"].(type) {
	case json.Number:
		ok = v == "1"
	case float64:
		ok = v == 1
	default:
		ok = false
	}
	return hash, ok && hash != ""
}

// bypass reports whether a document that is not trusted may run all the same.
func (t trustedOnly) bypass(ctx context.Context, query string) bool {
	return (t.docs.AdminBypass && auth.IsAdmin(ctx)) || (t.docs.Introspection && onlyIntrospection(query, t.tokens))
}

func notTrusted(code, msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// onlyIntrospection reports whether every operation of query is a query whose fields at its root
// are __schema, __type or __typename (through fragments too).
func onlyIntrospection(query string, tokens int) bool {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, tokens)
	if err != nil || len(doc.Operations) == 0 {
		return false
	}
	seen := map[string]bool{}
	var root func(ast.SelectionSet) bool
	root = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if s.Name != "__schema" && s.Name != "__type" && s.Name != "__typename" {
					return false
				}
			case *ast.InlineFragment:
				if !root(s.SelectionSet) {
					return false
				}
			case *ast.FragmentSpread:
				f := doc.Fragments.ForName(s.Name)
				if f == nil {
					return false
				}
				if seen[s.Name] {
					continue
				}
				seen[s.Name] = true
				if !root(f.SelectionSet) {
					return false
				}
			}
		}
		return true
	}
	for _, op := range doc.Operations {
		if op.Operation != ast.Query || !root(op.SelectionSet) {
			return false
		}
	}
	return true
}

// pinnedCache answers the trusted documents from the manifest, parsed and validated at start,
// and the others (bypasses) from the cache it wraps: running a document by its id parses
// nothing, however many other documents pass.
type pinnedCache struct {
	pinned map[string]*ast.QueryDocument
	graphql.Cache[*ast.QueryDocument]
}

func (c pinnedCache) Get(ctx context.Context, query string) (*ast.QueryDocument, bool) {
	if doc, ok := c.pinned[query]; ok {
		return doc, true
	}
	return c.Cache.Get(ctx, query)
}

func (c pinnedCache) Add(ctx context.Context, query string, doc *ast.QueryDocument) {
	if _, ok := c.pinned[query]; !ok {
		c.Cache.Add(ctx, query, doc)
	}
}

// documentIDKey holds a request's documentId: its transport carried it beside the query, where
// graphql.RawParams has no field for it.
type documentIDKey struct{}

// documentIDOf returns the documentId the request carried, if it did ("" when it was not a
// string): an HTTP request's, from its context, or a websocket subscribe's, from its socket.
func documentIDOf(ctx context.Context) (string, bool) {
	if id, ok := ctx.Value(documentIDKey{}).(string); ok {
		return id, true
	}
	if s := socketOf(ctx); s != nil {
		if id := s.documentID.Swap(nil); id != nil {
			return *id, true
		}
	}
	return "", false
}

// documentIDs is an HTTP transport that reads documentId (a GET's URL parameter, a member of
// a POST's JSON body) into the request's context before the transport it wraps reads the rest.
type documentIDs struct{ graphql.Transport }

func (t documentIDs) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if id, ok := requestDocumentID(r); ok {
		r = r.WithContext(context.WithValue(r.Context(), documentIDKey{}, id))
	}
	t.Transport.Do(w, r, exec)
}

func requestDocumentID(r *http.Request) (string, bool) {
	if r.Method == http.MethodGet {
		if !strings.Contains(r.URL.RawQuery, "documentId") {
			return "", false
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil || !q.Has("documentId") {
			return "", false // the transport says what is wrong with the URL
		}
		return q.Get("documentId"), true
	}
	if r.Body == nil || r.Body == http.NoBody {
		return "", false
	}
	body, err := io.ReadAll(r.Body)
	// The transport reads the same bytes, then the same error (a body over MAX_BODY_BYTES).
	var again io.Reader = bytes.NewReader(body)
	if err != nil {
		again = io.MultiReader(again, failingReader{err})
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{again, r.Body}
	if err != nil || !bytes.Contains(body, []byte(`"documentId"`)) {
		return "", false
	}
	// By its exact name: encoding/json matches member names whatever their case and keeps the
	// last, so {"documentId": A, "DOCUMENTID": B} would run B where a gateway, a log or a
	// JavaScript reader sees A. Such a body names no document.
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return "", false // the transport says what is wrong with the body
	}
	for name := range members {
		if name != "documentId" && strings.EqualFold(name, "documentId") {
			return "", true
		}
	}
	return documentIDValue(members["documentId"])
}

// documentIDValue is a documentId member's value: ok false when absent or null, "" when not a
// string (then no document has it).
func documentIDValue(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var id string
	_ = json.Unmarshal(raw, &id)
	return id, true
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }
