// Package logging sets up the process's structured logger (log/slog) and carries the request id
// through contexts, so every line logged while serving a request names it.
package logging

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// New returns a logger writing JSON (or text) lines at level to w; lines logged with a context
// that carries a request id get a request_id attribute.
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(requestIDHandler{h})
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

type lineKey struct{}

// Line collects attributes for the one log line a request ends with (the access log line), so
// the layers that serve it (the GraphQL operation's name, type and outcome) add to that line
// rather than write lines of their own: one write per request on the hot path.
type Line struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

// WithLine returns ctx carrying a new Line; the caller logs Line.Attrs when the request ends.
func WithLine(ctx context.Context) (context.Context, *Line) {
	l := &Line{attrs: make([]slog.Attr, 0, 4)}
	return context.WithValue(ctx, lineKey{}, l), l
}

// AddToLine adds attrs to the request's line and reports whether ctx had one (a websocket
// operation has none: its caller logs a line of its own). A request's handler adds before it
// returns, so the line is complete when it is logged.
func AddToLine(ctx context.Context, attrs ...slog.Attr) bool {
	l, ok := ctx.Value(lineKey{}).(*Line)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attrs = append(l.attrs, attrs...)
	return true
}

// Attrs returns a copy of the attributes added so far; nil for a nil Line.
func (l *Line) Attrs() []slog.Attr {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attrs)
}

// Buffered batches log lines into few writes: it writes when its buffer is full, every
// interval, and on Close. One write per request line was a tenth of the server's CPU time
// under load (a write system call each); the price is that lines reach w up to interval late,
// and a process killed outright loses its last interval of lines (Close on every ordinary exit).
type Buffered struct {
	mu     sync.Mutex
	out    io.Writer
	w      *bufio.Writer
	closed bool // lines after Close are written at once
	stop   chan struct{}
	done   chan struct{}
}

// NewBuffered returns a Buffered writing to w.
func NewBuffered(w io.Writer, interval time.Duration) *Buffered {
	b := &Buffered{out: w, w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.mu.Lock()
				b.flush()
				b.mu.Unlock()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

// Write buffers p (one whole line: a line is never split across writes unless longer than
// the buffer).
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w.Available() < len(p) {
		b.flush()
	}
	n, err := b.w.Write(p)
	if err != nil {
		b.w.Reset(b.out) // as in flush: lose these lines, not the next ones
	} else if b.closed {
		err = b.flush()
	}
	return n, err
}

// flush writes what is buffered. A failed write (a full disk, a closed pipe) loses those lines
// but not the next ones: bufio would otherwise refuse every later write. b.mu is held.
func (b *Buffered) flush() error {
	err := b.w.Flush()
	if err != nil {
		b.w.Reset(b.out)
	}
	return err
}

// Close writes what is buffered and stops the timer.
func (b *Buffered) Close() error {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.flush()
}
