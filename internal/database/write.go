package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"
)

// Write runs fn, one writing statement, on a connection of db's own and tells its outcome
// apart: an error before the statement was sent (waiting for a connection, connecting, a context
// already done) is returned as it is, and so is an answer PostgreSQL sent (the statement failed
// and was rolled back); an error after it was sent and before its reply was read (the deadline,
// the connection broke) means the write may or may not have been applied, and is returned as an
// unknown outcome (see OutcomeUnknown). Once fn succeeds the write is committed: the functions
// registered with OnCommit on ctx are called before Write returns.
//
// In a transaction (db is not the pool) fn just runs: the outcome is decided by the COMMIT.
func Write(ctx context.Context, db bun.IDB, fn func(ctx context.Context, db bun.IDB) error) error {
	pool, ok := db.(*bun.DB)
	if !ok {
		return fn(ctx, db)
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err // nothing was sent
	}
	defer conn.Close()
	if err := ctx.Err(); err != nil {
		return err // nothing was sent
	}
	if err := fn(ctx, conn); err != nil {
		if maybeSent(err) {
			return &outcomeError{err: err}
		}
		return err
	}
	committed(ctx)
	return nil
}

// outcomeError is an error after which a write may or may not have been applied.
type outcomeError struct{ err error }

func (e *outcomeError) Error() string { return "outcome unknown: " + e.err.Error() }
func (e *outcomeError) Unwrap() error { return e.err }

// OutcomeUnknown reports whether err came from a write that was sent but whose reply never came:
// it may or may not have been applied.
func OutcomeUnknown(err error) bool {
	var o *outcomeError
	return errors.As(err, &o)
}

// maybeSent reports whether a statement's error leaves its outcome unknown: the context ended
// or the connection failed while the statement was (or may have been) on its way or running.
func maybeSent(err error) bool {
	var pgErr pgdriver.Error
	switch {
	case errors.As(err, &pgErr):
		return false // PostgreSQL answered: the statement failed, its transaction rolled back
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrNoRows):
		return false // not performed (database/sql's contract); or performed, with no row
	}
	var netErr net.Error
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &netErr) || Unavailable(err)
}

type commitKey struct{}

// OnCommit returns ctx with fn added to the functions Write calls once a write through ctx
// has committed.
func OnCommit(ctx context.Context, fn func()) context.Context {
	prev, _ := ctx.Value(commitKey{}).([]func())
	return context.WithValue(ctx, commitKey{}, append(prev[:len(prev):len(prev)], fn))
}

func committed(ctx context.Context) {
	fns, _ := ctx.Value(commitKey{}).([]func())
	for _, fn := range fns {
		fn()
	}
}
