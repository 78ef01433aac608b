package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// cancelConnector makes a cancelled context stop the statement it started; pgdriver alone only
// honours deadlines. When the context of a running statement is done, the connection's socket
// is closed: the caller gets the context's error at once, database/sql drops the connection, and
// PostgreSQL, which checks for a vanished client every client_connection_check_interval, aborts
// the statement and rolls back its transaction.
//
// It also carries what a pool behind a transaction-mode pooler needs (Options.Unprepared): the
// settings sent ahead of every statement, and statements prepared as text only.
type cancelConnector struct {
	*pgdriver.Connector
	perStatement string // "SET LOCAL ...; " ahead of every statement, or empty
	unprepared   bool
	// A replica's reads (Options.Fallback): connected to fallback while the server cannot be
	// reached or is out of the rotation (down), and told database/sql to run again
	// (driver.ErrBadConn) when their connection is lost, or the server has not begun to answer
	// within answer, before an answer; lost hears of both.
	fallback *cancelConnector
	lost     func(error)
	answer   time.Duration
	down     func() bool
	alive    func(context.Context) error
}

func (c cancelConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.fallback != nil && c.down != nil && c.down() {
		return c.viaFallback(ctx)
	}
	cctx := ctx
	if c.fallback != nil && c.answer > 0 {
		// A hung server accepts the connection (the kernel queues it) and never answers.
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, c.answer)
		defer cancel()
	}
	cn, err := c.Connector.Connect(cctx)
	if err != nil {
		// pgdriver's socket deadlines are the context's: they can fire before its timer.
		if ended(ctx) {
			return nil, fmt.Errorf("%w (connecting: %w)", context.DeadlineExceeded, err)
		}
		if c.fallback == nil || ctx.Err() != nil {
			return nil, err
		}
		if ended(cctx) {
			err = fmt.Errorf("no answer within %s: %w", c.answer, err)
		} else if !Unavailable(err) {
			return nil, err
		}
		c.lost(err)
		return c.viaFallback(ctx)
	}
	return &cancelConn{Conn: cn.(*pgdriver.Conn), perStatement: c.perStatement, unprepared: c.unprepared,
		lost: c.lost, fallback: c.fallback, answer: c.answer, down: c.down, alive: c.alive}, nil
}

// ended reports whether ctx's deadline has passed, whether or not its timer has fired yet.
func ended(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// viaFallback connects a replica's read to the fallback, for one statement.
func (c cancelConnector) viaFallback(ctx context.Context) (driver.Conn, error) {
	fb, err := c.fallback.Connect(ctx)
	if err != nil {
		return nil, err
	}
	fb.(*cancelConn).once = true
	return fb, nil
}

type cancelConn struct {
	*pgdriver.Conn
	killed       atomic.Bool
	perStatement string
	unprepared   bool
	lost         func(error)      // a replica's: see cancelConnector.fallback
	fallback     *cancelConnector // a replica's: where a read lost before its first row runs again
	once         bool             // a replica's connection to its fallback: one statement
	answer       time.Duration    // a replica's: see cancelConnector.answer
	down         func() bool      // a replica's: out of the rotation, its connections are not reused
	alive        func(context.Context) error
	hung         atomic.Bool // closed as its server had not begun to answer within answer
}

// awaitAnswer closes a replica's connection if its server has not begun to answer within the
// connection's answer timeout and does not answer another connection either (alive) within
// half that: call answered once the statement's first reply is read (or it failed). Other
// connections wait as long as their context and read timeout allow.
func (c *cancelConn) awaitAnswer() (answered func()) {
	if c.answer <= 0 || c.lost == nil {
		return func() {}
	}
	var mu sync.Mutex
	done := false
	hang := func() {
		mu.Lock()
		defer mu.Unlock()
		if !done { // else the answer came meanwhile: its rows are being read
			c.hung.Store(true)
			c.kill()
		}
	}
	t := time.AfterFunc(c.answer, func() {
		if c.alive == nil {
			hang()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.answer/2)
		defer cancel()
		if c.alive(ctx) != nil {
			hang()
		}
	})
	return func() {
		mu.Lock()
		done = true
		mu.Unlock()
		t.Stop()
	}
}

// again returns, for a replica's read, the function that runs it on a connection of its own to
// the fallback (see cancelRows.Next); nil for other connections.
func (c *cancelConn) again(ctx context.Context, query string, args []driver.NamedValue) func(error) (driver.Rows, func(), error) {
	if c.fallback == nil {
		return nil
	}
	return func(lostErr error) (driver.Rows, func(), error) {
		if ctx.Err() != nil || stopped(ctx) != nil || !Unavailable(lostErr) {
			return nil, nil, lostErr
		}
		c.kill()
		c.lost(lostErr)
		cn, err := c.fallback.Connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		fc := cn.(*cancelConn)
		rows, err := fc.QueryContext(ctx, query, args)
		if err != nil {
			_ = fc.Close()
			return nil, nil, err
		}
		return rows, func() { _ = fc.Close() }, nil
	}
}

// retry turns the error of a replica's read whose server went away (before an answer, as
// the ctx is not done) into driver.ErrBadConn, which makes database/sql run it again on
// another connection, and so on the fallback while the replica is down. Reads only: a replica's
// pool serves no writes, so running a statement twice changes nothing.
func (c *cancelConn) retry(ctx context.Context, err error) error {
	if c.lost == nil || ctx.Err() != nil || stopped(ctx) != nil {
		return err
	}
	if c.hung.Load() {
		err = fmt.Errorf("no answer within %s: %w", c.answer, err)
	} else if !Unavailable(err) {
		return err
	}
	c.kill()
	c.lost(err)
	return driver.ErrBadConn
}

// text is query as sent: with the per-statement settings ahead of it, if any. pgdriver sends a
// statement with its arguments inlined in one simple-protocol message, so they run together,
// and reads the rows (or the result) of the last one.
func (c *cancelConn) text(query string) string {
	if c.perStatement == "" {
		return query
	}
	return c.perStatement + query
}

// watch closes the socket if ctx, or its stopper (WithStopper), ends before stop is called. Call
// stop once, before the statement returns: if ctx ended first (stop reports false), stop waits
// for the close, so the connection is already killed when database/sql asks IsValid whether to
// reuse it. Were the close left to run on its own, it could land after database/sql had handed
// the connection to another statement, and fail that one.
func (c *cancelConn) watch(ctx context.Context) (stop func() bool) {
	s := stopperOf(ctx)
	if ctx.Done() == nil && s == nil {
		return func() bool { return true }
	}
	var once sync.Once
	closed := make(chan struct{})
	kill := func() {
		once.Do(func() {
			defer close(closed)
			c.kill()
		})
	}
	stopCtx := context.AfterFunc(ctx, kill)
	stopS := func() bool { return true }
	if s != nil {
		stopS = context.AfterFunc(s, kill)
	}
	return func() bool {
		a, b := stopCtx(), stopS()
		if a && b {
			return true
		}
		<-closed // a stop reports false only once its close has started
		return false
	}
}

func (c *cancelConn) err(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// Whether this watch or the driver's own deadline stopped it, the context's end is why.
		return fmt.Errorf("%w (statement stopped: %w)", ctx.Err(), err)
	}
	if s := stopperOf(ctx); s != nil && s.Err() != nil {
		return fmt.Errorf("%w (statement stopped: %w)", context.Cause(s), err)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		// pgdriver's socket deadline is the context's: it can fire before the context's timer.
		return fmt.Errorf("%w (statement stopped: %w)", context.DeadlineExceeded, err)
	}
	return err
}

func (c *cancelConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := stopped(ctx); err != nil {
		return nil, err // nothing sent; the connection stays good
	}
	stop := c.watch(ctx)
	defer stop()
	res, err := c.Conn.ExecContext(ctx, c.text(query), args)
	return res, c.err(ctx, err)
}

func (c *cancelConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	stop := c.watch(ctx)
	answered := c.awaitAnswer()
	rows, err := c.Conn.QueryContext(ctx, c.text(query), args)
	answered()
	if err != nil {
		stop()
		return nil, c.retry(ctx, c.err(ctx, err))
	}
	return &cancelRows{Rows: rows, stop: stop, again: c.again(ctx, query, args)}, nil // rows still stream from the socket
}

// kill closes the connection for good: its protocol state is no longer known.
func (c *cancelConn) kill() {
	c.killed.Store(true)
	_ = c.Conn.Conn().Close()
}

// failed handles an error of a prepared statement. pgdriver drops a connection after a network
// or timeout error of an ordinary query, but not of a prepared one: the reply it did not read
// would stay on the socket and answer the next statement. Only an error PostgreSQL sent (the
// reply was read to its end) leaves the connection usable.
func (c *cancelConn) failed(ctx context.Context, err error) error {
	if !inSync(err) {
		c.kill()
	}
	return c.err(ctx, err)
}

// inSync reports whether the connection can go on after err: an ERROR PostgreSQL sent is read
// to its end, but a FATAL or PANIC one (an administrator's shutdown, a terminated backend)
// comes without the rest, and the server closes the connection anyway.
func inSync(err error) bool {
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Field('V') {
	case "FATAL", "PANIC":
		return false
	}
	return true
}

// PrepareContext prepares a statement whose runs a cancelled context stops, like the others.
// Unprepared, it prepares nothing on the server: the statement runs as text each time, as
// any other statement does.
func (c *cancelConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.unprepared {
		return textStmt{c: c, query: query}, nil
	}
	stop := c.watch(ctx)
	defer stop()
	answered := c.awaitAnswer()
	st, err := c.Conn.PrepareContext(ctx, query)
	answered()
	if err != nil {
		return nil, c.retry(ctx, c.failed(ctx, err))
	}
	return &cancelStmt{Stmt: st, c: c, query: query}, nil
}

type cancelStmt struct {
	driver.Stmt
	c     *cancelConn
	query string
}

// Close closes the statement on the server, unless its connection's socket is closed: the server
// dropped it then, and pgdriver would only fail to write (and log it).
func (s *cancelStmt) Close() error {
	if s.c.killed.Load() {
		return nil
	}
	return s.Stmt.Close()
}

func (s *cancelStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	stop := s.c.watch(ctx)
	answered := s.c.awaitAnswer()
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	answered()
	if err != nil {
		stop()
		return nil, s.c.retry(ctx, s.c.failed(ctx, err))
	}
	return &cancelRows{Rows: rows, stop: stop, c: s.c, again: s.c.again(ctx, s.query, args)}, nil
}

func (s *cancelStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	stop := s.c.watch(ctx)
	defer stop()
	res, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		return nil, s.c.failed(ctx, err)
	}
	return res, nil
}

// textStmt is a statement that is not prepared on the server: database/sql's Stmt over a pool
// behind a transaction-mode pooler, where the next run may reach a server connection that never
// saw it prepared.
type textStmt struct {
	c     *cancelConn
	query string
}

func (s textStmt) Close() error  { return nil }
func (s textStmt) NumInput() int { return -1 } // not known: database/sql leaves the count to the driver

// Exec and Query are never called: database/sql uses ExecContext and QueryContext.
func (s textStmt) Exec([]driver.Value) (driver.Result, error) { return nil, errContextOnly }
func (s textStmt) Query([]driver.Value) (driver.Rows, error)  { return nil, errContextOnly }

var errContextOnly = errors.New("database: use ExecContext or QueryContext")

func (s textStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

func (s textStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

// IsValid tells database/sql not to reuse a connection whose socket was closed, nor one to a
// replica out of the rotation (a hung one would hold the next read until its answer timeout).
func (c *cancelConn) IsValid() bool {
	return !c.once && !c.killed.Load() && !c.replicaDown() && c.Conn.IsValid()
}

// replicaDown reports whether c is a replica's connection while the replica is out of the
// rotation; if so it closes c's socket at once, since database/sql is about to drop it: it
// would first close each statement prepared on it, and pgdriver waits for the server's reply
// to each (up to the read timeout, from a server that may be hung).
func (c *cancelConn) replicaDown() bool {
	if c.down == nil || !c.down() {
		return false
	}
	c.kill()
	return true
}

func (c *cancelConn) ResetSession(ctx context.Context) error {
	if c.once || c.killed.Load() || c.replicaDown() {
		return driver.ErrBadConn
	}
	return c.Conn.ResetSession(ctx)
}

type cancelRows struct {
	driver.Rows
	stop func() bool
	c    *cancelConn // set for a prepared statement's rows: a read that fails mid-way kills it
	// A replica's read: when its connection is lost before the first row (the server shut
	// down between the reply's start and its rows), the read runs again on the fallback, and
	// its rows are these rows' from then on; done closes that connection.
	again   func(error) (driver.Rows, func(), error)
	done    func()
	started bool
}

func (r *cancelRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && err != io.EOF && !r.started && r.again != nil {
		again := r.again
		r.again = nil
		if rows, done, aerr := again(err); aerr == nil {
			r.stop()
			_ = r.Rows.Close() // its connection is closed: nothing to read
			r.Rows, r.stop, r.c, r.done = rows, func() bool { return true }, nil, done
			err = r.Rows.Next(dest)
		}
	}
	if err == nil {
		r.started = true
	}
	if err != nil && err != io.EOF && r.c != nil && !inSync(err) {
		r.c.kill()
	}
	return err
}

func (r *cancelRows) Close() error {
	if r.done != nil {
		defer r.done()
	}
	r.stop()
	err := r.Rows.Close() // reads what is left of the reply
	if err != nil && r.c != nil && !inSync(err) {
		r.c.kill()
	}
	return err
}
