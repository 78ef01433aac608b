// Package app assembles the server from its parts: the pool, the change broker, the GraphQL
// handler with its limits and authentication, metrics, tracing and the HTTP server, and runs it
// until its context ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/extra/bunotel"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/clients"
	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/config"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/httpserver"
	"github.com/wikigraph/wikigraph/internal/idempotency"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/metrics"
	"github.com/wikigraph/wikigraph/internal/playground"
	"github.com/wikigraph/wikigraph/internal/tracing"
	"github.com/wikigraph/wikigraph/internal/users"
)

// Serve runs the server until ctx ends, then shuts it down gracefully; nil after a clean stop.
func Serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	limits := api.Limits{
		Depth: cfg.MaxDepth, Complexity: cfg.MaxComplexity, Tokens: cfg.MaxTokens, Aliases: cfg.MaxAliases,
		Fields:  cfg.MaxFields,
		Timeout: cfg.OperationTimeout, NoIntrospection: !cfg.Introspection, APQCacheSize: cfg.APQCacheSize,
		Concurrency: cfg.MaxConcurrentOperations, CheapCost: cfg.CheapOperationCost, APQCacheBytes: cfg.APQCacheBytes,
		SubscriptionsPerConnection: cfg.MaxSubscriptionsPerConnection, Subscriptions: cfg.MaxSubscriptions,
		WebsocketInitTimeout: cfg.WebsocketInitTimeout, SubscriptionBuffer: cfg.SubscriptionBuffer,
	}
	trusted, err := trustedDocuments(cfg, limits, logger) // before anything opens: a bad manifest stops the start
	if err != nil {
		return err
	}
	db, err := database.Open(database.Options{
		URL: cfg.DatabaseURL, AppName: cfg.DBAppName, MaxConns: cfg.DBMaxConns,
		StatementTimeout: cfg.DBStatementTimeout, Unprepared: !bool(cfg.DBPreparedStatements),
		LogSQL: cfg.LogSQL, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer db.Close()
	direct := db // LISTEN's session: not through a transaction pooler
	if cfg.DatabaseDirectURL != cfg.DatabaseURL {
		if direct, err = database.Open(database.Options{
			URL: cfg.DatabaseDirectURL, AppName: cfg.DBAppName, MaxConns: 2, StatementTimeout: cfg.DBStatementTimeout,
		}); err != nil {
			return err
		}
		defer direct.Close()
	}
	traced := tracing.Configured()
	if traced {
		shutdown, err := tracing.Setup(ctx, version())
		if err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
		defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()
		database.AddQueryHook(db, bunotel.NewQueryHook(bunotel.WithDBName("wikigraph")))
		logger.Info("tracing to OTLP", "endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")+os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	}
	authMiddleware, wsInit, err := authentication(cfg, logger)
	if err != nil {
		return err
	}
	broker := events.New(db, events.Options{Buffer: cfg.SubscriptionBuffer, Direct: direct, Logger: logger})
	stats := metrics.New(db.DB, broker.Subscribers)
	database.AddQueryHook(db, stats)
	budgets := clients.New(clients.Options{
		Concurrent: cfg.ClientConcurrent, CostPerSecond: cfg.ClientCostPerSecond, Burst: cfg.ClientCostBurst,
	})
	stats.Clients(budgets.Len)
	fanout := api.NewFanout()
	stats.Fanout(fanout.Queued, fanout.Subscribers)
	lookups := users.NewLookups(db, coalesce.Options{Slots: cfg.DBLookupSlots, Timeout: cfg.OperationTimeout, Observe: stats.Lookup})
	pages := items.NewPages(db, coalesce.Options{Timeout: cfg.OperationTimeout, Observe: stats.Lookup})
	resolver := &graph.Resolver{DB: db, Events: broker, UserLookups: lookups, ItemPages: pages}
	router, err := replicas(cfg, db, resolver, stats, logger)
	if err != nil {
		return err
	}
	for _, r := range resolver.Replicas {
		defer r.DB.Close()
	}
	if router != nil {
		for _, r := range router.Replicas() {
			defer r.Probe.Close()
		}
		wsInit = api.ConsistencyInit(wsInit)
	}
	gql := api.New(resolver, api.Options{
		QueryCacheSize: cfg.QueryCacheSize, QueryCacheBytes: cfg.QueryCacheBytes, Logger: logger,
		WebsocketOrigins: cfg.WebsocketOrigins, KeepAlive: cfg.WebsocketKeepAlive, WebsocketInit: wsInit,
		Observer: stats, Tracing: traced, Clients: budgets,
		// A keyed mutation must answer within its lease: its payload's reads after the commit
		// get what the operation's deadline leaves of it, at most 30s.
		AfterCommit: min(30*time.Second, cfg.IdempotencyLease-cfg.OperationTimeout),
		Limits:      limits,
		Trusted:     trusted,
		Fanout:      fanout,
	})
	keys := idempotency.New(db, idempotency.Options{
		Retention: cfg.IdempotencyRetention, Lease: cfg.IdempotencyLease, Wait: cfg.OperationTimeout, Logger: logger,
	})
	var graphQL http.Handler = gql
	if router != nil {
		graphQL = api.Consistency(gql)
	}
	routes := httpserver.Routes{
		GraphQL:      graphQL,
		Ready:        func(ctx context.Context) error { return database.Ready(ctx, db) },
		Logger:       logger,
		Auth:         authMiddleware,
		CORSOrigins:  cfg.CORSOrigins,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Playground:   playgroundHandler(cfg),
		Wrap:         stats.InFlight,
		Idempotency:  keys.Middleware,
	}
	if traced {
		routes.Wrap = func(h http.Handler) http.Handler { return otelhttp.NewHandler(stats.InFlight(h), "http") }
	}
	if cfg.MetricsAddr == "" {
		routes.Metrics = stats.Handler()
	} else if err := serveMetrics(ctx, cfg.MetricsAddr, stats.Handler(), logger); err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, logger); err != nil {
			return err
		}
	}
	h := httpserver.Handler(routes)
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return err
	}
	logger.Info("serving", "addr", ln.Addr().String(), "playground", fmt.Sprintf("http://%s/", ln.Addr()))
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- broker.Run(serveCtx) }()
	purgeDone := make(chan error, 1)
	go func() { purgeDone <- keys.Run(serveCtx) }()
	checksDone := make(chan error, 1)
	go func() {
		if router == nil {
			checksDone <- nil
			return
		}
		checksDone <- router.Run(serveCtx)
	}()
	defer func() { // subscriptions, purges and replica checks end before the pools close
		stopServing()
		<-brokerDone
		<-purgeDone
		<-checksDone
	}()
	served := make(chan error, 1)
	go func() {
		served <- httpserver.Serve(serveCtx, httpserver.Server(h, logger, httpserver.Timeouts{
			Read: cfg.ReadTimeout, Write: cfg.WriteTimeout, Idle: cfg.IdleTimeout,
		}), ln, cfg.ShutdownTimeout)
	}()

	// Serving first: /healthz answers while migrations run, /readyz says 503 until they are done.
	if cfg.MigrateOnStart {
		if err := migrate(ctx, cfg, logger); err != nil {
			stopServing()
			if ctx.Err() != nil { // stopped while waiting for another instance's migration
				return <-served
			}
			return errors.Join(fmt.Errorf("migrate on start: %w", err), <-served)
		}
	}
	if router != nil {
		// Replicas serve once they have the schema the migrations made (or found).
		if err := router.Ready(ctx); err != nil {
			logger.Error("replicas stay out of the rotation", "error", err.Error())
		}
	}
	if err := <-served; err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// trustedDocuments loads TRUSTED_DOCUMENTS, checked against the schema within the limits (nil
// when unset).
func trustedDocuments(cfg config.Config, limits api.Limits, logger *slog.Logger) (*api.TrustedDocuments, error) {
	if cfg.TrustedDocuments == "" {
		return nil, nil
	}
	docs, err := api.LoadTrustedDocuments(cfg.TrustedDocuments, limits)
	if err != nil {
		return nil, err
	}
	docs.AdminBypass, docs.Introspection = cfg.TrustedDocumentsAdminBypass, cfg.TrustedDocumentsIntrospection
	logger.Info("only trusted documents run", "manifest", cfg.TrustedDocuments, "documents", docs.Len(),
		"admin_bypass", docs.AdminBypass, "introspection_bypass", docs.Introspection)
	return docs, nil
}

// replicas opens the pools of DATABASE_REPLICA_URLS, with the user lookups and item pages on
// each, into resolver, and returns their router (nil without replicas). Each replica's pool has
// the primary's settings; its prepared statements and coalesced lookups are its own, so a
// request only shares a statement with requests that chose the same server.
func replicas(cfg config.Config, primary *bun.DB, resolver *graph.Resolver, stats *metrics.Metrics, logger *slog.Logger) (*database.Router, error) {
	if len(cfg.DatabaseReplicaURLs) == 0 {
		return nil, nil
	}
	var list []*database.Replica
	var router *database.Router // set before any read
	for _, u := range cfg.DatabaseReplicaURLs {
		replica := &database.Replica{Name: database.ReplicaName(u)}
		// A read on a replica that went down, or hangs (has not begun to answer within
		// REPLICA_ANSWER_TIMEOUT), runs on the primary, and takes the replica out of the
		// rotation at once: no client sees the fault. While it is out, its pool's connections
		// go to the primary; the health checks reach it through a small pool of their own.
		probe, err := database.Open(database.Options{
			URL: u, AppName: cfg.DBAppName + "-probe", MaxConns: 4,
			StatementTimeout: cfg.DBStatementTimeout, Unprepared: !bool(cfg.DBPreparedStatements),
		})
		var db *bun.DB
		if err == nil {
			db, err = database.Open(database.Options{
				URL: u, AppName: cfg.DBAppName, MaxConns: cfg.DBMaxConns,
				StatementTimeout: cfg.DBStatementTimeout, Unprepared: !bool(cfg.DBPreparedStatements),
				LogSQL: cfg.LogSQL, Logger: logger,
				Fallback: cfg.DatabaseURL, Lost: func(err error) { router.Down(replica, err) },
				AnswerTimeout: cfg.ReplicaAnswerTimeout, Alive: probe.PingContext,
				Down: func() bool { return !replica.InRotation() },
			})
			if err != nil {
				_ = probe.Close()
			}
		}
		if err != nil {
			for _, r := range list {
				_ = r.DB.Close()
				_ = r.Probe.Close()
			}
			resolver.Replicas = nil
			return nil, fmt.Errorf("replica: %w", err)
		}
		database.AddQueryHook(db, stats)
		replica.DB, replica.Probe = db, probe
		list = append(list, replica)
		resolver.Replicas = append(resolver.Replicas, graph.Reads{
			DB:          db,
			UserLookups: users.NewLookups(db, coalesce.Options{Slots: cfg.DBLookupSlots, Timeout: cfg.OperationTimeout, Observe: stats.Lookup}),
			ItemPages:   items.NewPages(db, coalesce.Options{Timeout: cfg.OperationTimeout, Observe: stats.Lookup}),
		})
	}
	router = database.NewRouter(primary, list, database.RouterOptions{
		MaxLag: cfg.ReplicaMaxLag, Wait: cfg.ReplicaTokenWait, Logger: logger, Waited: stats.TokenWait,
	})
	resolver.Router = router
	stats.Replicas(router)
	return router, nil
}

// Token prints a development token: args are SUB [ROLE].
func Token(cfg config.Config, args []string, out io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("token: want SUB [ROLE]")
	}
	id, err := gqlscalar.ParseID(args[0])
	var sub int64
	if err == nil {
		sub, err = id.RowOf(gqlscalar.TypeUser, "")
	}
	if err != nil {
		return errors.New("token: SUB must be a user's id (its global id, or its row number: databaseId)")
	}
	role := auth.User
	if len(args) == 2 {
		role = auth.Role(args[1])
	}
	tok, err := auth.Mint(cfg.AuthJWTSecret, sub, role, 24*time.Hour, cfg.AuthIssuer, cfg.AuthAudience)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

func playgroundHandler(cfg config.Config) http.Handler {
	if !cfg.Playground {
		return nil
	}
	return playground.Handler()
}

// version is the module version the binary was built from, for traces.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.Main.Version
	}
	return "unknown"
}

// serveMetrics serves /metrics on a listener of its own, so it need not be public.
func serveMetrics(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := httpserver.Server(mux, logger, httpserver.Timeouts{})
	go func() { _ = httpserver.Serve(ctx, srv, ln, time.Second) }()
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// servePprof serves the Go profiler on a listener of its own: it shows internals, so it is never
// mounted on the public listener.
func servePprof(ctx context.Context, addr string, logger *slog.Logger) error {
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr // a bare port means this machine only
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	srv := httpserver.Server(mux, logger, httpserver.Timeouts{})
	go func() { _ = httpserver.Serve(ctx, srv, ln, time.Second) }()
	logger.Warn("serving pprof; keep this address private", "addr", ln.Addr().String())
	return nil
}

// authentication returns the middleware and websocket check of the configured AUTH_MODE.
func authentication(cfg config.Config, logger *slog.Logger) (func(http.Handler) http.Handler, transport.WebsocketInitFunc, error) {
	if cfg.AuthMode == "none" {
		logger.Warn("AUTH_MODE=none: anyone may read and write everything; set AUTH_MODE=jwt in production")
		return auth.Open, nil, nil
	}
	v, err := auth.NewVerifier(auth.Options{
		Secret: cfg.AuthJWTSecret, JWKSFile: cfg.AuthJWKSFile, Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience,
		AnyAudience: cfg.AuthAnyAudience, Leeway: cfg.AuthLeeway, JWKSRefresh: cfg.AuthJWKSRefresh, Logger: logger,
		Policy: auth.Policy{OpenSignup: cfg.AuthOpenSignup},
	})
	if err != nil {
		return nil, nil, err
	}
	if cfg.AuthAnyAudience {
		logger.Warn("AUTH_ANY_AUDIENCE=true: tokens meant for any audience are accepted, so any service of the same identity provider can act here; set AUTH_AUDIENCE in production")
	}
	return v.Middleware, v.WebsocketInit, nil
}

func migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	// The advisory lock is a session's: held on a direct connection, not through a pooler.
	db, err := database.OpenForMigrations(cfg.DatabaseDirectURL, cfg.DBAppName)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := database.Up(ctx, db)
	if err != nil {
		return err
	}
	logger.Info("migrations applied", "applied", applied)
	return nil
}
