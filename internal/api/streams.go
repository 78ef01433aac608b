package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wikigraph/wikigraph/internal/events"
)

// streamEnds makes a subscription that the broker ended because events were lost end with that
// error (EVENTS_DROPPED, through the error presenter), not with the plain end a client cannot
// tell from a normal one: over a websocket an error message for the operation (gqlgen sends it
// instead of complete), over server-sent events an event carrying the error, then complete.
type streamEnds struct {
	streams StreamObserver // told of each subscription ended so (nil: nobody)
}

var (
	_ graphql.OperationInterceptor = streamEnds{}
	_ graphql.ResponseInterceptor  = streamEnds{}
)

func (streamEnds) ExtensionName() string                   { return "StreamEnds" }
func (streamEnds) Validate(graphql.ExecutableSchema) error { return nil }

type streamEndKey struct{}

type streamEnd struct {
	reason   func() error
	reported bool // calls for one stream come one at a time
	shared   bool // a fan-out group's stream: its subscribers each report its end (Fanout)
}

func (streamEnds) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx); op.Operation == nil || op.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	// The resolver subscribes with this context; the stream's calls see it too.
	ctx, reason := events.WithEndReason(ctx)
	return next(context.WithValue(ctx, streamEndKey{}, &streamEnd{reason: reason}))
}

func (s streamEnds) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	end, _ := ctx.Value(streamEndKey{}).(*streamEnd)
	if end == nil {
		return next(ctx)
	}
	if end.reported {
		return nil
	}
	if resp := next(ctx); resp != nil {
		return resp
	}
	err := end.reason()
	if err == nil {
		return nil // a normal end
	}
	end.reported = true
	if end.shared {
		graphql.AddError(ctx, err)
		return &graphql.Response{Errors: graphql.GetErrors(ctx)}
	}
	if s.streams != nil {
		s.streams.EventsDropped(streamTransport(ctx))
	}
	graphql.AddError(ctx, err) // presented like any other error
	errs := graphql.GetErrors(ctx)
	if overWebsocket(graphql.GetOperationContext(ctx).Headers) {
		for _, e := range errs {
			addOperationError(ctx, e) // sent as the operation's error message
		}
		return nil
	}
	return &graphql.Response{Errors: errs}
}

func overWebsocket(h http.Header) bool { return strings.EqualFold(h.Get("Upgrade"), "websocket") }
