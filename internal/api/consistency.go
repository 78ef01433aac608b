package api

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/database"
)

// ConsistencyToken names the header and cookie that carry a client's last write position (and
// the connection_init payload field of a websocket): a request carrying it reads from a replica
// only once that replica has replayed the write.
const ConsistencyToken = "Consistency-Token"

type (
	tokenKey struct{}
	sinkKey  struct{}
)

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

func requestToken(r *http.Request) (database.LSN, bool) {
	if v := r.Header.Get(ConsistencyToken); v != "" {
		if lsn, ok := database.ParseToken(v); ok {
			return lsn, true
		}
	}
	if c, err := r.Cookie(ConsistencyToken); err == nil {
		return database.ParseToken(c.Value)
	}
	return 0, false
}

// ConsistencyInit wraps a websocket's connection_init check: a token in its payload
// ("Consistency-Token" or "consistencyToken") holds for the connection's operations.
func ConsistencyInit(next transport.WebsocketInitFunc) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		var out *transport.InitPayload
		if next != nil {
			var err error
			if ctx, out, err = next(ctx, payload); err != nil {
				return ctx, out, err
			}
		}
		for _, key := range []string{ConsistencyToken, "consistencyToken"} {
			if v, ok := payload[key].(string); ok {
				if lsn, ok := database.ParseToken(v); ok {
					ctx = context.WithValue(ctx, tokenKey{}, lsn)
					break
				}
			}
		}
		return ctx, out, nil
	}
}

// routeReads is the response step of a server with replicas: a query reads where the router
// says (a replica that has its client's last write, else the primary); a mutation runs on the
// primary, and its HTTP answer carries the primary's position after it as the client's new
// token. Subscriptions read the primary, where each change they hear of is certainly visible.
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
		after, _ := ctx.Value(tokenKey{}).(database.LSN)
		if k := r.Router.Pick(ctx, after); k >= 0 {
			reads = r.Replicas[k]
			ctx = graph.WithReads(ctx, reads)
		}
	case ast.Mutation:
		sink, _ := ctx.Value(sinkKey{}).(*tokenSink)
		if sink == nil {
			return ctx, next, reads
		}
		return ctx, func(ctx context.Context) *graphql.Response {
			resp := next(ctx)
			// Whatever its outcome: a failed mutation may have written too (a later field).
			if lsn, err := r.Router.WrittenLSN(ctx); err == nil {
				tok := lsn.Token()
				sink.w.Header().Set(ConsistencyToken, tok)
				http.SetCookie(sink.w, &http.Cookie{
					Name: ConsistencyToken, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
				})
			}
			return resp
		}, reads
	}
	return ctx, next, reads
}
