package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect/pgdialect"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

func TestMain(m *testing.M) {
	code := dbtest.Main(m)
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary builds the server the way `make build` does, once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wikigraph-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wikigraph")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// running is the built binary serving on 127.0.0.1, started by startServer.
type running struct {
	base   string
	cmd    *exec.Cmd
	logs   *bytes.Buffer // read it once the process has exited
	exited chan error
}

// startServer runs the built binary with env added to the environment (and PORT, HOST) and
// waits until /readyz answers 200. It is stopped at the end of the test if still running.
func startServer(t *testing.T, env ...string) *running {
	t.Helper()
	r := launchServer(t, env...)
	r.waitReady(t)
	return r
}

// launchServer runs the built binary as startServer does, without waiting for it.
func launchServer(t *testing.T, env ...string) *running {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(buildBinary(t))
	cmd.Env = append(append(os.Environ(), env...), fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1")
	r := &running{base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, logs: new(bytes.Buffer), exited: make(chan error, 1)}
	cmd.Stderr = r.logs
	require.NoError(t, cmd.Start())
	go func() { r.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return r
}

// waitReady waits until r's /readyz answers 200.
func (r *running) waitReady(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "the server never became ready")
}

// stop sends SIGTERM and returns how the process exited.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-r.exited:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM; logs:\n%s", r.logs)
		return nil
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestBinaryServesMigratesAndStopsOnSIGTERM runs the built binary with no arguments against an
// empty database, as a deployment would: it migrates, serves, and exits 0 on SIGTERM.
func TestBinaryServesMigratesAndStopsOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	dbURL := dbtest.Empty(t)
	port, metricsPort := freePort(t), freePort(t)
	env := append(os.Environ(), "DATABASE_URL="+dbURL, fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1", "LOG_SQL=true",
		fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", metricsPort))

	status := exec.Command(bin, "migrate", "status")
	status.Env = env
	out, err := status.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "create_users\tpending")

	var logs bytes.Buffer
	srv := exec.Command(bin)
	srv.Env = env
	srv.Stderr = &logs
	require.NoError(t, srv.Start())
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "the server migrates and becomes ready; logs:\n%s", &logs)

	check := exec.Command(bin, "healthcheck")
	check.Env = env
	out, err = check.CombinedOutput()
	require.NoError(t, err, "healthcheck passes while ready: %s", out)

	resp, err := http.Post(base+"/query", "application/json",
		strings.NewReader(`{"query":"mutation { createUser(input: {username: \"bin_user\", email: \"bin@example.com\"}) { id } }"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.JSONEq(t, `{"data":{"createUser":{"id":"VXNlcjox"}}}`, string(body), "user 1's global id")

	resp, err = http.Post(base+"/query", "application/json", strings.NewReader(`{"query":"query Named { user(id: \"x\") { id } }"}`))
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	require.NoError(t, err)
	scraped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`wikigraph_graphql_operations_total{name="anonymous",outcome="ok",type="mutation"} 1`,
		`wikigraph_graphql_operations_total{name="Named",outcome="BAD_USER_INPUT",type="query"} 1`,
		`wikigraph_graphql_errors_total{code="BAD_USER_INPUT"} 1`,
		`wikigraph_graphql_operation_duration_seconds_bucket{name="Named",type="query"`,
		`wikigraph_http_requests_in_flight`,
		`wikigraph_subscriptions_active 0`,
		`go_sql_max_open_connections{db_name="wikigraph"} 8`,
		`go_sql_wait_count_total{db_name="wikigraph"}`,
		`go_build_info{`,
		`process_resident_memory_bytes`,
	} {
		assert.Contains(t, string(scraped), want)
	}
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "with METRICS_ADDR, metrics are not on the public port")

	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "exit status 0 after SIGTERM; logs:\n%s", logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM; logs:\n%s", logs.String())
	}
	assert.Contains(t, logs.String(), `"msg":"stopped"`)
	assert.Contains(t, logs.String(), `"msg":"sql"`, "LOG_SQL logs statements")
	assert.Contains(t, logs.String(), "INSERT INTO")
	assert.Regexp(t, `"msg":"http","method":"POST","path":"/query","status":200,"duration_ms":[0-9.]+,"operation":"Named","type":"query","outcome":"BAD_USER_INPUT","request_id":"[0-9a-f]+"`,
		logs.String(), "one line per request, naming the operation")

	check = exec.Command(bin, "healthcheck")
	check.Env = env
	assert.Error(t, check.Run(), "healthcheck fails once the server is gone")

	status = exec.Command(bin, "migrate", "status")
	status.Env = env
	out, err = status.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "create_users\tapplied")
}

func TestBadConfigurationIsRefused(t *testing.T) {
	bin := buildBinary(t)
	for _, bad := range []string{"PORT=http", "DB_MAX_CONNS=1", "LOG_LEVEL=loud", "DB_STATEMENT_TIMEOUT=soon",
		"AUTH_MODE=jwt", "AUTH_MODE=maybe", "MAX_QUERY_DEPTH=0", "MAX_BODY_BYTES=10"} {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbtest.URL(t), bad)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, bad)
		assert.Contains(t, string(out), "config", bad)
	}
}

// AUTH_MODE=jwt checks the audience of tokens: starting without AUTH_AUDIENCE fails and says
// why, unless AUTH_ANY_AUDIENCE=true opts out, which the server warns about when it starts.
func TestJWTModeWithoutAudience(t *testing.T) {
	jwtEnv := []string{"DATABASE_URL=" + dbtest.URL(t), "AUTH_MODE=jwt", "AUTH_JWT_SECRET=0123456789abcdef0123456789abcdef"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a server that starts would never exit
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBinary(t))
	cmd.Env = append(os.Environ(), jwtEnv...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "the server started")
	require.Error(t, err)
	assert.Contains(t, string(out), "AUTH_MODE=jwt needs AUTH_AUDIENCE")

	srv := startServer(t, append(jwtEnv, "AUTH_ANY_AUDIENCE=true")...)
	require.NoError(t, srv.stop(t))
	assert.Regexp(t, `"level":"WARN","msg":"AUTH_ANY_AUDIENCE=true: tokens meant for any audience are accepted`, srv.logs.String())
}

func TestTokenCommand(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "token", "7", "admin")
	cmd.Env = append(os.Environ(), "AUTH_JWT_SECRET=0123456789abcdef0123456789abcdef", "AUTH_AUDIENCE=wikigraph")
	out, err := cmd.Output()
	require.NoError(t, err)
	v, err := auth.NewVerifier(auth.Options{Secret: "0123456789abcdef0123456789abcdef", Audience: "wikigraph"})
	require.NoError(t, err)
	p, err := v.Verify(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	assert.Equal(t, int64(7), p.UserID)
	assert.Equal(t, auth.Admin, p.Role)
	assert.WithinDuration(t, time.Now().Add(24*time.Hour), p.Expires, time.Minute, "valid for a day")

	cmd = exec.Command(bin, "token", "7")
	cmd.Env = append(os.Environ(), "AUTH_JWT_SECRET=short")
	assert.Error(t, cmd.Run(), "a short secret is refused")
}

// SIGTERM during a write load: every write the client saw acknowledged is in the database, the
// requests in flight complete, and the process exits 0.
func TestSIGTERMUnderWriteLoad(t *testing.T) {
	dbURL := dbtest.Empty(t)
	srv := startServer(t, "DATABASE_URL="+dbURL)
	base := srv.base

	// One connection per request: after shutdown a client sees "connection refused", never a
	// half-answered request.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	var (
		mu           sync.Mutex
		acknowledged []int64
		cut          []string
		unanswered   []string
		wg           sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := fmt.Sprintf("term_%d_%d", w, i)
				body := fmt.Sprintf(`{"query":"mutation { createUser(input: {username: \"%s\", email: \"%s@t.example\"}) { databaseId } }"}`, name, name)
				resp, err := client.Post(base+"/query", "application/json", strings.NewReader(body))
				if err != nil {
					if !strings.Contains(err.Error(), "connection refused") {
						// Closed before an answer: the server must not have written it either.
						mu.Lock()
						unanswered = append(unanswered, name)
						mu.Unlock()
					}
					return
				}
				var out struct {
					Data   struct{ CreateUser struct{ DatabaseID int64 } }
					Errors []any
				}
				decodeErr := json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				mu.Lock()
				switch {
				case decodeErr != nil:
					cut = append(cut, decodeErr.Error())
				case resp.StatusCode != http.StatusOK || len(out.Errors) > 0 || out.Data.CreateUser.DatabaseID == 0:
					cut = append(cut, fmt.Sprintf("HTTP %d %v", resp.StatusCode, out.Errors)) // answered, but not done
				default:
					acknowledged = append(acknowledged, out.Data.CreateUser.DatabaseID)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	require.NoError(t, srv.stop(t), "exit status 0; logs:\n%s", srv.logs)
	wg.Wait()
	assert.Empty(t, cut, "every request that was answered completed")
	require.NotEmpty(t, acknowledged)

	db, err := dbtest.Open(dbURL)
	require.NoError(t, err)
	defer db.Close()
	var count int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM users WHERE id = ANY(?::bigint[])", pgdialect.Array(acknowledged)).Scan(context.Background(), &count))
	assert.Equal(t, len(acknowledged), count, "every acknowledged write is in the database")
	if len(unanswered) > 0 {
		// Connections the kernel had queued when the listener closed are reset unread.
		require.NoError(t, db.NewRaw("SELECT count(*) FROM users WHERE username = ANY(?::text[])", pgdialect.Array(unanswered)).Scan(context.Background(), &count))
		assert.Zero(t, count, "no write happened without its answer: %v", unanswered)
	}
	t.Logf("%d writes acknowledged before and during shutdown, all present; %d queued connections reset unread", len(acknowledged), len(unanswered))
}

// With the standard OTEL_* variables set, the binary exports its traces over OTLP/HTTP.
func TestBinaryExportsTraces(t *testing.T) {
	var (
		mu    sync.Mutex
		spans []*tracepb.Span
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			body, _ := io.ReadAll(r.Body)
			var req coltracepb.ExportTraceServiceRequest
			if proto.Unmarshal(body, &req) == nil {
				mu.Lock()
				for _, rs := range req.ResourceSpans {
					for _, ss := range rs.ScopeSpans {
						spans = append(spans, ss.Spans...)
					}
				}
				mu.Unlock()
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	srv := startServer(t, "DATABASE_URL="+dbtest.URL(t), "OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL, "OTEL_BSP_SCHEDULE_DELAY=100")
	resp, err := http.Post(srv.base+"/query", "application/json", strings.NewReader(`{"query":"query Exported { users(limit: 1) { id } }"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, srv.stop(t), srv.logs.String()) // shutdown flushes the spans
	assert.Contains(t, srv.logs.String(), "tracing to OTLP")
	mu.Lock()
	defer mu.Unlock()
	var server, op, stmt *tracepb.Span
	for _, sp := range spans {
		switch {
		case sp.Kind == tracepb.Span_SPAN_KIND_SERVER && server == nil:
			server = sp
		case sp.Name == "graphql.query Exported":
			op = sp
		case strings.HasPrefix(sp.Name, "SELECT") && op != nil && bytes.Equal(sp.ParentSpanId, op.SpanId):
			stmt = sp
		}
	}
	require.NotNil(t, op, "the operation's span was exported (%d spans)", len(spans))
	for _, sp := range spans { // the statement may come before the operation in the batch
		if strings.HasPrefix(sp.Name, "SELECT") && bytes.Equal(sp.ParentSpanId, op.SpanId) {
			stmt = sp
		}
		if sp.Kind == tracepb.Span_SPAN_KIND_SERVER && bytes.Equal(sp.SpanId, op.ParentSpanId) {
			server = sp
		}
	}
	require.NotNil(t, stmt, "a SQL span under the operation")
	require.NotNil(t, server, "an HTTP span over the operation")
	assert.Equal(t, server.TraceId, stmt.TraceId, "one trace")
}
