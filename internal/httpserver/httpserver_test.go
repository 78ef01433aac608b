package httpserver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/httpserver"
	"github.com/wikigraph/wikigraph/internal/logging"
	"github.com/wikigraph/wikigraph/internal/playground"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// serve runs the real server on 127.0.0.1 with an ephemeral port and returns its base URL.
func serve(t *testing.T, db *bun.DB, extra func(*http.ServeMux)) (string, *bytes.Buffer, context.CancelFunc, <-chan error) {
	t.Helper()
	logs := new(bytes.Buffer)
	logger := logging.New(logs, "json", slog.LevelInfo)
	gql := api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 10, Logger: logger})
	var h http.Handler = httpserver.Handler(httpserver.Routes{
		GraphQL:    gql,
		Ready:      func(ctx context.Context) error { return database.Ready(ctx, db) },
		Logger:     logger,
		Playground: playground.Handler(),
	})
	if extra != nil {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		extra(mux)
		h = mux
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan error, 1) // what the test may read
	go func() {
		err := httpserver.Serve(ctx, httpserver.Server(h, logger, httpserver.Timeouts{}), ln, 5*time.Second)
		done <- err
		errc <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	return "http://" + ln.Addr().String(), logs, cancel, done
}

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	base, _, _, _ := serve(t, dbtest.DB(t), nil)
	code, _, body := get(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, _, _ = get(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, code, "migrated database: ready")
	// /health, as the old service answered it: JSON, ok while the database answers.
	health := func(t *testing.T, base string, want int, status string) {
		t.Helper()
		code, hdr, body := get(t, base+"/health")
		assert.Equal(t, want, code)
		assert.Equal(t, "application/json", hdr.Get("Content-Type"))
		assert.JSONEq(t, `{"status":"`+status+`"}`, body)
	}
	health(t, base, http.StatusOK, "ok")

	t.Run("unmigrated database", func(t *testing.T) {
		db, err := dbtest.Open(dbtest.Empty(t))
		require.NoError(t, err)
		defer db.Close()
		base, _, _, _ := serve(t, db, nil)
		code, _, _ := get(t, base+"/healthz")
		assert.Equal(t, http.StatusOK, code, "alive even when not ready")
		code, _, _ = get(t, base+"/readyz")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		health(t, base, http.StatusServiceUnavailable, "unavailable")
	})
	t.Run("unreachable database", func(t *testing.T) {
		db, err := dbtest.Open("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
		require.NoError(t, err)
		defer db.Close()
		base, _, _, _ := serve(t, db, nil)
		code, _, _ := get(t, base+"/readyz")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		code, _, _ = get(t, base+"/healthz")
		assert.Equal(t, http.StatusOK, code)
		health(t, base, http.StatusServiceUnavailable, "unavailable")
	})
}

func TestQueryOverHTTP(t *testing.T) {
	base, logs, _, _ := serve(t, dbtest.DB(t), nil)

	body := `{"query":"mutation($in: NewUser!) { createUser(input: $in) { username } }","variables":{"in":{"username":"http_user","email":"http_user@example.com"}}}`
	resp, err := http.Post(base+"/query", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	assert.JSONEq(t, `{"data":{"createUser":{"username":"http_user"}}}`, string(out))

	code, hdr, got := get(t, base+"/query?query="+url.QueryEscape(`{ userByUsername(username: "HTTP_USER") { username } }`))
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, hdr.Get("Content-Type"), "application/json")
	assert.JSONEq(t, `{"data":{"userByUsername":{"username":"http_user"}}}`, got)

	assert.Contains(t, logs.String(), `"path":"/query"`, "one access-log line per request")
}

func TestPlayground(t *testing.T) {
	base, _, _, _ := serve(t, dbtest.DB(t), nil)
	code, hdr, body := get(t, base+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, hdr.Get("Content-Type"), "text/html")
	assert.Contains(t, strings.ToLower(body), "graphiql")
	assert.Contains(t, hdr.Get("Content-Security-Policy"), "default-src 'self'", "the page may load nothing from elsewhere")
	assert.NotContains(t, body, "https://", "no external script or style")
	scripts := regexp.MustCompile(`src="\./(assets/[^"]+\.js)"`).FindStringSubmatch(body)
	require.Len(t, scripts, 2, "the page loads its bundled script")
	code, hdr, js := get(t, base+"/"+scripts[1])
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, hdr.Get("Content-Type"), "javascript")
	assert.Contains(t, hdr.Get("Cache-Control"), "immutable")
	assert.Greater(t, len(js), 100_000)

	code, _, _ = get(t, base+"/no-such-page")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestRequestID(t *testing.T) {
	base, logs, _, _ := serve(t, dbtest.DB(t), nil)
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set(httpserver.RequestIDHeader, "client-id-123")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "client-id-123", resp.Header.Get(httpserver.RequestIDHeader), "a well-formed id is kept")
	assert.Contains(t, logs.String(), `"request_id":"client-id-123"`)

	req.Header.Set(httpserver.RequestIDHeader, "bad id\twith junk")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	got := resp.Header.Get(httpserver.RequestIDHeader)
	assert.Len(t, got, 16, "a malformed id is replaced")
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	base, _, cancel, done := serve(t, dbtest.DB(t), func(mux *http.ServeMux) {
		mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
			close(started)
			time.Sleep(500 * time.Millisecond)
			_, _ = w.Write([]byte("finished"))
		})
	})
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	<-started
	cancel() // as SIGTERM does
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "finished", r.body, "the in-flight request completes")
	require.NoError(t, <-done, "a clean shutdown returns nil")

	_, err := http.Get(base + "/healthz")
	assert.Error(t, err, "no longer accepting")
	var opErr *net.OpError
	assert.True(t, errors.As(err, &opErr))
}
