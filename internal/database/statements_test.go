package database

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/uptrace/bun"
)

// Statements prepares each text once, and past its bound only the texts said to be few.
func TestStatementsBounded(t *testing.T) {
	s := NewStatements(&bun.DB{}, 2)
	a := s.Get("SELECT 1", false)
	assert.NotNil(t, a)
	assert.Same(t, a, s.Get("SELECT 1", false), "one statement per text")
	assert.NotNil(t, s.Get("SELECT 2", false))
	assert.Nil(t, s.Get("SELECT 3", false), "full: a new text is declined")
	assert.Same(t, a, s.Get("SELECT 1", false), "known texts still answer")
	p := s.Get("SELECT $1", true)
	assert.NotNil(t, p, "a text of a small fixed set is always prepared")
	assert.Same(t, p, s.Get("SELECT $1", false))
}
