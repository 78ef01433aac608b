package database

import "context"

type stopperKey struct{}

// WithStopper makes the statements run under ctx (and every context made from it) stop when
// stop ends too, as they stop when ctx ends, with stop's cause as their error. It is for work
// whose context must outlive its deadline: gqlgen resolves a deferred fragment under the context
// of the response that started it, and gives up handing the result over once that context ends,
// so that context must not carry the deadline itself.
func WithStopper(ctx, stop context.Context) context.Context {
	return context.WithValue(ctx, stopperKey{}, stop)
}

// WithoutStopper returns ctx without a stopper: for work ctx's request starts but others share
// (a coalesced statement), which must not end when that one request's stopper does.
func WithoutStopper(ctx context.Context) context.Context {
	if stopperOf(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, stopperKey{}, nil)
}

// stopped reports the stopper's cause once it has ended: a statement is not started then.
func stopped(ctx context.Context) error {
	if s := stopperOf(ctx); s != nil && s.Err() != nil {
		return context.Cause(s)
	}
	return nil
}

func stopperOf(ctx context.Context) context.Context {
	s, _ := ctx.Value(stopperKey{}).(context.Context)
	return s
}
