package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Prepared is a statement PostgreSQL parses and plans once per pooled connection (database/sql
// prepares it on each connection on first use there) instead of once per call. bun sends every
// other query as text with its arguments inlined, which PostgreSQL parses and plans each time:
// for a primary-key lookup that is half of its CPU time (pgbench on this 2-core machine: 13,900
// transactions/s in simple mode, 28,300 prepared). So the hottest reads use Prepared.
//
// On a pool opened Unprepared (DB_PREPARED_STATEMENTS=off, for a transaction-mode pooler) nothing
// is prepared on the server: the statement's text runs with its arguments each time, as bun's do.
//
// Statements run through Prepared are shown to the query hooks added with AddQueryHook (SQL
// logging, metrics, traces), like bun's own.
type Prepared struct {
	db    *bun.DB
	query string
	mu    sync.Mutex
	stmt  *sql.Stmt
}

// Prepare returns query as a Prepared statement of db; nothing is sent until the first Scan.
// Arguments are $1, $2, ... placeholders.
func Prepare(db *bun.DB, query string) *Prepared { return &Prepared{db: db, query: query} }

func (p *Prepared) get(ctx context.Context) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stmt == nil {
		stmt, err := p.db.DB.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, err // tried again on the next call
		}
		p.stmt = stmt
	}
	return p.stmt, nil
}

// Scan runs the statement with args and scans its rows into dest as bun does (a slice of
// models, a model, or columns).
func (p *Prepared) Scan(ctx context.Context, dest any, args ...any) error {
	return p.Rows(ctx, func(rows *sql.Rows) error { return p.db.ScanRows(ctx, rows, dest) }, args...)
}

// Rows runs the statement with args and hands its rows to read, which scans them (rows are
// closed after it returns).
func (p *Prepared) Rows(ctx context.Context, read func(*sql.Rows) error, args ...any) (err error) {
	hooks := hooksOf(p.db)
	var event *bun.QueryEvent
	if len(hooks) > 0 {
		event = &bun.QueryEvent{DB: p.db, Query: p.text(args), QueryArgs: args, StartTime: time.Now()}
		for _, h := range hooks {
			ctx = h.BeforeQuery(ctx, event)
		}
		defer func() {
			event.Err = err
			for i := len(hooks) - 1; i >= 0; i-- {
				hooks[i].AfterQuery(ctx, event)
			}
		}()
	}
	stmt, err := p.get(ctx)
	if err != nil {
		return err
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := read(rows); err != nil {
		return err
	}
	return rows.Err()
}

// text is what the hooks see: the statement and its arguments.
func (p *Prepared) text(args []any) string {
	if len(args) == 0 {
		return p.query
	}
	return fmt.Sprintf("%s -- args: %v", p.query, args)
}

// The hooks of each pool (bun keeps its own list private). A pool's entry outlives the pool:
// a process opens one or two.
var (
	hooksMu sync.RWMutex
	hooks   = map[*bun.DB][]bun.QueryHook{}
)

// AddQueryHook adds h to db's query hooks, for bun's queries and Prepared statements alike.
func AddQueryHook(db *bun.DB, h bun.QueryHook) {
	db.AddQueryHook(h)
	hooksMu.Lock()
	defer hooksMu.Unlock()
	hooks[db] = append(slices.Clip(hooks[db]), h)
}

func hooksOf(db *bun.DB) []bun.QueryHook {
	hooksMu.RLock()
	defer hooksMu.RUnlock()
	return hooks[db]
}

var (
	_ driver.StmtQueryContext = (*cancelStmt)(nil)
	_ driver.StmtQueryContext = textStmt{}
	_ driver.StmtExecContext  = textStmt{}
)

// Int64Array is ids as a PostgreSQL array literal, for a bigint[] parameter of a Prepared
// statement.
func Int64Array(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '{')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, '}'))
}

// Statements is a bounded set of prepared statements of one pool, by text. PostgreSQL plans a
// prepared statement anew on every run while a generic plan would cost more than its custom
// ones, which is always the case with a parameter in LIMIT (the generic plan assumes a tenth of
// the table); with the limit written in the text, the plan is made once per connection. So pages
// are prepared with their size in the text, and Statements bounds how many such texts a client
// cycling through sizes can make the pool prepare.
type Statements struct {
	db    *bun.DB
	limit int
	mu    sync.Mutex
	stmts map[string]*Prepared
}

// NewStatements returns a set of at most limit statements of db (beyond it, Get declines new
// texts unless told they are few).
func NewStatements(db *bun.DB, limit int) *Statements {
	return &Statements{db: db, limit: limit, stmts: make(map[string]*Prepared)}
}

// Get returns the statement of text, preparing it on first use; nil when the set is full and
// text is new, unless always (a text of a small fixed set: it is added past the bound).
func (s *Statements) Get(text string, always bool) *Prepared {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.stmts[text]
	if p == nil {
		if len(s.stmts) >= s.limit && !always {
			return nil
		}
		p = Prepare(s.db, text)
		s.stmts[text] = p
	}
	return p
}
