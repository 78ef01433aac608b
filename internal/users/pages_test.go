package users_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// preparedPages counts the prepared statements of connection pages among stmts (bun quotes the
// names in the statements it builds).
func preparedPages(stmts []string) int {
	n := 0
	for _, s := range stmts {
		if strings.Contains(s, "FROM users AS u ORDER BY") {
			n++
		}
	}
	return n
}

// A connection page in the usual shape (no filter, no cursor) is read through a prepared
// statement and answers what the built statement answers, for every order, direction and size.
func TestPreparedConnectionPagesAnswerAsBuiltOnes(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	createUsers(t, db, 12)
	recorded := dbtest.RecordStatements(db)
	lookups := users.NewLookups(db, coalesce.Options{})
	ptr := func(n int) *int { return &n }
	page := func(args paging.Args, filter *users.Filter, order *users.Order, brief bool) (*users.Connection, error) {
		q, err := users.NewPageQuery(args, filter, order, brief)
		if err != nil {
			return nil, err
		}
		return lookups.Page(ctx, q)
	}
	for _, field := range []users.OrderField{users.OrderByID, users.OrderByUsername, users.OrderByCreatedAt} {
		for _, dir := range []paging.Direction{paging.Asc, paging.Desc} {
			for _, args := range []paging.Args{{First: ptr(0)}, {First: ptr(3)}, {Last: ptr(5)}, {}} {
				name := fmt.Sprintf("%s %s %+v", field, dir, args)
				order := &users.Order{Field: field, Direction: dir}
				want, err := users.Page(ctx, db, args, nil, order)
				require.NoError(t, err)
				recorded.Take()
				got, err := page(args, &users.Filter{}, order, false)
				require.NoError(t, err)
				assert.Equal(t, 1, preparedPages(recorded.Take()), "%s: prepared", name)
				assert.Equal(t, want.Edges, got.Edges, name)
				assert.Equal(t, want.PageInfo, got.PageInfo, name)

				// Brief: the same users and cursors; no email, and no timestamps unless the
				// order needs them.
				got, err = page(args, nil, order, true)
				require.NoError(t, err)
				assert.Equal(t, want.PageInfo, got.PageInfo, name)
				require.Len(t, got.Edges, len(want.Edges))
				for i, e := range got.Edges {
					w := want.Edges[i]
					assert.Equal(t, w.Node.ID, e.Node.ID, name)
					assert.Equal(t, w.Node.Username, e.Node.Username, name)
					assert.Equal(t, w.Cursor(), e.Cursor(), name)
					if field == users.OrderByCreatedAt { // its cursors need created_at: not brief
						assert.Equal(t, w.Node, e.Node, name)
					} else {
						assert.Empty(t, e.Node.Email, name)
						assert.True(t, e.Node.CreatedAt.IsZero(), name)
					}
				}
			}
		}
	}
	// A filter or a cursor: built.
	prefix := "lk"
	recorded.Take()
	_, err := page(paging.Args{First: ptr(2)}, &users.Filter{UsernamePrefix: &prefix}, nil, false)
	require.NoError(t, err)
	first, err := page(paging.Args{First: ptr(2)}, nil, nil, false)
	require.NoError(t, err)
	after := first.Edges[1].Cursor()
	next, err := page(paging.Args{First: ptr(2), After: &after}, nil, nil, true)
	require.NoError(t, err)
	assert.Equal(t, 1, preparedPages(recorded.Take()), "only the page without filter or cursor was prepared")
	assert.Greater(t, next.Edges[0].Node.ID, first.Edges[1].Node.ID)
	assert.Empty(t, next.Edges[0].Node.Email, "a built brief page reads the brief columns too")
}

// Paging users(offset, limit) through many offsets neither takes the connection pages' budget of
// prepared texts nor makes a text per offset.
func TestListingOffsetsLeavesConnectionPagesPrepared(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	createUsers(t, db, 3)
	recorded := dbtest.RecordStatements(db)
	lookups := users.NewLookups(db, coalesce.Options{})
	for offset := range 100 {
		_, err := lookups.List(ctx, offset, 2)
		require.NoError(t, err)
	}
	q, err := users.NewPageQuery(paging.Args{First: ptrInt(7)}, nil, nil, false)
	require.NoError(t, err)
	_, err = lookups.Page(ctx, q)
	require.NoError(t, err)
	seen := map[string]bool{}
	var list []string
	for _, stmt := range recorded.Take() {
		text, _, _ := strings.Cut(stmt, " -- args:")
		if !seen[text] {
			seen[text] = true
			list = append(list, text)
		}
	}
	assert.Contains(t, list, "SELECT id, username, email, created_at, updated_at FROM users ORDER BY id ASC LIMIT 2 OFFSET 0")
	assert.Contains(t, list, "SELECT id, username, email, created_at, updated_at FROM users ORDER BY id ASC LIMIT 2 OFFSET $1")
	assert.Contains(t, list, "SELECT u.id, u.username, u.email, u.created_at, u.updated_at FROM users AS u ORDER BY u.id ASC LIMIT 8",
		"the connection page keeps its size in its text")
	assert.Len(t, list, 3, "%v", list)
}

func ptrInt(n int) *int { return &n }
