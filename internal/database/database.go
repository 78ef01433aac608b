// Package database opens the PostgreSQL connection pool (bun over pgdriver), runs the embedded
// migrations under an advisory lock, and tells PostgreSQL errors apart for the domain packages.
package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
)

// Options configure the pool.
type Options struct {
	URL      string
	AppName  string
	MaxConns int
	// StatementTimeout bounds every statement on the server; 0 means no bound (for migrations).
	StatementTimeout time.Duration
	// Unprepared is for a pool behind a transaction-mode pooler (DB_PREPARED_STATEMENTS=off),
	// where consecutive statements of one connection may run on different server connections:
	// no statement is prepared on the server (Prepared statements run as text), and the session
	// settings the server relies on travel with every statement (see Open).
	Unprepared bool
	LogSQL     bool
	Logger     *slog.Logger
	// Fallback is for a pool of reads on a replica: the primary's URL, where a read goes when
	// the replica cannot be reached (its connection refused, or lost before an answer), so a
	// replica going down fails no read; Lost is told each time. Connections made to the
	// fallback serve one statement: once the replica is back, reads go to it again.
	Fallback string
	Lost     func(error)
	// AnswerTimeout (with Fallback) bounds how long the replica may take to accept a
	// connection, and to begin answering a statement (the first bytes of its reply, which
	// PostgreSQL sends once a small result is complete or a large one fills its buffer): a
	// replica that hangs refuses nothing, so without it a read would wait for its deadline.
	// Past it the connection is closed, Lost is told, and the read runs on the fallback.
	AnswerTimeout time.Duration
	// Alive (with AnswerTimeout) asks the replica, on another connection, whether it answers at
	// all, when a statement has not begun to answer in time: a statement merely slow (a sort,
	// a count: PostgreSQL sends a small result only once it is complete) on a replica that
	// answers is left to run; only when Alive fails too (within half the answer timeout) is the
	// replica taken for hung. Without Alive, every late statement is.
	Alive func(context.Context) error
	// Down (with Fallback) reports that the replica is out of the rotation: its pool's
	// connections are then dropped rather than reused, and new ones go to the fallback.
	Down func() bool
}

// Open builds the pool. It does not connect: the first query (or Ping) does.
func Open(opts Options) (*bun.DB, error) {
	if opts.MaxConns < 2 {
		// Migrations hold the advisory lock on one connection and migrate on another.
		return nil, fmt.Errorf("database: pool size must be at least 2, got %d", opts.MaxConns)
	}
	// The server ends a statement that runs too long, whatever the client does (0: never), and
	// notices a client that went away mid-query and stops working for it.
	settings := map[string]string{
		"statement_timeout":                strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10),
		"client_connection_check_interval": "1000",
	}
	params := map[string]any{
		// Times leave the server in UTC, as the schema promises.
		"TimeZone": "UTC",
	}
	// pgdriver sets these with SET once a connection is made (only application_name goes in
	// the startup packet). Behind a transaction-mode pooler such a SET lands on whichever server
	// connection runs it, and the next statement may run on another, so there:
	//   - statement_timeout and client_connection_check_interval go with every statement, as
	//     SET LOCAL ahead of it in the same simple-protocol message (see cancelConn.text). Such a
	//     message runs as one implicit transaction, which a pooler never splits across server
	//     connections, and SET LOCAL ends with it: nothing leaks to the pooler's other clients,
	//     and what they SET on a shared server connection is overridden. PostgreSQL starts each
	//     statement's timer anew, with the value just set.
	//   - TimeZone and application_name stay session settings: pgbouncer tracks them per client
	//     (with client_encoding, DateStyle and standard_conforming_strings: the parameters
	//     PostgreSQL reports) and sets them on every server connection it hands the client,
	//     when they differ. A SET LOCAL of a reported parameter would fight that tracking (each
	//     SET LOCAL and its end at commit are reported back).
	// pgbouncer's connect_query or role settings (ALTER ROLE ... SET) would hold too, but are
	// kept outside this process, for every client of the pooler or role, and a client's SET
	// on a shared server connection outlives them.
	var perStatement string
	if opts.Unprepared {
		perStatement = "SET LOCAL statement_timeout = " + settings["statement_timeout"] +
			"; SET LOCAL client_connection_check_interval = " + settings["client_connection_check_interval"] + "; "
	} else {
		for k, v := range settings {
			params[k] = v
		}
	}
	readTimeout := time.Duration(0) // none: a migration may wait long for its lock
	if opts.StatementTimeout > 0 {
		readTimeout = opts.StatementTimeout + 5*time.Second
	}
	connector := func(url string) *pgdriver.Connector {
		return pgdriver.NewConnector(
			pgdriver.WithDSN(url),
			pgdriver.WithApplicationName(opts.AppName),
			withDefaultParams(params),
			pgdriver.WithTimeout(readTimeout),
			pgdriver.WithDialTimeout(5*time.Second),
		)
	}
	c := cancelConnector{Connector: connector(opts.URL), perStatement: perStatement, unprepared: opts.Unprepared}
	if opts.Fallback != "" {
		c.fallback = &cancelConnector{Connector: connector(opts.Fallback), perStatement: perStatement, unprepared: opts.Unprepared}
		c.lost = opts.Lost
		if c.lost == nil {
			c.lost = func(error) {}
		}
		c.answer, c.down, c.alive = opts.AnswerTimeout, opts.Down, opts.Alive
	}
	sqldb := sql.OpenDB(c)
	sqldb.SetMaxOpenConns(opts.MaxConns)
	// database/sql keeps only 2 idle connections by default: every burst would open backends.
	sqldb.SetMaxIdleConns(opts.MaxConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)

	db := bun.NewDB(sqldb, pgdialect.New(), bun.WithDiscardUnknownColumns())
	if opts.LogSQL {
		logger := opts.Logger
		if logger == nil {
			logger = slog.Default()
		}
		AddQueryHook(db, sqlLogger{logger})
	}
	return db, nil
}

// OpenForMigrations opens a small pool with no statement timeout, for migrations: a migration may
// run long, and may wait long for another instance's lock.
func OpenForMigrations(url, appName string) (*bun.DB, error) {
	return Open(Options{URL: url, AppName: appName + "-migrate", MaxConns: 2})
}

// withDefaultParams adds session parameters the URL does not set itself.
func withDefaultParams(params map[string]any) pgdriver.Option {
	return func(c *pgdriver.Config) {
		if c.ConnParams == nil {
			c.ConnParams = make(map[string]any, len(params))
		}
		for k, v := range params {
			if _, set := c.ConnParams[k]; !set {
				c.ConnParams[k] = v
			}
		}
	}
}

// UniqueViolation reports whether err is a unique-constraint violation, and which constraint.
func UniqueViolation(err error) (constraint string, ok bool) {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) && pgErr.Field('C') == "23505" {
		return pgErr.Field('n'), true
	}
	return "", false
}

// ForeignKeyViolation reports whether err is a foreign-key violation, and which constraint.
func ForeignKeyViolation(err error) (constraint string, ok bool) {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) && pgErr.Field('C') == "23503" {
		return pgErr.Field('n'), true
	}
	return "", false
}

// CeilMicro rounds t up to PostgreSQL's microsecond precision. For columns that hold whole
// microseconds, col >= t and col < t mean the same with the rounded bound; truncating would
// not.
func CeilMicro(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); r.Before(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

// EscapeLike makes s match itself literally in a LIKE pattern written with ESCAPE '\'.
func EscapeLike(s string) string {
	return likeEscaper.Replace(s)
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Unavailable reports whether err means the database cannot be reached right now (down,
// restarting, refusing connections), as opposed to a fault in a query.
func Unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // a statement we stopped (its socket closed under it), not an absent database
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		switch pgErr.Field('C') {
		case "57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006", "53300":
			// shutdown, crash, starting up, connection failures, too many connections
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return false // a slow statement, not an absent database
	}
	return errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// StatementTimeout reports whether PostgreSQL cancelled a statement (statement_timeout).
func StatementTimeout(err error) bool {
	var pgErr pgdriver.Error
	return errors.As(err, &pgErr) && pgErr.StatementTimeout()
}

// Ready reports whether the database answers and every migration is applied.
func Ready(ctx context.Context, db *bun.DB) error {
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	pending, err := Pending(ctx, db)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%d migrations pending, first %s", len(pending), pending[0])
	}
	return nil
}

// sqlLogger logs every statement, like SQLAlchemy's echo=True.
type sqlLogger struct{ log *slog.Logger }

func (h sqlLogger) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h sqlLogger) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	attrs := []slog.Attr{
		slog.String("query", e.Query),
		slog.Float64("duration_ms", float64(time.Since(e.StartTime).Microseconds())/1000),
	}
	if e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows) {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "sql", attrs...)
}
