// Package api builds the GraphQL HTTP handler: gqlgen's server with explicit transports, a parsed
// query cache, the error presenter and panic recovery.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/clients"
	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	ruleset "github.com/wikigraph/wikigraph/internal/limits"
	"github.com/wikigraph/wikigraph/internal/loaders"
	"github.com/wikigraph/wikigraph/internal/users"
)

// Options configure the GraphQL handler.
type Options struct {
	// QueryCacheBytes bounds the parsed-query cache by the bytes its documents hold (estimated
	// from their nodes; default 32 MiB); a document over 1/32 of it is parsed each time.
	// QueryCacheSize bounds it by count too (0: no count bound).
	QueryCacheBytes int
	QueryCacheSize  int
	Logger          *slog.Logger
	// WebsocketOrigins are the host patterns (path.Match syntax, e.g. "*.example.com" or
	// "localhost:*") whose pages may open a websocket; the server's own origin always may.
	WebsocketOrigins []string
	// KeepAlive is the interval of websocket keep-alive messages and pings (default 10s).
	KeepAlive time.Duration
	// WebsocketInit authenticates a websocket from its connection_init payload (nil: open).
	WebsocketInit transport.WebsocketInitFunc
	Limits        Limits
	// Observer is told about every answered operation and every error sent (nil: nobody).
	Observer Observer
	// Tracing makes every query and mutation a span (OpenTelemetry's global provider).
	Tracing bool
	// Clients are the per-client budgets (nil: none).
	Clients *clients.Budgets
	// AfterCommit bounds each read of a mutation's payload once its write has committed, in
	// place of the operation's deadline (default 30s).
	AfterCommit time.Duration
	// Trusted, when set, are the only documents the server runs (LoadTrustedDocuments, with
	// the same Limits); automatic persisted queries are off then.
	Trusted *TrustedDocuments
	// Fanout groups the subscribers of identical subscriptions (nil: New makes one); its
	// counts are for metrics and tests.
	Fanout *Fanout
}

// Observer records operations and errors, for metrics.
type Observer interface {
	Operation(typ, name, outcome string, d time.Duration)
	Error(code string)
}

// StreamObserver, when the Observer implements it too, is told about subscriptions by
// transport ("websocket", "sse", "multipart"): each one started (+1) and ended (-1), each event
// sent to a subscriber, each subscription ended because events were lost (EVENTS_DROPPED), and
// each websocket the server closed, with why.
type StreamObserver interface {
	Subscribers(transport string, delta int)
	EventSent(transport string)
	EventsDropped(transport string)
	SocketClosed(reason string)
}

type noObserver struct{}

func (noObserver) Operation(string, string, string, time.Duration) {}
func (noObserver) Error(string)                                    {}

// Limits bound what one request may cost; zero values take the defaults.
type Limits struct {
	Depth      int           // nesting of fields (default 12)
	Complexity int           // gqlgen complexity, list fields costed by their page size (default 5000)
	Tokens     int           // parser tokens of a document (default 15000)
	Aliases    int           // aliased fields in a document (default 100)
	Fields     int           // selections of a document, fragments counted where spread (default 500)
	Timeout    time.Duration // deadline of a query or mutation, database included (default 10s)
	// Concurrency is how many queries and mutations execute at once (default 16); the others
	// wait their turn, within their deadline. Executing more at once than the cores can run
	// only adds memory (each holds goroutines for its lists) and garbage-collection work.
	Concurrency int
	// CheapCost is the query cost up to which an operation is cheap (default 100): half of the
	// Concurrency turns are kept for cheap operations, so a flood of costly ones cannot make a
	// cheap one wait for them. Subscription events hold a quarter of the turns at most, out of
	// the costly ones' half: fan-out cannot make queries and mutations wait for it either.
	CheapCost int
	// NoIntrospection refuses __schema and __type queries (production).
	NoIntrospection bool
	// APQCacheBytes bounds the automatic persisted queries kept by the bytes of their text
	// (default 16 MiB); APQCacheSize by their number (default 1000).
	APQCacheBytes int
	APQCacheSize  int
	// SubscriptionsPerConnection is how many operations may be open at once on one websocket
	// (default 100): subscriptions, and queries and mutations not yet answered. Subscriptions
	// is how many subscriptions the instance holds, over websockets and server-sent events
	// (default 50,000). Over either, a subscribe is refused with TOO_MANY_SUBSCRIPTIONS.
	SubscriptionsPerConnection int
	Subscriptions              int
	// SubscriptionBuffer is how many events a subscriber may have waiting to be sent before it
	// ends with EVENTS_DROPPED (default 1024).
	SubscriptionBuffer int
	// WebsocketInitTimeout is how long a websocket may wait before its connection_init; then
	// it is closed (4408 in graphql-transport-ws). Default 10s.
	WebsocketInitTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Depth, 12)
	def(&l.Complexity, 5000)
	def(&l.Tokens, 15000)
	def(&l.Aliases, 100)
	def(&l.Fields, 500)
	def(&l.APQCacheSize, 1000)
	def(&l.APQCacheBytes, 16<<20)
	def(&l.SubscriptionsPerConnection, 100)
	def(&l.Subscriptions, 50_000)
	def(&l.SubscriptionBuffer, 1024)
	if l.WebsocketInitTimeout <= 0 {
		l.WebsocketInitTimeout = 10 * time.Second
	}
	def(&l.Concurrency, 16)
	def(&l.CheapCost, 100)
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	return l
}

// A document may ask for the whole schema once, and for single types a few times (GraphiQL and
// code generators ask for __schema once; each __schema answers tens of KB).
const (
	maxSchemaIntrospections = 1
	maxTypeIntrospections   = 10
)

// New returns the /query handler for the resolver's schema.
func New(r *graph.Resolver, opts Options) *handler.Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	keepAlive := opts.KeepAlive
	if keepAlive <= 0 {
		keepAlive = 10 * time.Second
	}
	limits := opts.Limits.withDefaults()
	afterCommit := opts.AfterCommit
	if afterCommit <= 0 {
		afterCommit = 30 * time.Second
	}
	observer := opts.Observer
	if observer == nil {
		observer = noObserver{}
	}
	streams, _ := observer.(StreamObserver) // nil: nobody
	if r.UserLookups == nil {
		r.UserLookups = users.NewLookups(r.DB, coalesce.Options{Timeout: limits.Timeout})
	}
	if r.ItemPages == nil {
		r.ItemPages = items.NewPages(r.DB, coalesce.Options{Timeout: limits.Timeout})
	}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: r.Root(), Complexity: complexity()}))
	srv.AroundResponses(boundErrors) // first, so it cuts the whole answer: the first errors, then a count
	// With trusted documents, the HTTP transports read documentId beside the query (a websocket
	// reads it from its subscribe messages).
	withIDs := func(t graphql.Transport) graphql.Transport {
		if opts.Trusted != nil {
			return documentIDs{t}
		}
		return t
	}
	// Subscriptions: websocket (graphql-transport-ws and the legacy graphql-ws, coder/websocket)
	// and server-sent events; SSE goes before POST, which would otherwise take its requests.
	// The transports that answer in parts (subscriptions, @defer) are marked as such.
	srv.AddTransport(streamed{transportWebsocket, websocketTransport{Websocket: transport.Websocket{
		Implementation: transport.CoderWebsocketImplementation{
			AcceptOptions: websocket.AcceptOptions{OriginPatterns: opts.WebsocketOrigins},
		},
		KeepAlivePingInterval: keepAlive,
		PingPongInterval:      keepAlive,
		InitTimeout:           limits.WebsocketInitTimeout,
		InitFunc:              opts.WebsocketInit,
	}, logger: logger, streams: streams, modern: &wsServer{
		accept:   websocket.AcceptOptions{OriginPatterns: opts.WebsocketOrigins},
		initFunc: opts.WebsocketInit, initTimeout: limits.WebsocketInitTimeout, keepAlive: keepAlive,
		writeTimeout: max(10*time.Second, 2*keepAlive), readLimit: 1 << 20, // gqlgen's default
		buffer: limits.SubscriptionBuffer, logger: logger, streams: streams,
	}}})
	srv.AddTransport(withIDs(streamed{transportSSE, transport.SSE{KeepAlivePingInterval: keepAlive}}))
	// Incremental delivery (@defer) over POST, as Apollo Client asks for it; before POST, which
	// would otherwise take its requests.
	srv.AddTransport(withIDs(streamed{transportMultipart, multipartRefusals{transport.MultipartMixed{Boundary: "graphql"}}}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(withIDs(get{}))  // queries only; answered as POST answers
	srv.AddTransport(withIDs(post{})) // gqlgen's POST, to the GraphQL over HTTP spec, writing its answer without a second pass
	srv.AddTransport(otherMethods{})  // last: 405 for PUT, PATCH, DELETE...
	if opts.Trusted != nil {
		srv.Use(trustedOnly{docs: opts.Trusted, tokens: limits.Tokens}) // first: other text is refused unread
	}
	srv.Use(newPreflight(limits.Fields, limits.Tokens)) // counted before validation; nothing for a client that left
	srv.Use(streamEnds{streams: streams})               // a subscription that lost events ends with EVENTS_DROPPED
	srv.Use(&subscriptionLimits{                        // TOO_MANY_SUBSCRIPTIONS past either
		perConnection: int64(limits.SubscriptionsPerConnection), total: int64(limits.Subscriptions), observer: observer,
		streams: streams,
	})
	// Without a cache every request is parsed and validated again. Bounded by bytes: a count
	// alone let 1,000 large documents hold 735 MB.
	queryCacheBytes := opts.QueryCacheBytes
	if queryCacheBytes <= 0 {
		queryCacheBytes = 32 << 20
	}
	var queryCache graphql.Cache[*ast.QueryDocument] = newSizedCache(queryCacheBytes, queryCacheBytes/32, opts.QueryCacheSize, documentSize)
	if opts.Trusted != nil {
		queryCache = pinnedCache{pinned: opts.Trusted.byText, Cache: queryCache} // parsed and validated at start
	}
	srv.SetQueryCache(queryCache)
	if !limits.NoIntrospection {
		srv.Use(extension.Introspection{})
	}
	// Refused before anything runs: too many tokens, too deep, too many aliases, too many fields,
	// too much introspection, too costly. The overlapping-fields rule is quadratic: it runs only
	// on documents within the field limit.
	srv.SetParserTokenLimit(limits.Tokens)
	srv.SetValidationRulesFn(func() *rules.Rules { return validationRules(limits) })
	srv.Use(&complexityLimit{limit: limits.Complexity})
	srv.Use(executionCaches{}) // per operation: they end with it
	// With trusted documents, the manifest is the one store of documents by hash.
	if opts.Trusted == nil {
		srv.Use(extension.AutomaticPersistedQuery{
			Cache: newSizedCache(limits.APQCacheBytes, maxPersistedQuery, limits.APQCacheSize, persistedSize),
		})
	}
	// At most limits.Concurrency queries, mutations and subscription events execute at once,
	// each within its deadline.
	sched := newScheduler(limits, opts.Clients, observer, logger, opts.Tracing)
	srv.AroundOperations(sched.aroundOperations)
	if r.Router != nil {
		srv.AroundOperations(memoPick)
	}
	// Last, so innermost: each subscriber above it, each group's events below it.
	fan := opts.Fanout
	if fan == nil {
		fan = NewFanout()
	}
	fan.buffer, fan.streams = limits.SubscriptionBuffer, streams
	srv.Use(fan)
	// Each response (a query's, a mutation's, or one subscription event's) batches its own
	// lookups and caches nothing beyond itself.
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		reads := r.Primary()
		if r.Router != nil {
			ctx, next, reads = routeReads(r, ctx, next)
		}
		ctx = loaders.With(ctx, loaders.New(reads.DB, reads.UserLookups, reads.ItemPages, afterCommit))
		if ctx.Value(scheduledKey{}) != nil {
			return next(ctx) // a query or mutation: the scheduler records it
		}
		typ, name := "unknown", "" // a document that did not parse has no operation
		if graphql.HasOperationContext(ctx) {
			if op := graphql.GetOperationContext(ctx); op.Operation != nil {
				typ, name = string(op.Operation.Operation), op.OperationName
				if name == "" {
					name = op.Operation.Name
				}
			}
		}
		if typ == string(ast.Subscription) {
			// One response per event, for as long as the client wants: waiting for an event
			// takes nothing, resolving it takes a turn and has a deadline.
			ctx, ev := newEvent(ctx, sched)
			defer ev.release()
			return next(ctx)
		}
		// Refused before it ran (parse, validation, limits).
		start := time.Now()
		resp := next(ctx)
		if resp == nil {
			return nil
		}
		outcome := "ok"
		if len(resp.Errors) > 0 {
			outcome = errorCode(resp.Errors[0])
		}
		sched.record(ctx, typ, name, outcome, time.Since(start))
		return resp
	})
	// Lists a resolver returns tell the loaders which ids to fetch together.
	srv.AroundFields(func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || !fc.IsResolver {
			return next(ctx) // a struct field's value: nothing to wait for, nothing to observe
		}
		// A subscription event's first resolver takes the event's turn.
		if e := eventOf(ctx); e != nil && fc.Object != "Subscription" {
			if err := e.enter(ctx); err != nil {
				return nil, err
			}
		}
		res, err := next(ctx)
		if err != nil {
			return res, err
		}
		// Lists a resolver returns tell the loaders which ids to fetch together. (The loaders are
		// looked up for lists only: each lookup walks the whole context, and this runs for every
		// resolver of a response, Item.owner of every item.)
		if observable(res) {
			if l := loaders.From(ctx); l != nil {
				l.Observe(res)
			}
		}
		return res, err
	})
	present := Presenter(logger)
	presentError := func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := bounded(present(ctx, err)) // quotes of the request shortened
		observer.Error(errorCode(gqlErr))
		return gqlErr
	}
	srv.SetErrorPresenter(presentError)
	fan.present = presentError
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic") // presented as INTERNAL_SERVER_ERROR
	})
	return srv
}

// Presenter is the one place where errors become GraphQL errors. Client faults (*apperr.Error)
// keep their message and get their code and field; gqlgen's own parse and validation errors keep
// theirs; a write sent but never answered is OUTCOME_UNKNOWN, whatever stopped it; anything else
// is logged and shown only as INTERNAL_SERVER_ERROR, so no SQL or Go error text reaches a client.
func Presenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)

		if appErr, ok := errors.AsType[*apperr.Error](err); ok {
			field := appErr.Field
			if field == "" && appErr.Code == apperr.BadUserInput {
				field = lastName(gqlErr.Path) // an argument's own unmarshaler does not know its name
			}
			msg := appErr.Message
			if appErr.Code == apperr.BadUserInput && field != "" {
				msg = field + " " + msg
			}
			ext := map[string]any{"code": string(appErr.Code)}
			if field != "" {
				ext["field"] = field
			}
			return &gqlerror.Error{Message: msg, Path: gqlErr.Path, Locations: gqlErr.Locations, Extensions: ext}
		}
		switch {
		case gqlErr.Rule == ruleset.DepthRule, strings.HasPrefix(gqlErr.Message, "exceeded maximum nesting depth"):
			gqlErr.Extensions = map[string]any{"code": "QUERY_TOO_DEEP"}
			return gqlErr
		case gqlErr.Rule == ruleset.AliasesRule:
			gqlErr.Extensions = map[string]any{"code": "TOO_MANY_ALIASES"}
			return gqlErr
		case strings.HasPrefix(gqlErr.Message, undecodedBody):
			return notDecoded(gqlErr) // without the body gqlgen quotes whole
		case gqlErr.Rule == ruleset.FieldsRule:
			gqlErr.Extensions = map[string]any{"code": "TOO_MANY_FIELDS"}
			return gqlErr
		case gqlErr.Rule == ruleset.IntrospectionRule:
			gqlErr.Extensions = map[string]any{"code": "INTROSPECTION_LIMIT_EXCEEDED"}
			return gqlErr
		case strings.HasPrefix(gqlErr.Message, "exceeded token limit"):
			gqlErr.Extensions = map[string]any{"code": "QUERY_TOO_LARGE"}
			return gqlErr
		case database.OutcomeUnknown(err):
			// Sent, never answered: TIMEOUT or SERVICE_UNAVAILABLE would invite a blind retry.
			logger.WarnContext(ctx, "write outcome unknown", "error", err.Error(), "path", gqlErr.Path.String())
			return &gqlerror.Error{
				Message: "the write may or may not have been applied (its answer was lost): check before writing it again; " +
					"a retry with the same Idempotency-Key answers this same outcome and writes nothing",
				Path: gqlErr.Path, Locations: gqlErr.Locations,
				Extensions: map[string]any{"code": string(apperr.OutcomeUnknown)},
			}
		case database.Unavailable(err) && !errors.Is(err, context.DeadlineExceeded):
			logger.WarnContext(ctx, "database unavailable", "error", err.Error(), "path", gqlErr.Path.String())
			return &gqlerror.Error{
				Message: "the database is unavailable; try again shortly", Path: gqlErr.Path, Locations: gqlErr.Locations,
				Extensions: map[string]any{"code": string(apperr.Unavailable)},
			}
		case errors.Is(err, context.DeadlineExceeded), database.StatementTimeout(err):
			logger.WarnContext(ctx, "operation deadline exceeded", "path", gqlErr.Path.String())
			return &gqlerror.Error{
				Message: "the operation took too long", Path: gqlErr.Path, Locations: gqlErr.Locations,
				Extensions: map[string]any{"code": string(apperr.Timeout)},
			}
		}
		if _, ok := gqlErr.Extensions["code"]; ok {
			return gqlErr // gqlgen's GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, COMPLEXITY_LIMIT_EXCEEDED, ...
		}
		if errors.Unwrap(gqlErr) == nil {
			// Made by gqlgen itself for the client (an argument of the wrong type, say).
			gqlErr.Extensions = map[string]any{"code": string(apperr.BadUserInput)}
			return gqlErr
		}
		logger.ErrorContext(ctx, "internal error", "error", err.Error(), "path", gqlErr.Path.String())
		return &gqlerror.Error{
			Message:    "internal server error",
			Path:       gqlErr.Path,
			Locations:  gqlErr.Locations,
			Extensions: map[string]any{"code": string(apperr.Internal)},
		}
	}
}

// maxPersistedQuery is the largest document kept for automatic persisted queries; a larger one
// is sent in full each time.
const maxPersistedQuery = 32 << 10

func errorCode(e *gqlerror.Error) string {
	if code, ok := e.Extensions["code"].(string); ok {
		return code
	}
	return string(apperr.Internal)
}

func lastName(p ast.Path) string {
	for i := len(p) - 1; i >= 0; i-- {
		if name, ok := p[i].(ast.PathName); ok {
			return string(name)
		}
	}
	return ""
}

// validationRules are gqlparser's rules with the limits': what every document must pass before
// it runs (and every trusted document at start).
func validationRules(limits Limits) *rules.Rules {
	rs := rules.NewDefaultRules()
	rs.RemoveRule(rules.OverlappingFieldsCanBeMergedRule.Name)
	for _, rule := range []core.Rule{
		ruleset.Depth(limits.Depth), ruleset.Aliases(limits.Aliases),
		ruleset.Fields(limits.Fields, rules.OverlappingFieldsCanBeMergedRule),
		ruleset.Introspection(maxSchemaIntrospections, maxTypeIntrospections),
	} {
		rs.AddRule(rule.Name, rule.RuleFunc)
	}
	return rs
}

// executionCaches gives each operation the executor's caches (graph.PrepareOperation) before it
// runs.
type executionCaches struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = executionCaches{}

func (executionCaches) ExtensionName() string                   { return "ExecutionCaches" }
func (executionCaches) Validate(graphql.ExecutableSchema) error { return nil }
func (executionCaches) MutateOperationContext(_ context.Context, op *graphql.OperationContext) *gqlerror.Error {
	graph.PrepareOperation(op)
	return nil
}

// observable reports whether the loaders learn from res (loaders.Observe): a list.
func observable(res any) bool {
	switch res.(type) {
	case []*users.User, *users.Connection, []*items.Item, *items.Connection, []gqlscalar.Node:
		return true
	}
	return false
}
