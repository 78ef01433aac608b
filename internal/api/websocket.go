package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/jsontext"
)

// websocketTransport is gqlgen's websocket transport with what graphql-transport-ws asks of a
// server and gqlgen does not do: a subscribe with the id of an open operation closes the socket
// with 4409, and a socket without connection_init within InitTimeout closes with 4408 (gqlgen
// closes with 1002); and what RFC 6455 asks and coder/websocket leaves to its user: a message
// that is not UTF-8 closes the socket with 1007. It also gives each connection the count of its open operations, which
// subscriptionLimits bounds.
type websocketTransport struct {
	transport.Websocket
	logger  *slog.Logger
	streams StreamObserver
	modern  *wsServer // graphql-transport-ws (nil: gqlgen's transport serves it too)
}

type socketKey struct{}

// socket is one websocket connection's open operations, and the documentId of the subscribe
// message read last, until its operation takes it (documentIDOf: gqlgen reads a message and
// creates its operation in turn, on the connection's one reading goroutine).
type socket struct {
	open       atomic.Int64
	documentID atomic.Pointer[string]
	conn       atomic.Pointer[strictConn]
}

func socketOf(ctx context.Context) *socket {
	s, _ := ctx.Value(socketKey{}).(*socket)
	return s
}

func (t websocketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ws := t.Websocket
	impl := ws.Implementation
	if impl == nil {
		impl = transport.CoderWebsocketImplementation{}
	}
	ws.Implementation = strictImplementation{impl: impl, initTimeout: ws.InitTimeout, logger: t.logger, streams: t.streams}
	ws.InitTimeout = 0 // the connection's own timer closes it, with the protocol's code
	sock := &socket{}
	r = r.WithContext(context.WithValue(r.Context(), socketKey{}, sock))
	if t.modern != nil && offersTransportWS(r) {
		t.modern.serve(w, r, exec)
		return
	}
	ws.Do(w, r, exec)
	if c := sock.conn.Load(); c != nil {
		c.finish()
	}
}

type strictImplementation struct {
	impl        transport.WebsocketImplementation
	initTimeout time.Duration
	logger      *slog.Logger
	streams     StreamObserver
}

func (i strictImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := i.impl.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	c := &strictConn{WebsocketConn: conn, modern: conn.Subprotocol() == transportWS, open: map[string]bool{}, socket: socketOf(r.Context()),
		socketClose: socketClose{ctx: r.Context(), remote: r.RemoteAddr, opened: time.Now(), logger: i.logger, streams: i.streams, sock: socketOf(r.Context())}}
	c.mu.Lock()
	if i.initTimeout > 0 {
		c.initTimer = time.AfterFunc(i.initTimeout, c.initTimedOut)
	}
	// gqlgen waits for connection_init with no context: at shutdown (the request's context
	// ends) a socket that has not started is closed at once, as a started one is.
	c.shutdown = context.AfterFunc(r.Context(), c.closeUnstarted)
	c.mu.Unlock()
	if c.socket != nil {
		c.socket.conn.Store(c)
	}
	return c, nil
}

// closeUnstarted closes the socket at shutdown if no message came yet.
func (c *strictConn) closeUnstarted() {
	c.mu.Lock()
	started, ended := c.started, c.peerEnded || c.closeSent || c.finished
	c.mu.Unlock()
	if !started && !ended {
		_ = c.WriteClose(1001, "the server is stopping") // counted as a shutdown: the context ended
	}
}

// finish runs once gqlgen is done with the socket: unless a close went out or the client ended
// it, gqlgen returned without closing it (a connection_init whose payload is not an object), and
// it would stay open, unread, for ever: it is closed, as a protocol error.
func (c *strictConn) finish() {
	c.mu.Lock()
	c.finished = true
	open := !c.closeSent && !c.peerEnded
	c.mu.Unlock()
	if c.shutdown != nil {
		c.shutdown()
	}
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	if open {
		c.mu.Lock()
		c.badMessage = true
		c.mu.Unlock()
		code := transport.WebsocketCloseProtocolError
		if c.modern {
			code = 4400
		}
		_ = c.WriteClose(code, "the message could not be taken")
	}
}

func (c *strictConn) sawBadMessage() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.badMessage
}

// knownMessage are the types of message a client sends, in either protocol.
var knownMessage = map[string]bool{
	"connection_init": true, "ping": true, "pong": true, "subscribe": true, "complete": true, // graphql-transport-ws
	"start": true, "stop": true, "connection_terminate": true, // graphql-ws
}

const transportWS = "graphql-transport-ws"

// websocketInvalidPayload is RFC 6455's close code for a message whose data does not fit its
// type (text that is not UTF-8).
const websocketInvalidPayload = 1007

// strictConn watches the messages gqlgen reads and writes for the ids of open operations.
type strictConn struct {
	transport.WebsocketConn
	modern bool    // graphql-transport-ws, not the legacy graphql-ws
	socket *socket // nil: not made by websocketTransport

	mu         sync.Mutex
	initTimer  *time.Timer
	started    bool // the first message came
	timedOut   bool
	open       map[string]bool // ids subscribed and not yet completed by either side
	deadline   time.Time       // the read deadline set last (gqlgen's wait for a pong)
	peerEnded  bool            // the client closed, went away or asked to end
	badMessage bool            // a message gqlgen cannot take came: it ends the connection
	closeSent  bool            // a close frame went out (WriteClose)
	finished   bool            // gqlgen is done with it
	shutdown   func() bool     // stops the close at shutdown of a socket not yet started

	socketClose
}

// socketClose is what a close by the server is told to: the request's context (its id for the
// log line; its end is the server's shutdown), the client's address, when the socket opened.
type socketClose struct {
	ctx     context.Context
	remote  string
	opened  time.Time
	logger  *slog.Logger
	streams StreamObserver
	sock    *socket // its open operations, for the log line (nil: not counted)

	closeMu     sync.Mutex
	closeReason string // why the server closed it, once it did
}

var (
	_ transport.WebsocketReadLimiter   = (*strictConn)(nil)
	_ transport.WebsocketReadDeadliner = (*strictConn)(nil)
)

func (c *strictConn) initTimedOut() {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return
	}
	c.timedOut = true
	c.mu.Unlock()
	if c.ctx != nil && c.ctx.Err() != nil {
		c.closedByServer(closeShutdown, 1001)
	}
	if c.modern {
		c.closedByServer(closeInitTimeout, 4408)
		_ = c.WriteClose(4408, "Connection initialisation timeout")
	} else {
		c.closedByServer(closeInitTimeout, transport.WebsocketCloseProtocolError)
		_ = c.WriteClose(transport.WebsocketCloseProtocolError, "connection initialisation timeout")
	}
}

func (c *strictConn) NextReader() (int, io.Reader, error) {
	typ, r, err := c.WebsocketConn.NextReader()
	if err != nil {
		c.readFailed(err)
		return typ, r, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return typ, nil, err
	}
	if !utf8.Valid(data) {
		// A message is JSON, which is UTF-8; decoded, each stray byte would become U+FFFD and
		// be stored in place of what the client meant. RFC 6455 closes with 1007.
		c.closedByServer(closeInvalidUTF8, websocketInvalidPayload)
		_ = c.WriteClose(websocketInvalidPayload, "a message is not valid UTF-8")
		return typ, nil, transport.ErrWebsocketClosed
	}
	if jsontext.LoneSurrogate(data) >= 0 {
		// As good as a stray byte: decoded, "\udfff" becomes U+FFFD too.
		c.closedByServer(closeInvalidUTF8, websocketInvalidPayload)
		_ = c.WriteClose(websocketInvalidPayload, "a message holds half of a UTF-16 surrogate pair")
		return typ, nil, transport.ErrWebsocketClosed
	}
	var msg struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Payload struct {
			DocumentID json.RawMessage `json:"documentId"` // a trusted document's id, beside query
		} `json:"payload"`
	}
	// Read as gqlgen reads it, with a json.Decoder (which ignores what follows the value, where
	// json.Unmarshal refuses the message): read otherwise, a message with a byte after its JSON
	// would run in gqlgen unseen here, with the documentId of an earlier one and past the
	// duplicate-id check. gqlgen answers a malformed message itself.
	bad := json.NewDecoder(bytes.NewReader(data)).Decode(&msg) != nil || !knownMessage[msg.Type]
	if c.socket != nil {
		// Each message's own id or none: an earlier message's never carries over.
		if id, ok := documentIDValue(msg.Payload.DocumentID); ok && (msg.Type == "subscribe" || msg.Type == "start") {
			c.socket.documentID.Store(&id)
		} else {
			c.socket.documentID.Store(nil)
		}
	}

	c.mu.Lock()
	if msg.Type == "connection_terminate" { // legacy graphql-ws: the client ends the connection
		c.peerEnded = true
	}
	// gqlgen ends the connection on such a message, with a close that does not say why.
	c.badMessage = c.badMessage || bad
	if !c.started {
		if c.timedOut {
			c.mu.Unlock()
			return typ, nil, transport.ErrWebsocketClosed
		}
		c.started = true
		if c.initTimer != nil {
			c.initTimer.Stop()
		}
		if c.shutdown != nil {
			c.shutdown()
		}
	}
	if c.modern {
		switch msg.Type {
		case "subscribe":
			if c.open[msg.ID] {
				c.mu.Unlock()
				c.closedByServer(closeDuplicateID, 4409)
				_ = c.WriteClose(4409, "Subscriber for "+shortID(msg.ID)+" already exists")
				return typ, nil, transport.ErrWebsocketClosed // gqlgen ends the connection quietly
			}
			c.open[msg.ID] = true
		case "complete":
			delete(c.open, msg.ID)
		}
	}
	c.mu.Unlock()
	return typ, bytes.NewReader(data), nil
}

// WriteJSON forgets an operation's id as its end is sent, so the client may use it again as soon
// as it reads the end.
func (c *strictConn) WriteJSON(v any) error {
	if c.modern {
		if typ, id, ok := messageOf(v); ok && (typ == "complete" || typ == "error") {
			c.mu.Lock()
			delete(c.open, id)
			c.mu.Unlock()
		}
	}
	return c.WebsocketConn.WriteJSON(v)
}

// messageOf reads the type and id of a message gqlgen sends (a struct of its own with exported
// Type and ID fields).
func messageOf(v any) (typ, id string, ok bool) {
	rv := reflect.Indirect(reflect.ValueOf(v))
	if rv.Kind() != reflect.Struct {
		return "", "", false
	}
	t, i := rv.FieldByName("Type"), rv.FieldByName("ID")
	if t.Kind() != reflect.String || i.Kind() != reflect.String {
		return "", "", false
	}
	return t.String(), i.String(), true
}

// WriteClose is every close gqlgen sends (and ours): unless the client ended the connection
// first, it is the server's, and counted with its reason.
func (c *strictConn) WriteClose(code int, reason string) error {
	c.mu.Lock()
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	peerEnded := c.peerEnded
	c.closeSent = true
	c.mu.Unlock()
	if !peerEnded {
		switch {
		case c.ctx != nil && c.ctx.Err() != nil:
			// The request's context ends when the server shuts down (its streams end first).
			c.closedByServer(closeShutdown, code)
		case code == transport.WebsocketCloseProtocolError || c.sawBadMessage():
			c.closedByServer(closeProtocolError, code) // an unexpected or undecodable message
		case code >= 4400 && code < 4500:
			c.closedByServer(closeInitRefused, code) // the connection_init was refused (a bad token: 4403)
		default:
			c.closedByServer(closeOther, code)
		}
	}
	return c.WebsocketConn.WriteClose(code, reason)
}

// Reasons for closing a socket, the label of wikigraph_websocket_closed_by_server_total.
const (
	closeMissedPong    = "missed_pong"     // no pong within twice WS_KEEPALIVE of a ping (clients see 1006)
	closeInitTimeout   = "init_timeout"    // no connection_init within WS_INIT_TIMEOUT
	closeInitRefused   = "init_refused"    // connection_init refused (4403: a bad token)
	closeDuplicateID   = "duplicate_id"    // a subscribe reusing the id of an open operation (4409)
	closeInvalidUTF8   = "invalid_utf8"    // a message that is not UTF-8 (1007)
	closeMessageTooBig = "message_too_big" // a message over the read limit (1009)
	closeProtocolError = "protocol_error"  // an unexpected or undecodable message (1002)
	closeShutdown      = "shutdown"        // the server is stopping
	closeWriteTimeout  = "write_timeout"   // a write waited longer than it may: the client does not read
	closeQueueFull     = "queue_full"      // answers piled up unread (1008)
	closeOther         = "other"
)

// readFailed tells why a read failed: the deadline gqlgen set waiting for a pong (the adapter
// drops the connection then, without a close frame), a message over the read limit, or else
// the client closed or went away.
func (c *strictConn) readFailed(err error) {
	c.mu.Lock()
	deadline := c.deadline
	c.mu.Unlock()
	switch {
	case !deadline.IsZero() && !time.Now().Before(deadline):
		c.closedByServer(closeMissedPong, 1006)
	case strings.Contains(err.Error(), "read limited at"): // coder/websocket closed it with 1009
		c.closedByServer(closeMessageTooBig, 1009)
	default:
		c.mu.Lock()
		c.peerEnded = true
		c.mu.Unlock()
	}
}

// closedByServer counts and logs the server's close of the socket, once: the first reason wins
// (gqlgen sends its own close after a missed pong, say).
func (c *socketClose) closedByServer(reason string, code int) {
	c.closeMu.Lock()
	if c.closeReason != "" {
		c.closeMu.Unlock()
		return
	}
	c.closeReason = reason
	c.closeMu.Unlock()
	if c.streams != nil {
		c.streams.SocketClosed(reason)
	}
	if c.logger != nil {
		var open int64
		if c.sock != nil {
			open = c.sock.open.Load()
		}
		ctx := c.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		// At shutdown every socket closes; what a client's own message or silence caused, a
		// hostile client can cause by the thousand: counted, and logged only at debug level.
		// A missed pong (a client too slow or gone) and the unexplained ones stay at info.
		level := slog.LevelInfo
		if reason != closeMissedPong && reason != closeOther {
			level = slog.LevelDebug
		}
		c.logger.LogAttrs(context.WithoutCancel(ctx), level, "websocket closed by the server",
			slog.String("reason", reason), slog.Int("code", code), slog.String("remote", c.remote),
			slog.Int64("operations_open", open), slog.Int64("open_ms", time.Since(c.opened).Milliseconds()))
	}
}

func (c *strictConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *strictConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// subscriptionLimits bounds the operations open on one websocket and the subscriptions open on
// the instance; over either, the operation is refused with TOO_MANY_SUBSCRIPTIONS before it
// runs. An operation counts until its last response, or until its context ends.
type subscriptionLimits struct {
	perConnection int64
	total         int64
	observer      Observer
	streams       StreamObserver // nil: nobody
	open          atomic.Int64   // subscriptions on the instance
}

var _ graphql.OperationInterceptor = (*subscriptionLimits)(nil)

func (*subscriptionLimits) ExtensionName() string                   { return "SubscriptionLimits" }
func (*subscriptionLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l *subscriptionLimits) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	sock := socketOf(ctx)
	isSub := op.Operation != nil && op.Operation.Operation == ast.Subscription
	if op.Operation == nil || (sock == nil && !isSub) {
		return next(ctx)
	}
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	if sock != nil {
		releases = append(releases, func() { sock.open.Add(-1) })
		if sock.open.Add(1) > l.perConnection {
			release()
			return l.refuse(ctx, "this connection has as many operations open as it may: complete one first, or open another connection")
		}
	}
	if isSub {
		releases = append(releases, func() { l.open.Add(-1) })
		if l.open.Add(1) > l.total {
			release()
			return l.refuse(ctx, "the server holds as many subscriptions as it may: try again later")
		}
	}
	// Admitted: a subscriber of its transport until it ends, each response an event sent.
	// (A subscription over plain POST or GET has no stream: refused next, it counts nowhere.)
	var counted string
	if isSub && l.streams != nil {
		counted = streamTransport(ctx)
	}
	if counted != "" {
		l.streams.Subscribers(counted, 1)
		releases = append(releases, func() { l.streams.Subscribers(counted, -1) })
	}
	var once sync.Once
	done := func() { once.Do(release) }
	stop := context.AfterFunc(ctx, done) // whatever way it ends
	if op, _ := ctx.Value(wsOpKey{}).(*wsOp); op != nil {
		// And at once as it ends: a client that completes an operation may open another
		// straight away (AfterFunc runs later, on a goroutine of its own).
		op.onEnd(done)
	}
	respond := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := respond(ctx)
		if counted != "" && resp != nil && resp.Data != nil {
			l.streams.EventSent(counted)
		}
		if resp == nil {
			// Its last response: released before gqlgen sends complete, so a client that reads
			// complete may subscribe again at once.
			stop()
			done()
		}
		return resp
	}
}

func (l *subscriptionLimits) refuse(ctx context.Context, msg string) graphql.ResponseHandler {
	l.observer.Error(string(apperr.TooManySubscriptions))
	err := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(apperr.TooManySubscriptions)}}
	if socketOf(ctx) != nil {
		addOperationError(ctx, err) // sent as the operation's error message
		return func(context.Context) *graphql.Response { return nil }
	}
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{err}})
}

// shortID is an operation id as a close reason may quote it: a reason is at most 123 bytes.
func shortID(id string) string {
	if len(id) <= 80 {
		return id
	}
	cut := 77
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "..."
}
