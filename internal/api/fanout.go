package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/events"
)

// Fanout makes the subscribers of one subscription share it: subscribers with the same
// document, operation, variables and caller (what a field shows may depend on who asks: see
// auth.Visibility) are one group, with one subscription in the broker, and each event is
// resolved once for the group; every subscriber gets the same response.
//
// It is the innermost operation interceptor: what each subscriber has of its own (limits, its
// transport, counts) runs above it, once per subscriber; what each event costs (resolvers,
// loaders, the scheduler's turn, the broker) runs below it, once per group. A subscriber that
// falls behind by the whole buffer ends with EVENTS_DROPPED, alone; a group that loses events
// ends every subscriber with its error.
type Fanout struct {
	buffer  int                                          // events one subscriber may have queued
	present func(context.Context, error) *gqlerror.Error // the server's error presenter
	streams StreamObserver

	mu     sync.Mutex
	groups map[string]*group
	joined int // subscribers in groups that started
}

// NewFanout returns the groups of a server (api.New makes its own when Options.Fanout is nil).
func NewFanout() *Fanout { return &Fanout{groups: map[string]*group{}} }

// Subscribers counts the subscribers of started groups: subscriptions that hear every change
// from now on.
func (f *Fanout) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joined
}

// Groups counts the groups: the subscriptions the broker holds for this server's subscribers.
func (f *Fanout) Groups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.groups)
}

// Queued sums the events waiting to be sent, over every subscriber, and tells the longest queue.
func (f *Fanout) Queued() (total, longest int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.groups {
		for m := range g.members {
			var n int
			if m.push != nil {
				n = m.push.queued()
			} else {
				n = m.queued()
			}
			total += n
			longest = max(longest, n)
		}
	}
	return total, longest
}

type group struct {
	key     string
	members map[*subscriber]struct{}
	ready   chan struct{} // closed once the group's subscription started (or failed to)
	started bool          // its members count in joined
	over    bool          // left the map: no subscriber joins it any more
	cancel  context.CancelFunc
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = (*Fanout)(nil)

func (*Fanout) ExtensionName() string                   { return "Fanout" }
func (*Fanout) Validate(graphql.ExecutableSchema) error { return nil }

func (f *Fanout) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	if op.Operation == nil || op.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	key, ok := groupKey(ctx, op)
	if !ok {
		return next(ctx) // variables that cannot be told apart: on its own
	}
	m := newSubscriber()
	if p, _ := ctx.Value(pushKey{}).(pusher); p != nil {
		m.push = p
		p.attach()
	}
	f.mu.Lock()
	g := f.groups[key]
	if g == nil {
		g = &group{key: key, members: map[*subscriber]struct{}{m: {}}, ready: make(chan struct{})}
		f.groups[key] = g
		f.mu.Unlock()
		f.start(ctx, g, next)
	} else {
		g.members[m] = struct{}{}
		if g.started {
			f.joined++
		}
		f.mu.Unlock()
		select {
		case <-g.ready: // its subscription is there: every change from now on reaches it
		case <-ctx.Done():
		}
	}
	stop := context.AfterFunc(ctx, func() { f.leave(g, m) })
	ended := false
	// The subscriber's own context, not the one it is called with: the executor hands the
	// group's to the first subscriber's transport.
	return func(context.Context) *graphql.Response {
		if ended {
			return nil
		}
		if resp := m.next(ctx); resp != nil {
			return resp
		}
		ended = true
		stop()
		f.leave(g, m)
		errs := m.endErrors()
		if len(errs) == 0 {
			return nil // a normal end: the client's, the server's shutdown
		}
		if f.streams != nil {
			f.streams.EventsDropped(streamTransport(ctx))
		}
		// As streamEnds would for a subscription of its own: over a websocket an error message
		// for the operation, over server-sent events an event carrying the error.
		if overWebsocket(op.Headers) && addSubscriptionErrors(ctx, errs) {
			return nil
		}
		return &graphql.Response{Errors: errs}
	}
}

// addSubscriptionErrors makes errs the operation's error message, where ctx takes one (gqlgen's
// websocket transport makes it so); false where it does not.
func addSubscriptionErrors(ctx context.Context, errs gqlerror.List) (ok bool) {
	defer func() {
		if recover() != nil { // AddSubscriptionError dereferences what the transport put there
			ok = false
		}
	}()
	for _, e := range errs {
		transport.AddSubscriptionError(ctx, e)
	}
	return true
}

// start runs the group's subscription, with a context of its own that ends when its last
// subscriber leaves, and sends its responses to its subscribers.
func (f *Fanout) start(ctx context.Context, g *group, next graphql.OperationHandler) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	// The group's stream reports its end to each of its subscribers (see streamEnds).
	gctx, reason := events.WithEndReason(gctx)
	end := &streamEnd{reason: reason, shared: true}
	gctx = context.WithValue(gctx, streamEndKey{}, end)
	gctx = context.WithValue(gctx, pushKey{}, nil) // the first subscriber's, not the group's
	respond := next(gctx)
	f.mu.Lock()
	g.started = true
	f.joined += len(g.members)
	f.mu.Unlock()
	close(g.ready)
	go f.pump(gctx, g, end, respond)
}

func (f *Fanout) pump(ctx context.Context, g *group, end *streamEnd, respond graphql.ResponseHandler) {
	defer g.cancel()
	var errs gqlerror.List
	for {
		resp := respond(ctx)
		if resp == nil {
			break
		}
		if end.reported { // the stream ended with EVENTS_DROPPED: each subscriber ends so
			errs = resp.Errors
			break
		}
		// The executor writes every event's data into the same buffer (see graph/generated.go):
		// a response queued to be sent later must hold its own copy, or the next event
		// overwrites it.
		resp.Data = bytes.Clone(resp.Data)
		ev := &fanEvent{resp: resp}
		f.mu.Lock()
		for m := range g.members {
			if !m.deliver(ev, f.buffer) {
				// Behind by the whole buffer: this subscriber ends, alone.
				f.remove(g, m)
				m.finish(gqlerror.List{f.present(ctx, events.Dropped(fmt.Sprintf("the subscriber fell %d events behind", f.buffer)))})
			}
		}
		if len(g.members) == 0 { // all of them fell behind: nobody to resolve events for
			f.close(g)
			g.cancel()
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.close(g)
	for m := range g.members {
		f.remove(g, m)
		m.finish(errs)
	}
}

// fanEvent is one response of a group, serialised once for every subscriber that sends it as
// it is (see pusher).
type fanEvent struct {
	resp *graphql.Response
	once sync.Once
	data []byte
}

func (e *fanEvent) json() []byte {
	e.once.Do(func() {
		var err error
		if e.data, err = json.Marshal(e.resp); err != nil {
			e.data = []byte(`{"errors":[{"message":"the event could not be written"}]}`)
		}
	})
	return e.data
}

// A pusher is a subscriber's transport that takes the group's events itself, with no goroutine
// of its own waiting for them (the graphql-transport-ws connection): the subscriber's context
// carries it (pushKey).
type pusher interface {
	attach()                // the operation is a group's subscriber: it ends by end, or by its context
	push(ev *fanEvent) bool // queues ev to be sent; false when max are queued already
	end(errs gqlerror.List) // nothing more comes: errs when events were lost
	queued() int            // events waiting to be sent
}

type pushKey struct{}

// deliver hands ev to the subscriber's pusher or queue; false when it is behind by max.
func (m *subscriber) deliver(ev *fanEvent, max int) bool {
	if m.push != nil {
		return m.push.push(ev)
	}
	return m.offer(ev.resp, max)
}

// finish ends the subscriber: nothing more comes.
func (m *subscriber) finish(errs gqlerror.List) {
	if m.push != nil {
		m.push.end(errs)
		return
	}
	m.end(errs)
}

// leave takes a subscriber out of its group; the last one out ends the group.
func (f *Fanout) leave(g *group, m *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remove(g, m)
	if len(g.members) == 0 {
		f.close(g)
		g.cancel()
	}
}

// remove takes m out of g; f.mu is held.
func (f *Fanout) remove(g *group, m *subscriber) {
	if _, ok := g.members[m]; !ok {
		return
	}
	delete(g.members, m)
	if g.started {
		f.joined--
	}
}

// close takes g out of the map: a subscriber that comes now starts a group of its own. f.mu is
// held.
func (f *Fanout) close(g *group) {
	if !g.over {
		g.over = true
		if f.groups[g.key] == g {
			delete(f.groups, g.key)
		}
	}
}

// groupKey tells which subscriptions are the same: the same document, operation and variables,
// for the same caller.
func groupKey(ctx context.Context, op *graphql.OperationContext) (string, bool) {
	vars, err := json.Marshal(op.Variables) // a map's keys in order
	if err != nil {
		return "", false
	}
	var b strings.Builder
	for _, part := range []string{op.RawQuery, op.OperationName, string(vars), auth.Visibility(ctx)} {
		fmt.Fprintf(&b, "%d:%s", len(part), part)
	}
	return b.String(), true
}

// subscriber is one subscriber of a group: the responses it has yet to send, in order.
type subscriber struct {
	wake chan struct{} // a response was queued, or the end came
	push pusher        // nil: its responses wait in queue, for its handler

	mu    sync.Mutex
	queue []*graphql.Response
	over  bool          // nothing more comes
	errs  gqlerror.List // why it ended, if events were lost
}

func newSubscriber() *subscriber { return &subscriber{wake: make(chan struct{}, 1)} }

// offer queues resp unless max are queued already.
func (m *subscriber) offer(resp *graphql.Response, max int) bool {
	m.mu.Lock()
	if m.over {
		m.mu.Unlock()
		return true
	}
	if len(m.queue) >= max {
		m.mu.Unlock()
		return false
	}
	m.queue = append(m.queue, resp)
	m.mu.Unlock()
	m.signal()
	return true
}

// end says nothing more comes, with why if events were lost.
func (m *subscriber) end(errs gqlerror.List) {
	m.mu.Lock()
	if !m.over {
		m.over, m.errs = true, errs
	}
	m.mu.Unlock()
	m.signal()
}

func (m *subscriber) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// next returns the next response, waiting for it; nil once the group ended and everything
// queued was taken, or ctx ended.
func (m *subscriber) next(ctx context.Context) *graphql.Response {
	for {
		m.mu.Lock()
		if len(m.queue) > 0 {
			resp := m.queue[0]
			m.queue[0] = nil
			m.queue = m.queue[1:]
			if len(m.queue) == 0 {
				m.queue = nil // its array goes
			}
			m.mu.Unlock()
			return resp
		}
		over := m.over
		m.mu.Unlock()
		if over {
			return nil
		}
		select {
		case <-m.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *subscriber) endErrors() gqlerror.List {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errs
}

func (m *subscriber) queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}
