package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

func sha256ID(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func writeManifest(t *testing.T, entries map[string]string) string {
	t.Helper()
	b, err := json.Marshal(entries)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "persisted-documents.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

// TestLoadTrustedDocuments: a manifest's documents pass the limits requests pass (a document too
// deep for MAX_QUERY_DEPTH stops the start, as it would be refused at every request); a key may
// be sha256:<hex> or the bare hex, in either case; a sha1 manifest (the client preset's old
// default) is refused with the option to change.
func TestLoadTrustedDocuments(t *testing.T) {
	page := `query Page { usersConnection(first: 2) { edges { node { username items(first: 2) { edges { node { title } } } } } } }`
	for _, tc := range []struct {
		name    string
		entries map[string]string
		limits  Limits
		want    string // "" : loads
		docs    int
	}{
		{"sha256:<hex>", map[string]string{sha256ID(page): page}, Limits{}, "", 1},
		{"bare and upper-case hex", map[string]string{strings.ToUpper(strings.TrimPrefix(sha256ID(page), "sha256:")): page}, Limits{}, "", 1},
		{"both forms of one id", map[string]string{sha256ID(page): page, strings.TrimPrefix(sha256ID(page), "sha256:"): page}, Limits{}, "", 1},
		{"too deep", map[string]string{sha256ID(page): page}, Limits{Depth: 4}, "not valid against the schema and the query limits: query nests 7 levels deep; the limit is 4 (line 1, column 1)", 0},
		{"too many aliases", map[string]string{sha256ID(`{ a: __typename b: __typename }`): `{ a: __typename b: __typename }`}, Limits{Aliases: 1}, "(query (anonymous))", 0},
		{"too many tokens", map[string]string{sha256ID(page): page}, Limits{Tokens: 10}, "does not parse: exceeded token limit", 0},
		{"sha1", map[string]string{"sha1:" + strings.Repeat("a", 40): page}, Limits{}, "hashAlgorithm sha256", 0},
		{"no operation", map[string]string{sha256ID(`fragment F on Query { __typename }`): `fragment F on Query { __typename }`}, Limits{}, "has no operation", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeManifest(t, tc.entries)
			docs, err := LoadTrustedDocuments(path, tc.limits)
			if tc.want == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.docs, docs.Len())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "TRUSTED_DOCUMENTS "+path+": ")
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestTrustedDocumentRunsAsParsedAtStart: a document named by its id runs as it was parsed and
// validated at start, the same document every time; the query cache holds none of it.
func TestTrustedDocumentRunsAsParsedAtStart(t *testing.T) {
	text := `query One { usersConnection(first: 1) { totalCount } }`
	docs, err := LoadTrustedDocuments(writeManifest(t, map[string]string{sha256ID(text): text}), Limits{})
	require.NoError(t, err)
	srv := New(&graph.Resolver{DB: dbtest.DB(t)}, Options{Trusted: docs, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	var ran []*ast.QueryDocument
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		ran = append(ran, graphql.GetOperationContext(ctx).Doc)
		return next(ctx)
	})
	for _, body := range []string{`{"documentId":"` + sha256ID(text) + `"}`, `{"query":` + string(must(json.Marshal(text))) + `}`} {
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.JSONEq(t, `{"data":{"usersConnection":{"totalCount":0}}}`, rec.Body.String())
	}
	require.Len(t, ran, 2)
	assert.Same(t, docs.byHash[strings.TrimPrefix(sha256ID(text), "sha256:")].doc, ran[0], "the document parsed at start")
	assert.Same(t, ran[0], ran[1])
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOnlyIntrospection: the introspection bypass lets through queries whose root fields are
// all introspection, through fragments, and nothing else.
func TestOnlyIntrospection(t *testing.T) {
	for q, want := range map[string]bool{
		`{ __schema { types { name } } }`:                                             true,
		`{ __type(name: "User") { name } __typename }`:                                true,
		`{ ... on Query { __typename } }`:                                             true,
		`query { ...F } fragment F on Query { __schema { queryType { name } } }`:      true,
		`query { ...F } fragment F on Query { ...F __typename }`:                      true, // a cycle: invalid, but it ends here
		`{ __typename users { id } }`:                                                 false,
		`{ ... on Query { usersConnection(first: 1) { totalCount } } }`:               false,
		`query { ...F } fragment F on Query { user(id: 1) { id } }`:                   false,
		`query { ...Missing }`:                                                        false,
		`mutation { __typename }`:                                                     false,
		`subscription { __typename }`:                                                 false,
		`query A { __typename } query B { usersConnection(first: 1) { totalCount } }`: false,
		`{ __schema `: false,
	} {
		assert.Equal(t, want, onlyIntrospection(q, 1000), q)
	}
}

// TestRequestDocumentID: documentId is read from a GET's URL and a POST's body, and the body
// read for it is read again by the transport, up to the same error (a body over the limit).
func TestRequestDocumentID(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/query?documentId=sha256%3Aab&variables=%7B%7D", nil)
	id, ok := requestDocumentID(r)
	assert.True(t, ok)
	assert.Equal(t, "sha256:ab", id)
	_, ok = requestDocumentID(httptest.NewRequest(http.MethodGet, "/query?query=%7B__typename%7D", nil))
	assert.False(t, ok)

	for body, want := range map[string]struct {
		id string
		ok bool
	}{
		`{"documentId":"ab","variables":{}}`: {"ab", true},
		`{"documentId":12}`:                  {"", true}, // present, names nothing
		`{"documentId":null,"query":"{a}"}`:  {"", false},
		`{"query":"{ documentId }"}`:         {"", false},
		`{"documentId":`:                     {"", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		id, ok := requestDocumentID(r)
		assert.Equal(t, want.ok, ok, body)
		assert.Equal(t, want.id, id, body)
		again, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		assert.Equal(t, body, string(again), "the transport reads the whole body")
	}

	body := `{"documentId":"ab","variables":{"x":"` + strings.Repeat("x", 100) + `"}}`
	r = httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 50)
	_, ok = requestDocumentID(r)
	assert.False(t, ok)
	again, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	assert.True(t, errors.As(err, &tooLarge), "the transport sees the body was too large: %v", err)
	assert.Equal(t, body[:50], string(again))
}

// BenchmarkTrustedDocument: user(id) by its text on a server without trusted documents (the
// parsed document from the query cache), and by its id on one with them (documentId, and
// Apollo's extension):
//
//	make gobench BENCH=TrustedDocument
func BenchmarkTrustedDocument(b *testing.B) {
	db := dbtest.Migrated(b)
	_, err := db.ExecContext(context.Background(), `INSERT INTO users (username, email) VALUES ('bench', 'bench@example.com')`)
	require.NoError(b, err)
	text := `query User($id: ID!) { user(id: $id) { id username email } }`
	dir := b.TempDir()
	path := filepath.Join(dir, "manifest.json")
	require.NoError(b, os.WriteFile(path, must(json.Marshal(map[string]string{sha256ID(text): text})), 0o644))
	docs, err := LoadTrustedDocuments(path, Limits{})
	require.NoError(b, err)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	plain := New(&graph.Resolver{DB: db}, Options{QueryCacheSize: 100, Logger: quiet})
	trusted := New(&graph.Resolver{DB: db}, Options{QueryCacheSize: 100, Logger: quiet, Trusted: docs})
	hash := strings.TrimPrefix(sha256ID(text), "sha256:")
	for _, bc := range []struct {
		name string
		h    http.Handler
		body string
	}{
		{"text", plain, `{"query":` + string(must(json.Marshal(text))) + `,"variables":{"id":"1"}}`},
		{"documentId", trusted, `{"documentId":"sha256:` + hash + `","variables":{"id":"1"}}`},
		{"persistedQuery", trusted, `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + hash + `"}},"variables":{"id":"1"}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(bc.body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				bc.h.ServeHTTP(rec, req)
				if !strings.Contains(rec.Body.String(), `"username":"bench"`) {
					b.Fatal(rec.Body.String())
				}
			}
		})
	}
}

// A documentId is read by its exact name: encoding/json alone matches a member whatever its
// case and keeps the last, so a body whose "documentId" names one document (what a gateway, a
// log or a JavaScript reader sees) and whose "DOCUMENTID" names another ran the other one. Such
// a body names no document (refused as TRUSTED_DOCUMENT_NOT_FOUND).
func TestDocumentIDIsReadByItsExactName(t *testing.T) {
	for body, want := range map[string]string{
		`{"documentId":"sha256:aaaa","DOCUMENTID":"sha256:bbbb"}`: "",
		`{"DOCUMENTID":"sha256:bbbb","documentId":"sha256:aaaa"}`: "",
		`{"documentid":"sha256:bbbb","documentId":"sha256:aaaa"}`: "",
		`{"documentId":"sha256:aaaa","query":"{ a }"}`:            "sha256:aaaa",
	} {
		r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		id, ok := requestDocumentID(r)
		assert.True(t, ok, body)
		assert.Equal(t, want, id, body)
	}
}
