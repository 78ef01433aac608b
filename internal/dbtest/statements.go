package dbtest

import (
	"context"
	"sync"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/database"
)

// Statements records the SQL statements a pool runs (bun's and prepared ones alike, through
// database.AddQueryHook), for tests that count them.
type Statements struct {
	mu   sync.Mutex
	list []string
}

// RecordStatements starts recording db's statements.
func RecordStatements(db *bun.DB) *Statements {
	s := &Statements{}
	database.AddQueryHook(db, s)
	return s
}

// BeforeQuery implements bun.QueryHook.
func (s *Statements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook.
func (s *Statements) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, e.Query)
}

// Take returns the statements recorded since the last Take.
func (s *Statements) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.list
	s.list = nil
	return out
}
