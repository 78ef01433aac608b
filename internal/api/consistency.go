package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/logging"
)

// ConsistencyToken names the header and cookie that carry a client's last write position (and
// the connection_init payload field of a websocket): a request carrying it reads from a replica
// only once that replica has replayed the write.
const ConsistencyToken = "Consistency-Token"

type (
	tokenKey struct{}
	sinkKey  struct{}
	connKey  struct{}
)

// connToken is a websocket connection's token: the one its connection_init carried, moved on to
// the primary's position after each mutation on the connection, so that the connection's later
// queries read its writes (a websocket answer has no headers to carry a token back).
type connToken struct{ lsn atomic.Uint64 }

func (c *connToken) get() database.LSN { return database.LSN(c.lsn.Load()) }

// advance moves the token to lsn unless it is already past it (operations on one connection
// run concurrently: a slower mutation must not take it back).
func (c *connToken) advance(lsn database.LSN) {
	for {
		old := c.lsn.Load()
		if uint64(lsn) <= old || c.lsn.CompareAndSwap(old, uint64(lsn)) {
			return
		}
	}
}

// tokenSink is where a mutation's answer gets its token: the HTTP response, before it is written.
type tokenSink struct{ w http.ResponseWriter }

// Consistency reads the request's token (header, else cookie) into its context, and lets a
// mutation's answer carry the new one. Only for a server with replicas: without, every read is
// on the primary and there is nothing to wait for.
func Consistency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), sinkKey{}, &tokenSink{w: w})
		if lsn, ok := requestToken(r); ok {
			ctx = context.WithValue(ctx, tokenKey{}, lsn)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestToken is the request's token: the later of the header's and the cookie's (a client
// may send an older saved header beside the cookie of a newer write).
func requestToken(r *http.Request) (database.LSN, bool) {
	var lsn database.LSN
	found := false
	if v := r.Header.Get(ConsistencyToken); v != "" {
		if l, ok := database.ParseToken(v); ok {
			lsn, found = l, true
		}
	}
	if c, err := r.Cookie(ConsistencyToken); err == nil {
		if l, ok := database.ParseToken(c.Value); ok {
			lsn, found = max(lsn, l), true
		}
	}
	return lsn, found
}

// ConsistencyInit wraps a websocket's connection_init check: a token in its payload
// ("Consistency-Token" or "consistencyToken") holds for the connection's operations, and each
// mutation on the connection moves it on to the mutation's position (see routeReads).
func ConsistencyInit(next transport.WebsocketInitFunc) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		var out *transport.InitPayload
		if next != nil {
			var err error
			if ctx, out, err = next(ctx, payload); err != nil {
				return ctx, out, err
			}
		}
		conn := &connToken{}
		for _, key := range []string{ConsistencyToken, "consistencyToken"} {
			if v, ok := payload[key].(string); ok {
				if lsn, ok := database.ParseToken(v); ok {
					conn.advance(lsn)
					break
				}
			}
		}
		return context.WithValue(ctx, connKey{}, conn), out, nil
	}
}

// pickKey holds an operation's *picked: where its first response read.
type pickKey struct{}

type picked struct {
	done bool
	k    int
}

// memoPick is the operation step of a server with replicas: room for routeReads to keep where
// the operation's first response read (an operation's responses come one after another).
func memoPick(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, pickKey{}, &picked{}))
}

// routeReads is the response step of a server with replicas: a query reads where the router
// says (a replica that has its client's last write, else the primary); a mutation runs on the
// primary, and the primary's position after it becomes the client's new token: in the HTTP
// answer's header and cookie, or over a websocket the connection's token, also sent in the
// result's extensions.consistencyToken for the client to carry elsewhere. Subscriptions read
// the primary, where each change they hear of is certainly visible.
//
// An HTTP answer replayed for an Idempotency-Key carries the token stored with it (package
// idempotency replays the headers the first answer set, Set-Cookie included): the position
// just after the write, which covers it. The primary's current position would too, being later,
// but costs a query per replay and would make a client wait for writes not its own.
func routeReads(r *graph.Resolver, ctx context.Context, next graphql.ResponseHandler) (context.Context, graphql.ResponseHandler, graph.Reads) {
	reads := r.Primary()
	if !graphql.HasOperationContext(ctx) {
		return ctx, next, reads
	}
	op := graphql.GetOperationContext(ctx)
	if op.Operation == nil {
		return ctx, next, reads
	}
	switch op.Operation.Operation {
	case ast.Query:
		// The parts of a @defer answer are responses of one operation: they resolve with the
		// first's context, so they read where it did; only the first is routed (and counted).
		memo, _ := ctx.Value(pickKey{}).(*picked)
		k := -1
		if memo != nil && memo.done {
			k = memo.k
		} else {
			after, _ := ctx.Value(tokenKey{}).(database.LSN)
			if conn, _ := ctx.Value(connKey{}).(*connToken); conn != nil {
				after = max(after, conn.get())
			}
			k = r.Router.Pick(ctx, after)
			if memo != nil {
				memo.done, memo.k = true, k
			}
		}
		if k >= 0 {
			reads = r.Replicas[k]
			ctx = graph.WithReads(ctx, reads)
		}
	case ast.Mutation:
		// A websocket's operations have the upgrade request's context, sink included: the
		// connection's token goes first.
		if conn, _ := ctx.Value(connKey{}).(*connToken); conn != nil {
			return ctx, connMutation(r, conn, next), reads
		}
		sink, _ := ctx.Value(sinkKey{}).(*tokenSink)
		if sink == nil {
			return ctx, next, reads
		}
		return ctx, func(ctx context.Context) *graphql.Response {
			resp := next(ctx)
			// Whatever its outcome: a failed mutation may have written too (a later field).
			lsn, err := r.Router.WrittenLSN(ctx)
			if err != nil {
				logging.AddToLine(ctx, slog.String("consistency_token", "none: "+err.Error()))
				return resp
			}
			tok := lsn.Token()
			sink.w.Header().Set(ConsistencyToken, tok)
			http.SetCookie(sink.w, &http.Cookie{
				Name: ConsistencyToken, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
			})
			// And in the answer: a mutation sent over server-sent events has had its headers
			// written before it ran, so only the body can carry the token there.
			if resp != nil {
				if resp.Extensions == nil {
					resp.Extensions = map[string]any{}
				}
				resp.Extensions["consistencyToken"] = tok
			}
			return resp
		}, reads
	}
	return ctx, next, reads
}

// connMutation is a mutation's response handler on a websocket: after it, the connection's
// token moves to the primary's position, and the result carries it.
func connMutation(r *graph.Resolver, conn *connToken, next graphql.ResponseHandler) graphql.ResponseHandler {
	return func(ctx context.Context) *graphql.Response {
		resp := next(ctx)
		// Whatever its outcome, as over HTTP: a failed mutation may have written too.
		lsn, err := r.Router.WrittenLSN(ctx)
		if err != nil {
			return resp
		}
		conn.advance(lsn)
		if resp != nil {
			if resp.Extensions == nil {
				resp.Extensions = map[string]any{}
			}
			resp.Extensions["consistencyToken"] = lsn.Token()
		}
		return resp
	}
}
