package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wikigraph/wikigraph/internal/jsontext"
)

// wsServer serves graphql-transport-ws itself, for what a connection costs: gqlgen's transport
// holds four goroutines per connection and one more per operation, and serialises every event
// once per subscriber. Here a connection is the one goroutine reading it; a subscription has no
// goroutine (Fanout pushes each event's one serialised payload into the connection's queue); a
// goroutine writes a connection's queue only while it holds something, and pings are timers.
// The legacy graphql-ws protocol stays with gqlgen's transport (websocketTransport).
type wsServer struct {
	accept       websocket.AcceptOptions
	initFunc     transport.WebsocketInitFunc
	initTimeout  time.Duration
	keepAlive    time.Duration
	writeTimeout time.Duration // a write that takes longer ends the connection (the client does not read)
	readLimit    int64
	buffer       int // events one subscription may have waiting to be sent
	logger       *slog.Logger
	streams      StreamObserver
}

// offersTransportWS reports whether the client asks for graphql-transport-ws and not for the
// legacy graphql-ws (which gqlgen's transport picks first, as it always did).
func offersTransportWS(r *http.Request) bool {
	modern := false
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			switch strings.TrimSpace(p) {
			case transportWS:
				modern = true
			case "graphql-ws":
				return false
			}
		}
	}
	return modern
}

func (s *wsServer) serve(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	opts := s.accept
	opts.Subprotocols = []string{transportWS}
	hw := &batchingHijack{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &opts)
	if err != nil {
		s.logger.LogAttrs(r.Context(), slog.LevelDebug, "websocket not accepted", slog.String("error", err.Error()))
		return // Accept answered the request
	}
	conn.SetReadLimit(s.readLimit)
	ctx := r.Context()
	newConn := func(ctx context.Context) *wsConn {
		return &wsConn{
			srv: s, conn: conn, out: hw.conn, exec: exec, headers: r.Header, ops: map[string]*wsOp{},
			socketClose: socketClose{ctx: ctx, remote: r.RemoteAddr, opened: time.Now(), logger: s.logger,
				streams: s.streams, sock: socketOf(ctx)},
		}
	}
	life, _ := ctx.Value(lifetimeKey{}).(context.Context)
	if life == nil {
		newConn(ctx).run(ctx)
		return
	}
	// The connection outlives its request's handler: net/http keeps a connection's two 4 KB
	// buffers, and the handler's goroutine its stack, until the handler returns, for nothing
	// once the connection is hijacked. Its context keeps the request's values and ends with the
	// server (life).
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(life, cancel)
	c := newConn(ctx)
	go func() {
		defer cancel()
		defer stop()
		c.run(ctx)
	}()
}

type lifetimeKey struct{}

// WithLifetime gives a request the context of the server's life (it ends at shutdown): a
// websocket it opens is then served past the request's handler, until the connection or that
// context ends.
func WithLifetime(ctx, life context.Context) context.Context {
	return context.WithValue(ctx, lifetimeKey{}, life)
}

// wsConn is one graphql-transport-ws connection.
type wsConn struct {
	srv     *wsServer
	conn    *websocket.Conn
	out     *batchConn // what conn writes to
	exec    graphql.GraphExecutor
	headers http.Header
	socketClose

	opCtx  context.Context // its operations': the upgrade request's, as connection_init made it
	cancel context.CancelFunc

	mu         sync.Mutex
	timer      *time.Timer // connection_init's deadline, then the next ping
	initDone   bool        // connection_init came
	acked      bool
	pinged     time.Time // the first ping not yet followed by a message from the client
	ops        map[string]*wsOp
	queue      []wsOut
	events     int  // of the queue, subscriptions' events
	otherBytes int  // of the queue, the other messages' bytes
	writing    bool // a goroutine writes the queue
	writeTimer *time.Timer
	ending     bool // a close went out or the connection failed: nothing more is written
}

// wsOut is a message to send: data, or a subscription's event (op's id around ev's payload).
type wsOut struct {
	data []byte
	op   *wsOp
	ev   *fanEvent
}

// wsOp is an operation open on the connection.
type wsOp struct {
	c      *wsConn
	id     string
	idJSON []byte
	cancel context.CancelFunc

	mu       sync.Mutex
	attached bool          // a Fanout subscriber: Fanout ends it
	pending  int           // events queued, not yet written
	errs     gqlerror.List // its error message (addOperationError)
	over     bool
	ends     []func() // called as it ends (onEnd)
}

type wsOpKey struct{}

// addOperationError makes err part of the operation's error message, sent instead of complete
// when it ends: on this transport, or gqlgen's websocket.
func addOperationError(ctx context.Context, err *gqlerror.Error) {
	if op, _ := ctx.Value(wsOpKey{}).(*wsOp); op != nil {
		op.mu.Lock()
		op.errs = append(op.errs, err)
		op.mu.Unlock()
		return
	}
	transport.AddSubscriptionError(ctx, err)
}

func (c *wsConn) run(ctx context.Context) {
	c.opCtx, c.cancel = context.WithCancel(ctx)
	defer c.cancel() // every operation ends with the connection
	c.mu.Lock()
	c.timer = time.AfterFunc(c.srv.initTimeout, c.initTimedOut)
	c.mu.Unlock()
	// At shutdown the request's context ends: the socket closes, going away.
	stop := context.AfterFunc(ctx, func() { c.closeWith(closeShutdown, websocket.StatusGoingAway, "the server is stopping") })
	defer stop()
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.readFailed(err)
			break
		}
		if !c.handle(data) {
			break
		}
	}
	c.mu.Lock()
	c.timer.Stop()
	if c.writeTimer != nil {
		c.writeTimer.Stop()
	}
	c.ending = true
	ops := c.ops
	c.ops = map[string]*wsOp{}
	c.mu.Unlock()
	for _, op := range ops {
		op.cancel()
	}
}

func (c *wsConn) initTimedOut() {
	c.mu.Lock()
	done := c.initDone
	c.mu.Unlock()
	if !done {
		c.closeWith(closeInitTimeout, 4408, "Connection initialisation timeout")
	}
}

// readFailed tells why a read failed: a message over the read limit, the server's own close,
// or else the client closed or went away.
func (c *wsConn) readFailed(err error) {
	if strings.Contains(err.Error(), "read limited at") { // coder/websocket closed it with 1009
		c.closedByServer(closeMessageTooBig, int(websocket.StatusMessageTooBig))
	}
	c.mu.Lock()
	c.ending = true
	c.mu.Unlock()
}

// clientMessage is a message of graphql-transport-ws, as a client sends it.
type clientMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// handle takes one message; false when the connection ends.
func (c *wsConn) handle(data []byte) bool {
	if !utf8.Valid(data) {
		// JSON is UTF-8; decoded, each stray byte would become U+FFFD and be stored in place of
		// what the client meant. RFC 6455 closes with 1007.
		c.closeWith(closeInvalidUTF8, websocket.StatusInvalidFramePayloadData, "a message is not valid UTF-8")
		return false
	}
	if jsontext.LoneSurrogate(data) >= 0 {
		c.closeWith(closeInvalidUTF8, websocket.StatusInvalidFramePayloadData, "a message holds half of a UTF-16 surrogate pair")
		return false
	}
	var msg clientMessage
	// A json.Decoder, as gqlgen reads a message: what follows the value is ignored.
	if json.NewDecoder(bytes.NewReader(data)).Decode(&msg) != nil {
		c.closeWith(closeProtocolError, 4400, "Invalid message received")
		return false
	}
	c.mu.Lock()
	c.pinged = time.Time{} // the client is there
	initDone, acked := c.initDone, c.acked
	c.mu.Unlock()
	switch msg.Type {
	case "connection_init":
		if initDone {
			c.closeWith(closeProtocolError, 4429, "Too many initialisation requests")
			return false
		}
		return c.init(msg.Payload)
	case "ping":
		c.send(message(msg.Payload, "", "pong"))
	case "pong":
	case "subscribe":
		if !acked {
			c.closeWith(closeProtocolError, 4401, "Unauthorized")
			return false
		}
		return c.subscribe(msg.ID, msg.Payload)
	case "complete":
		c.mu.Lock()
		op := c.ops[msg.ID]
		if op != nil {
			delete(c.ops, msg.ID)
		}
		c.mu.Unlock()
		if op != nil {
			op.finish(nil, true)
		}
	default:
		c.closeWith(closeProtocolError, 4400, "Invalid message received")
		return false
	}
	return true
}

func (c *wsConn) init(payload json.RawMessage) bool {
	c.mu.Lock()
	c.initDone = true
	c.timer.Stop()
	c.mu.Unlock()
	var init transport.InitPayload
	if len(payload) > 0 && json.Unmarshal(payload, &init) != nil {
		c.closeWith(closeProtocolError, 4400, "the connection_init payload is not an object")
		return false
	}
	var ack *transport.InitPayload
	if c.srv.initFunc != nil {
		ctx, a, err := c.srv.initFunc(c.opCtx, init)
		if err != nil {
			c.closeWith(closeInitRefused, 4403, "Forbidden: "+shortReason(err.Error()))
			return false
		}
		c.opCtx, ack = ctx, a
	}
	var ackPayload json.RawMessage
	if ack != nil {
		ackPayload, _ = json.Marshal(*ack)
	}
	c.mu.Lock()
	c.acked = true
	c.timer = time.AfterFunc(c.srv.keepAlive, c.ping)
	c.mu.Unlock()
	c.send(message(ackPayload, "", "connection_ack"))
	return true
}

// ping sends a ping each keep-alive interval; a client that sent nothing for two intervals
// after one is taken for gone, and its socket dropped (clients see 1006, as with gqlgen).
func (c *wsConn) ping() {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	if !c.pinged.IsZero() && now.Sub(c.pinged) >= 2*c.srv.keepAlive {
		c.ending = true
		c.mu.Unlock()
		c.closedByServer(closeMissedPong, 1006)
		_ = c.conn.CloseNow()
		return
	}
	if c.pinged.IsZero() {
		c.pinged = now
	}
	c.timer.Reset(c.srv.keepAlive)
	c.mu.Unlock()
	c.send(pingMessage)
}

var pingMessage = []byte(`{"type":"ping"}`)

func (c *wsConn) subscribe(id string, payload json.RawMessage) bool {
	c.mu.Lock()
	if _, open := c.ops[id]; open {
		c.mu.Unlock()
		c.closeWith(closeDuplicateID, 4409, "Subscriber for "+shortID(id)+" already exists")
		return false
	}
	c.mu.Unlock()
	if c.sock != nil {
		var p struct {
			DocumentID json.RawMessage `json:"documentId"` // a trusted document's id, beside query
		}
		_ = json.Unmarshal(payload, &p)
		if docID, ok := documentIDValue(p.DocumentID); ok {
			c.sock.documentID.Store(&docID)
		} else {
			c.sock.documentID.Store(nil)
		}
	}
	idJSON, _ := json.Marshal(id)
	op := &wsOp{c: c, id: id, idJSON: idJSON}
	start := graphql.Now()
	ctx := graphql.StartOperationTrace(c.opCtx)
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		c.send(errorMessage(idJSON, gqlerror.List{{Message: "invalid json"}}))
		c.send(message(nil, string(idJSON), "complete")) // as gqlgen does: clients ignore it
		return true
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	params.Headers = c.headers
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		// As gqlgen answers it: the error message (or a response with the errors), then complete.
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			c.send(errorMessage(idJSON, resp.Errors))
		} else {
			c.sendResponse(idJSON, &graphql.Response{Errors: errs})
		}
		c.send(message(nil, string(idJSON), "complete"))
		return true
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	ctx, op.cancel = context.WithCancel(ctx)
	ctx = context.WithValue(ctx, wsOpKey{}, op)
	if rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		ctx = context.WithValue(ctx, pushKey{}, pusher(op))
	}
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		op.cancel()
		return false
	}
	c.ops[id] = op
	c.mu.Unlock()
	go op.execute(ctx, rc)
	return true
}

// execute runs the operation: a Fanout subscriber returns at once (its events are pushed);
// anything else sends each response, then complete, or its error message.
func (op *wsOp) execute(ctx context.Context, rc *graphql.OperationContext) {
	defer func() {
		if r := recover(); r != nil {
			err := rc.Recover(ctx, r)
			var gqlErr *gqlerror.Error
			if !errors.As(err, &gqlErr) {
				gqlErr = &gqlerror.Error{Message: "internal system error"}
			}
			op.finish(gqlerror.List{gqlErr}, false)
		}
	}()
	responses, ctx := op.c.exec.DispatchOperation(ctx, rc)
	op.mu.Lock()
	attached := op.attached
	op.mu.Unlock()
	if attached {
		return
	}
	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		// Nothing once the client completed it: a query's result that comes after its
		// complete is not sent (the protocol says so; its id may be in use again).
		op.mu.Lock()
		if !op.over {
			op.c.sendResponse(op.idJSON, resp)
		}
		op.mu.Unlock()
	}
	op.mu.Lock()
	errs := op.errs
	op.mu.Unlock()
	op.finish(errs, false)
}

// finish ends the operation once: its error message (errs) or complete goes out, unless the
// client ended it (byClient: nothing more is sent for it, as the reference server does; its id
// is free at once) or the connection is ending (at shutdown, the close says it all). What the
// operation holds (its place in the connection's and the instance's limits) is given back
// before finish returns: a client that completes one operation may start another at once.
func (op *wsOp) finish(errs gqlerror.List, byClient bool) {
	op.mu.Lock()
	if op.over {
		op.mu.Unlock()
		return
	}
	op.over = true
	ends := op.ends
	op.ends = nil
	op.mu.Unlock()
	for _, end := range ends {
		end()
	}
	c := op.c
	c.mu.Lock()
	if c.ops[op.id] == op {
		delete(c.ops, op.id)
	}
	c.mu.Unlock()
	op.cancel() // its counts and group let go of it
	if byClient || c.ctx.Err() != nil {
		return
	}
	if len(errs) > 0 {
		c.send(errorMessage(op.idJSON, errs))
	} else {
		c.send(message(nil, string(op.idJSON), "complete"))
	}
}

func (op *wsOp) attach() {
	op.mu.Lock()
	op.attached = true
	op.mu.Unlock()
}

func (op *wsOp) push(ev *fanEvent) bool {
	op.mu.Lock()
	if op.over {
		op.mu.Unlock()
		return true
	}
	if op.pending >= op.c.srv.buffer {
		op.mu.Unlock()
		return false
	}
	// Queued under op.mu: a complete (finish) cannot come between the check and the queue.
	if op.c.enqueue(wsOut{op: op, ev: ev}) {
		op.pending++
	}
	op.mu.Unlock()
	return true
}

// onEnd has end called when the operation ends (finish), if it still runs: false when it ended.
func (op *wsOp) onEnd(end func()) bool {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.over {
		return false
	}
	op.ends = append(op.ends, end)
	return true
}

func (op *wsOp) end(errs gqlerror.List) {
	if len(errs) > 0 && op.c.streams != nil {
		op.c.streams.EventsDropped(transportWebsocket)
	}
	op.finish(errs, false)
}

func (op *wsOp) queued() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.pending
}

// message is a server message with a raw payload (nil: none) and a JSON id ("": none).
func message(payload json.RawMessage, idJSON, typ string) []byte {
	var b bytes.Buffer
	b.WriteString(`{`)
	if idJSON != "" {
		b.WriteString(`"id":`)
		b.WriteString(idJSON)
		b.WriteString(`,`)
	}
	b.WriteString(`"type":"`)
	b.WriteString(typ)
	b.WriteString(`"`)
	if len(payload) > 0 {
		b.WriteString(`,"payload":`)
		b.Write(payload)
	}
	b.WriteString(`}`)
	return b.Bytes()
}

func errorMessage(idJSON []byte, errs gqlerror.List) []byte {
	payload, err := json.Marshal(errs)
	if err != nil {
		payload = []byte(`[{"message":"the error could not be written"}]`)
	}
	return message(payload, string(idJSON), "error")
}

func (c *wsConn) sendResponse(idJSON []byte, resp *graphql.Response) {
	payload, err := json.Marshal(resp)
	if err != nil {
		payload = []byte(`{"errors":[{"message":"the response could not be written"}]}`)
	}
	c.send(message(payload, string(idJSON), "next"))
}

func (c *wsConn) send(data []byte) { c.enqueue(wsOut{data: data}) }

// maxQueuedBytes bounds the bytes of the messages waiting beyond events (a pong echoes its
// ping's payload, up to the read limit).
const maxQueuedBytes = 4 << 20

// maxQueued bounds the messages waiting on one connection beyond its subscriptions' events
// (each bounded by buffer): a client that sends pings, or queries, and reads none of the answers
// is closed before their answers hold much.
const maxQueued = 4096

// enqueue queues a message; a goroutine writes the queue while it holds something. False when
// the connection is ending (nothing more is written).
func (c *wsConn) enqueue(m wsOut) bool {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return false
	}
	if m.ev == nil && (len(c.queue) >= maxQueued+c.events || c.otherBytes+len(m.data) > maxQueuedBytes) {
		c.mu.Unlock()
		c.closeWith(closeQueueFull, websocket.StatusPolicyViolation, "too many answers waiting: read them")
		return false
	}
	if m.ev != nil {
		c.events++
	} else {
		c.otherBytes += len(m.data)
	}
	c.queue = append(c.queue, m)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.drain()
	}
	return true
}

// eventBuffers hold an event's message while it is written (coder/websocket copies it out).
var eventBuffers = sync.Pool{New: func() any { return new([]byte) }}

func (c *wsConn) drain() {
	bufp := eventBuffers.Get().(*[]byte)
	defer eventBuffers.Put(bufp)
	buf := *bufp
	defer func() { *bufp = buf[:0] }()
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.events, c.otherBytes = nil, 0, 0
		if len(batch) == 0 || c.ending {
			c.writing = false
			c.mu.Unlock()
			return
		}
		if c.writeTimer == nil {
			c.writeTimer = time.AfterFunc(time.Hour, c.writeTimedOut)
			c.writeTimer.Stop()
		}
		c.mu.Unlock()
		c.out.begin()
		for i, m := range batch {
			data := m.data
			if m.ev != nil {
				buf = append(buf[:0], `{"id":`...)
				buf = append(buf, m.op.idJSON...)
				buf = append(buf, `,"type":"next","payload":`...)
				buf = append(buf, m.ev.json()...)
				buf = append(buf, '}')
				data = buf
				m.op.mu.Lock()
				m.op.pending--
				m.op.mu.Unlock()
			}
			err := c.conn.Write(context.Background(), websocket.MessageText, data)
			if err == nil && (i == len(batch)-1 || c.out.held() >= maxBatch) {
				// A write waits for the client to read: each (64 KB at most) may take
				// writeTimeout (a timer of the connection's rather than a context: coder/websocket
				// makes a context's deadline cost two allocations and a timer per write).
				c.writeTimer.Reset(c.srv.writeTimeout)
				err = c.out.flush()
				c.writeTimer.Stop()
			}
			if err != nil {
				c.out.end()
				c.writeFailed(batch[i+1:])
				return
			}
			if m.ev != nil && m.ev.resp.Data != nil && c.streams != nil { // an event, not an error
				c.streams.EventSent(transportWebsocket)
			}
		}
		c.out.end()
	}
}

// maxBatch bounds the bytes of messages written to a socket at once.
const maxBatch = 64 << 10

// batchingHijack hands coder/websocket a connection that holds what it writes while a batch is
// under way (batchConn): the messages waiting for a client go out in one system call, where
// coder/websocket flushes each one (the write was half of the server's CPU at 5,000
// subscribers, and a client that lags gets its backlog in fewer, larger writes).
type batchingHijack struct {
	http.ResponseWriter
	conn *batchConn
}

func (h *batchingHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: conn}
	// Buffers of 1 KB, not net/http's 4 KB each: they live as long as the socket, and a message
	// is mostly a few hundred bytes (a larger one is read or written past the buffer). What the
	// server read past the request comes first.
	// (coder/websocket reads through the connection it is given: batchConn.Read.)
	if peeked, _ := brw.Reader.Peek(brw.Reader.Buffered()); len(peeked) > 0 {
		h.conn.unread = bytes.Clone(peeked)
	}
	return h.conn, bufio.NewReadWriter(bufio.NewReaderSize(h.conn, socketBuffer), bufio.NewWriterSize(h.conn, socketBuffer)), nil
}

const socketBuffer = 1 << 10

func (h *batchingHijack) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// batchConn is a connection whose writes, between begin and end, are held and written by flush.
type batchConn struct {
	net.Conn
	unread []byte // read by net/http past the upgrade request: read first (by one reader)

	mu       sync.Mutex
	batching bool
	pending  *[]byte // held writes (a pooled buffer, while batching)
}

var batchBuffers = sync.Pool{New: func() any { return new([]byte) }}

func (b *batchConn) Read(p []byte) (int, error) {
	if len(b.unread) > 0 {
		n := copy(p, b.unread)
		b.unread = b.unread[n:]
		if len(b.unread) == 0 {
			b.unread = nil
		}
		return n, nil
	}
	return b.Conn.Read(p)
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.batching {
		*b.pending = append(*b.pending, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.pending = batchBuffers.Get().(*[]byte)
	b.mu.Unlock()
}

// held is how many bytes wait.
func (b *batchConn) held() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		return 0
	}
	return len(*b.pending)
}

// flush writes what is held (writes still held after it, until end).
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil || len(*b.pending) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.pending)
	*b.pending = (*b.pending)[:0]
	return err
}

// end stops holding writes, and writes what came since the last flush (coder/websocket's close
// frame, say).
func (b *batchConn) end() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		return
	}
	b.batching = false
	if len(*b.pending) > 0 {
		_, _ = b.Conn.Write(*b.pending)
	}
	if cap(*b.pending) <= maxBatch*2 {
		*b.pending = (*b.pending)[:0]
		batchBuffers.Put(b.pending)
	}
	b.pending = nil
}

// writeTimedOut drops a connection whose writes waited writeTimeout: the client does not read.
func (c *wsConn) writeTimedOut() {
	c.mu.Lock()
	ending := c.ending
	c.ending = true
	c.mu.Unlock()
	if !ending {
		c.closedByServer(closeWriteTimeout, 1006)
	}
	_ = c.conn.CloseNow()
}

// writeFailed ends the connection: the client is gone, or does not read (writeTimedOut).
func (c *wsConn) writeFailed(rest []wsOut) {
	for _, m := range rest {
		if m.ev != nil {
			m.op.mu.Lock()
			m.op.pending--
			m.op.mu.Unlock()
		}
	}
	c.mu.Lock()
	c.ending, c.writing, c.queue, c.events, c.otherBytes = true, false, nil, 0, 0
	c.mu.Unlock()
	_ = c.conn.CloseNow()
}

// closeWith closes the socket with code, once, counted and logged with why (unless the server
// is stopping and it was already counted so).
func (c *wsConn) closeWith(why string, code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return
	}
	c.ending = true
	c.queue, c.events, c.otherBytes = nil, 0, 0
	c.mu.Unlock()
	if c.ctx.Err() != nil {
		why = closeShutdown
	}
	c.closedByServer(why, int(code))
	// The close handshake waits for the client's answer: not on the reading goroutine.
	go func() { _ = c.conn.Close(code, reason) }()
}

// shortReason fits a close reason (123 bytes at most).
func shortReason(s string) string {
	if len(s) <= 100 {
		return s
	}
	cut := 97
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
