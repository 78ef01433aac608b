package httpserver_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/extra/bunotel"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/httpserver"
	"github.com/wikigraph/wikigraph/internal/logging"
)

// With tracing on, a request is one trace: the HTTP span, under it the GraphQL operation's span,
// under that the SQL statements' spans.
func TestTracingLinksHTTPGraphQLAndSQL(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	defer otel.SetTracerProvider(noop.NewTracerProvider())

	db, err := dbtest.Open(dbtest.URL(t))
	require.NoError(t, err)
	defer db.Close()
	database.AddQueryHook(db, bunotel.NewQueryHook(bunotel.WithDBName("wikigraph")))
	logger := logging.New(&syncBuffer{}, "json", slog.LevelInfo)
	gql := api.New(&graph.Resolver{DB: db}, api.Options{QueryCacheSize: 10, Logger: logger, Tracing: true})
	h := httpserver.Handler(httpserver.Routes{
		GraphQL: gql, Logger: logger,
		Ready: func(ctx context.Context) error { return database.Ready(ctx, db) },
		Wrap:  func(h http.Handler) http.Handler { return otelhttp.NewHandler(h, "http") },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpserver.Serve(ctx, httpserver.Server(h, logger, httpserver.Timeouts{}), ln, time.Second)
	}()
	defer func() { cancel(); <-done }()

	resp, err := http.Post("http://"+ln.Addr().String()+"/query", "application/json",
		strings.NewReader(`{"query":"query Traced { users(limit: 2) { id } }"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var httpSpan, opSpan, sqlSpan sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range recorder.Ended() {
			switch {
			case s.SpanKind() == trace.SpanKindServer:
				httpSpan = s
			case s.Name() == "graphql.query Traced":
				opSpan = s
			case strings.HasPrefix(s.Name(), "SELECT"):
				sqlSpan = s
			}
		}
		return httpSpan != nil && opSpan != nil && sqlSpan != nil
	}, 5*time.Second, 20*time.Millisecond, "spans: %v", names(recorder.Ended()))
	assert.Equal(t, httpSpan.SpanContext().TraceID(), sqlSpan.SpanContext().TraceID(), "one trace")
	assert.Equal(t, httpSpan.SpanContext().SpanID(), opSpan.Parent().SpanID(), "the operation is under the request")
	assert.Equal(t, opSpan.SpanContext().SpanID(), sqlSpan.Parent().SpanID(), "the statement is under the operation")
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}
