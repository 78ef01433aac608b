package api

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/clients"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/jsontext"
	ruleset "github.com/wikigraph/wikigraph/internal/limits"
	"github.com/wikigraph/wikigraph/internal/logging"
	"github.com/wikigraph/wikigraph/internal/tracing"
)

// scheduler gives every query and mutation a turn among limits.Concurrency and a deadline, both
// held from its first response to its last (a query with @defer answers in several parts), and
// records each operation once. Resolvers of a subscription event take a turn and a deadline per
// event.
type scheduler struct {
	clients *clients.Budgets // nil: no per-client budgets
	turns   chan struct{}
	// costly bounds the turns operations costing more than cheap may hold, so some turns are
	// always left to cheap ones (nil: no reserve).
	costly chan struct{}
	// events bounds the turns subscription events may hold (they also count as costly), so
	// queries and mutations always find turns while events fan out.
	events   chan struct{}
	cheap    int
	timeout  time.Duration
	observer Observer
	logger   *slog.Logger
	tracing  bool
}

// streamKey marks a request that arrived over a transport that answers in several parts
// (websocket, server-sent events, multipart/mixed).
type streamKey struct{}

// streamed wraps a transport whose answers can come in several parts.
type streamed struct {
	name string // the transport's, for metrics: transportWebsocket, transportSSE, transportMultipart
	graphql.Transport
}

const (
	transportWebsocket = "websocket"
	transportSSE       = "sse"
	transportMultipart = "multipart"
)

func (t streamed) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.Transport.Do(w, r.WithContext(context.WithValue(r.Context(), streamKey{}, t.name)), exec)
}

func isStreamed(ctx context.Context) bool { return ctx.Value(streamKey{}) != nil }

// streamTransport is the name of the streaming transport ctx's operation came by ("" for none).
func streamTransport(ctx context.Context) string {
	name, _ := ctx.Value(streamKey{}).(string)
	return name
}

func newScheduler(limits Limits, budgets *clients.Budgets, observer Observer, logger *slog.Logger, tracing bool) *scheduler {
	s := &scheduler{
		clients: budgets, cheap: limits.CheapCost,
		turns: make(chan struct{}, limits.Concurrency), timeout: limits.Timeout,
		observer: observer, logger: logger, tracing: tracing,
	}
	// Half, measured with make attack: 32 clients looping the costliest query pushed a cheap
	// one's p99 to 78 ms with a quarter kept, 52 ms with half; the costly ones' rate did not fall.
	if reserved := limits.Concurrency / 2; reserved > 0 {
		s.costly = make(chan struct{}, limits.Concurrency-reserved)
	}
	// Subscription events are fan-out, one per subscriber and event: 2,000 subscribers make
	// 2,000 events of each change, all ready at once. Without a share of their own they queued
	// for turns by the thousand, ahead of any mutation that came after (make bench-subs: mutation
	// p50 0.3–8.8 s at 2,000). They hold a quarter of the turns at most, a bound of their own
	// beside the costly operations' half (not within it: a flood of costly queries would leave
	// events no turn with a quarter of the turns idle): cheap operations keep a quarter whatever
	// events and costly operations do. A quarter (4 of the default 16) is still more than the cores there are
	// to resolve events (their fields are in memory: the broker loaded the rows once), so events
	// alone still use the whole machine; they wait for their share within their deadline, as
	// they waited for a turn before.
	s.events = make(chan struct{}, max(1, limits.Concurrency/4))
	return s
}

// takeEvent waits (within ctx) for a subscription event's turn: one of the events' share, then
// a turn.
func (s *scheduler) takeEvent(ctx context.Context) (release func(), ok bool) {
	return s.takeWithin(ctx, s.events, nil)
}

// take waits (within ctx) for a turn, and first, for a costly operation, for one of the turns
// costly operations may hold.
func (s *scheduler) take(ctx context.Context, costly bool) (release func(), ok bool) {
	if costly && s.costly != nil {
		return s.takeWithin(ctx, nil, s.costly)
	}
	return s.takeWithin(ctx, nil, nil)
}

// takeWithin waits (within ctx) for a slot of each bound given (nil: none), in this order, then
// for a turn. Every caller takes them in the same order: none holds a slot another waits for
// while waiting for one that other holds.
func (s *scheduler) takeWithin(ctx context.Context, outer, inner chan struct{}) (release func(), ok bool) {
	if outer != nil {
		select {
		case outer <- struct{}{}:
		case <-ctx.Done():
			return nil, false
		}
	}
	if inner != nil {
		select {
		case inner <- struct{}{}:
		case <-ctx.Done():
			if outer != nil {
				<-outer
			}
			return nil, false
		}
	}
	select {
	case s.turns <- struct{}{}:
		if ctx.Err() == nil {
			return func() {
				<-s.turns
				if inner != nil {
					<-inner
				}
				if outer != nil {
					<-outer
				}
			}, true
		}
		<-s.turns
	case <-ctx.Done():
	}
	if inner != nil {
		<-inner
	}
	if outer != nil {
		<-outer
	}
	return nil, false
}

// preflight stops a request whose client has left (or whose deadline passed) before it is
// parsed, and again before its cost is computed: gqlparser's parser and validator take no
// context, so these are the points where the work can be skipped. And it counts a document's
// selections (limits.Count) before gqlgen validates it: validation walks every fragment once per
// operation with every rule at once, so a document within the token limit could cost seconds
// there before the field limit's own rule refused it. A document seen lately is not counted
// again (most requests repeat one of a few documents, which gqlgen's cache then serves).
type preflight struct {
	fields, tokens int
	seed           maphash.Seed
	mu             sync.Mutex
	counted        map[uint64]struct{}
}

// maxCounted bounds preflight's memory of documents within the limits (8 bytes each).
const maxCounted = 4096

var (
	_ graphql.OperationParameterMutator = (*preflight)(nil)
	_ graphql.OperationContextMutator   = (*preflight)(nil)
)

func newPreflight(fields, tokens int) *preflight {
	return &preflight{fields: fields, tokens: tokens, seed: maphash.MakeSeed(), counted: map[uint64]struct{}{}}
}

func (*preflight) ExtensionName() string                   { return "Preflight" }
func (*preflight) Validate(graphql.ExecutableSchema) error { return nil }

func (p *preflight) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if err := gone(ctx); err != nil {
		return err
	}
	if params.Query == "" {
		return nil // a persisted query's hash: its text was counted when it was stored
	}
	h := maphash.String(p.seed, params.Query)
	p.mu.Lock()
	_, seen := p.counted[h]
	p.mu.Unlock()
	if seen {
		return nil
	}
	if at := jsontext.GraphQLLoneSurrogate(params.Query); at >= 0 {
		// A syntax error by the specification, which the parser decodes as U+FFFD instead.
		line := 1 + strings.Count(params.Query[:at], "\n")
		column := at - strings.LastIndexByte(params.Query[:at], '\n')
		return &gqlerror.Error{
			Message:    fmt.Sprintf("Invalid Unicode escape sequence %s: half of a UTF-16 surrogate pair; send the character itself, or both halves", params.Query[at:at+6]),
			Locations:  []gqlerror.Location{{Line: line, Column: column}},
			Extensions: map[string]any{"code": errcode.ParseFailed},
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, p.tokens)
	if err != nil {
		return nil // gqlgen parses it again and says what is wrong
	}
	if n, pos := ruleset.Count(doc, p.fields); n > p.fields {
		e := &gqlerror.Error{
			Message:    fmt.Sprintf("the document selects %d or more fields; the limit is %d", n, p.fields),
			Extensions: map[string]any{"code": "TOO_MANY_FIELDS"},
		}
		if pos != nil {
			e.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
		}
		return e
	}
	p.mu.Lock()
	if len(p.counted) >= maxCounted {
		clear(p.counted)
	}
	p.counted[h] = struct{}{}
	p.mu.Unlock()
	return nil
}

func (*preflight) MutateOperationContext(ctx context.Context, _ *graphql.OperationContext) *gqlerror.Error {
	return gone(ctx)
}

func gone(ctx context.Context) *gqlerror.Error {
	if ctx.Err() == nil {
		return nil
	}
	return &gqlerror.Error{Message: "the request ended before it was read", Extensions: map[string]any{"code": clientGone}}
}

// clientGone is the code of a request whose client left before it ran (nobody reads it; it
// shows in the metrics).
const clientGone = "CLIENT_CLOSED_REQUEST"

// The codes of a document refused before it ran are protocol errors to gqlgen, as its own
// GRAPHQL_VALIDATION_FAILED is: over a websocket an error message carrying the answer's errors as
// bounded (boundErrors) rather than the whole list it would send for errors it takes for the
// client's. (Over HTTP every refusal before execution is answered alike: see run.)
func init() {
	for _, code := range []string{"QUERY_TOO_DEEP", "TOO_MANY_ALIASES", "TOO_MANY_FIELDS",
		"INTROSPECTION_LIMIT_EXCEEDED", "QUERY_TOO_LARGE", "COMPLEXITY_LIMIT_EXCEEDED", clientGone} {
		errcode.RegisterErrorType(code, errcode.KindProtocol)
	}
}

// rateLimited is the code of an operation its client's cost budget refused.
const rateLimited = "RATE_LIMITED"

// cost is the operation's complexity, as the complexity limit computed it (1 when unknown).
func cost(ctx context.Context) int {
	if st := extension.GetComplexityStats(ctx); st != nil && st.Complexity > 0 {
		return st.Complexity
	}
	return 1
}

// scheduledKey marks the context of an operation the scheduler records, so the response
// middleware does not record it again.
type scheduledKey struct{}

func badRequest(observer Observer, msg string) graphql.ResponseHandler {
	observer.Error("BAD_REQUEST")
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
		Message: msg, Extensions: map[string]any{"code": "BAD_REQUEST"},
	}}})
}

// aroundOperations is the operation middleware.
func (s *scheduler) aroundOperations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	if op.Operation == nil {
		return next(ctx)
	}
	typ := op.Operation.Operation
	// A subscription needs a stream: over plain POST or GET it would hold the request open with
	// nothing to say until an event comes.
	if typ == ast.Subscription && !isStreamed(ctx) {
		return badRequest(s.observer, "subscriptions need a websocket, or server-sent events (Accept: text/event-stream)")
	}
	deferred := hasDefer(op)
	if deferred && typ != ast.Query {
		return badRequest(s.observer, "@defer is supported in queries only")
	}
	if deferred && !isStreamed(ctx) {
		return badRequest(s.observer, "@defer needs an answer in several parts: POST with Accept: multipart/mixed, "+
			"server-sent events (Accept: text/event-stream) or a websocket")
	}
	if typ == ast.Subscription {
		return next(ctx) // each event's resolvers take their own turn (see event)
	}
	o := &operation{s: s, op: op, respond: next(ctx), deferred: deferred}
	return o.next
}

// operation is one query or mutation, from its first response to its last.
type operation struct {
	s        *scheduler
	op       *graphql.OperationContext
	respond  graphql.ResponseHandler
	deferred bool

	mu        sync.Mutex
	started   bool
	finished  bool
	receiving bool            // a call into respond is under way
	stopping  bool            // the deadline passed, or the client left, while a call was under way
	cut       bool            // it ended by its deadline with parts still due
	exec      context.Context // a deferred query's executor context
	opCtx     context.Context // its deadline and client
	end       func()          // releases what the operation holds; called once, under mu
	outcome   string
}

func (o *operation) next(ctx context.Context) *graphql.Response {
	o.mu.Lock()
	if o.finished {
		defer o.mu.Unlock()
		if o.cut {
			// Parts were still due when the deadline ended the operation: say so, once.
			o.cut = false
			o.s.observer.Error(string(apperr.Timeout))
			return &graphql.Response{HasNext: new(bool), Errors: gqlerror.List{{
				Message:    "the operation took too long: its remaining deferred parts were dropped",
				Extensions: map[string]any{"code": string(apperr.Timeout)},
			}}}
		}
		return nil
	}
	if o.started {
		// The next part of a deferred query. The executor waits for it without looking at any
		// context, so its senders must not give up while this call waits: they run under
		// o.exec, which ends only when no call is under way.
		o.receiving = true
		o.mu.Unlock()
		return o.after(o.call(o.exec))
	}
	o.started = true
	o.mu.Unlock()
	return o.first(ctx)
}

func (o *operation) name() (typ, name string) {
	name = o.op.OperationName
	if name == "" {
		name = o.op.Operation.Name
	}
	return string(o.op.Operation.Operation), name
}

// first waits for a turn (within the deadline), then runs the operation's first part.
func (o *operation) first(ctx context.Context) *graphql.Response {
	s := o.s
	start := time.Now()
	// The deadline counts from the request's arrival: reading, parsing and validating it are
	// part of the operation's time.
	deadline := start.Add(s.timeout)
	if arrived := o.op.Stats.OperationStart; !arrived.IsZero() && arrived.Before(start) {
		deadline = arrived.Add(s.timeout)
	}
	opCtx, cancel := context.WithDeadline(ctx, deadline)
	typ, name := o.name()
	// The client's own budget first: its cost, then one of its slots, so one client's flood
	// waits on its own slots and leaves the server's turns to the others.
	slot, err := s.clients.Admit(opCtx, clients.Key(ctx), cost(ctx))
	if limited, ok := errors.AsType[*clients.RateLimitedError](err); ok {
		o.mu.Lock()
		o.finished = true
		o.mu.Unlock()
		cancel()
		secs := limited.Seconds()
		clients.SetHint(ctx, http.StatusTooManyRequests, secs)
		s.observer.Error(rateLimited)
		s.record(ctx, typ, name, rateLimited, time.Since(start))
		return &graphql.Response{Errors: gqlerror.List{{
			Message:    limited.Error(),
			Extensions: map[string]any{"code": rateLimited, "retryAfter": secs},
		}}}
	}
	var release func()
	turn := false
	if err == nil {
		if release, turn = s.take(opCtx, cost(ctx) > s.cheap); !turn {
			slot()
		}
	}
	if !turn {
		o.mu.Lock()
		o.finished = true
		o.mu.Unlock()
		cancel()
		if !errors.Is(opCtx.Err(), context.DeadlineExceeded) {
			return nil // the client went away: nobody to answer
		}
		resp := &graphql.Response{Errors: gqlerror.List{{
			Message:    "the server is busy: the operation timed out waiting for its turn",
			Extensions: map[string]any{"code": string(apperr.Timeout)},
		}}}
		s.observer.Error(string(apperr.Timeout))
		s.record(ctx, typ, name, string(apperr.Timeout), s.timeout)
		return resp
	}
	var span trace.Span
	if s.tracing {
		opCtx, span = tracing.Operation(opCtx, typ, name)
	}
	exec := context.WithValue(opCtx, scheduledKey{}, true)
	o.mu.Lock()
	o.end = func() {
		cancel()
		release()
		slot()
		if span != nil {
			if o.outcome != "ok" {
				span.SetStatus(codes.Error, o.outcome)
			}
			span.End()
		}
		s.record(ctx, typ, name, o.outcome, time.Since(start))
	}
	if !o.deferred {
		o.mu.Unlock()
		return o.after(o.call(exec))
	}
	// Deferred parts resolve on goroutines of their own under the context of this first call
	// (gqlgen hands a resolver's context down to its children), and hand their results over
	// only while that context lives: the executor waits for a part without looking at any
	// context. So the executor runs under a context that ends only while no call waits for a
	// part, and its statements obey opCtx (the deadline and the client) through the database's
	// stopper instead.
	execCtx, execCancel := context.WithCancel(context.WithoutCancel(exec))
	o.exec, o.opCtx = database.WithStopper(execCtx, opCtx), opCtx
	stop := context.AfterFunc(opCtx, func() { // the deadline, or the client left
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.receiving {
			o.stopping = true // the part under way ends soon: its statements stop
		} else {
			o.finishLocked(true)
		}
	})
	end := o.end
	o.end = func() {
		stop()
		execCancel()
		end()
	}
	o.receiving = true
	o.mu.Unlock()
	return o.after(o.call(o.exec))
}

// call runs the next part; should it panic outside a resolver (gqlgen recovers those), the
// operation still gives back its turn and slot before the panic goes on.
func (o *operation) call(ctx context.Context) *graphql.Response {
	defer func() {
		if p := recover(); p != nil {
			o.mu.Lock()
			o.receiving = false
			if o.outcome == "" {
				o.outcome = string(apperr.Internal)
			}
			o.finishLocked(false)
			o.mu.Unlock()
			panic(p)
		}
	}()
	return o.respond(ctx)
}

// after notes a part's outcome and ends the operation with its last part.
func (o *operation) after(resp *graphql.Response) *graphql.Response {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.receiving = false
	if resp != nil && o.outcome == "" && len(resp.Errors) > 0 {
		o.outcome = errorCode(resp.Errors[0])
	}
	last := resp == nil || resp.HasNext == nil || !*resp.HasNext
	if last || o.stopping {
		o.finishLocked(!last)
	}
	return resp
}

// finishLocked ends the operation; cut says parts were still due.
func (o *operation) finishLocked(cut bool) {
	if o.finished {
		return
	}
	o.finished = true
	if cut {
		o.cut = true // the next call, if the client is still there, says so
		if o.outcome == "" && errors.Is(o.opCtx.Err(), context.DeadlineExceeded) {
			o.outcome = string(apperr.Timeout)
		} else if o.outcome == "" {
			o.outcome = "canceled" // the client left
		}
	}
	if o.outcome == "" {
		o.outcome = "ok"
	}
	if o.end != nil {
		o.end()
	}
}

// record counts an operation and puts it on the request's log line (a websocket operation, which
// has none, gets a line of its own).
func (s *scheduler) record(ctx context.Context, typ, name, outcome string, d time.Duration) {
	s.observer.Operation(typ, name, outcome, d)
	if !logging.AddToLine(ctx, slog.String("operation", name), slog.String("type", typ), slog.String("outcome", outcome)) {
		s.logger.LogAttrs(ctx, slog.LevelInfo, "graphql",
			slog.String("operation", name), slog.String("type", typ),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("outcome", outcome))
	}
}

// hasDefer reports whether the operation defers any fragment (@defer without if: false).
func hasDefer(op *graphql.OperationContext) bool {
	if !strings.Contains(op.RawQuery, "defer") {
		return false
	}
	seen := map[string]bool{}
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if walk(s.SelectionSet) {
					return true
				}
			case *ast.InlineFragment:
				if deferOn(s.Directives, op.Variables) || walk(s.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if deferOn(s.Directives, op.Variables) {
					return true
				}
				if !seen[s.Name] {
					seen[s.Name] = true
					if f := op.Doc.Fragments.ForName(s.Name); f != nil && walk(f.SelectionSet) {
						return true
					}
				}
			}
		}
		return false
	}
	return walk(op.Operation.SelectionSet)
}

func deferOn(ds ast.DirectiveList, vars map[string]any) bool {
	d := ds.ForName("defer")
	if d == nil {
		return false
	}
	if on, ok := d.ArgumentMap(vars)["if"].(bool); ok && !on {
		return false
	}
	return true
}

// event is one subscription event's resolution. Its first resolver takes a turn and starts the
// deadline, which the event's statements obey (database.WithStopper); release gives the turn
// back once the event is written. Waiting for the event takes nothing.
type event struct {
	s      *scheduler
	ctx    context.Context // ends by the deadline, once started, or at release
	cancel context.CancelCauseFunc
	once   sync.Once
	turn   bool
	give   func() // gives the turn back
	timer  *time.Timer
	err    error
}

type eventKey struct{}

func newEvent(ctx context.Context, s *scheduler) (context.Context, *event) {
	e := &event{s: s}
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	ctx = context.WithValue(ctx, eventKey{}, e)
	return database.WithStopper(ctx, e.ctx), e
}

func eventOf(ctx context.Context) *event {
	e, _ := ctx.Value(eventKey{}).(*event)
	return e
}

// enter takes the event's turn on its first call and reports whether the event may resolve.
func (e *event) enter(ctx context.Context) error {
	e.once.Do(func() {
		e.timer = time.AfterFunc(e.s.timeout, func() { e.cancel(context.DeadlineExceeded) })
		waitCtx, stop := context.WithCancel(e.ctx)
		defer stop()
		stopCtx := context.AfterFunc(ctx, stop) // the subscriber left
		defer stopCtx()
		if e.give, e.turn = e.s.takeEvent(waitCtx); !e.turn {
			e.err = context.Cause(e.ctx)
			if e.err == nil {
				e.err = ctx.Err()
			}
		}
	})
	return e.err
}

func (e *event) release() {
	e.once.Do(func() {}) // no resolver takes a turn after this
	if e.turn {
		e.give()
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.cancel(context.Canceled)
}
