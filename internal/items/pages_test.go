package items_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// The prepared statement of the usual shape answers what the statement PagesByOwner builds
// answers, for every order, direction and page size, including owners without items; the other
// shapes still go through PagesByOwner.
func TestPreparedPagesAnswerAsBuiltOnes(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	counter := dbtest.RecordStatements(db)
	var owners []int64
	for i := range 4 {
		u, err := users.Create(ctx, db, users.NewUser{Username: fmt.Sprintf("pages_%d", i), Email: fmt.Sprintf("pages_%d@example.com", i)})
		require.NoError(t, err)
		owners = append(owners, u.ID)
		for j := range 3 * i { // 0, 3, 6 and 9 items; titles out of id order
			desc := fmt.Sprintf("d%d", j)
			_, err := items.Create(ctx, db, items.NewItem{OwnerID: gqlscalar.UserID(u.ID), Title: fmt.Sprintf("t%d", (j*7)%10), Description: &desc})
			require.NoError(t, err)
		}
	}
	for name, pages := range map[string]*items.Pages{
		"sizes in the text":   items.NewPages(db, coalesce.Options{}),
		"sizes as parameters": items.NewPagesBounded(db, 0, coalesce.Options{}),
	} {
		t.Run(name, func(t *testing.T) { comparePages(t, db, counter, pages, owners) })
	}
}

func comparePages(t *testing.T, db *bun.DB, counter *dbtest.Statements, pages *items.Pages, owners []int64) {
	ctx := context.Background()
	noCount := func(context.Context, int64) (int, error) { return 0, nil }
	ptr := func(n int) *int { return &n }
	for _, field := range []items.OrderField{items.OrderByID, items.OrderByTitle, items.OrderByCreatedAt} {
		for _, dir := range []paging.Direction{paging.Asc, paging.Desc} {
			for _, args := range []paging.Args{{First: ptr(0)}, {First: ptr(2)}, {First: ptr(5)}, {Last: ptr(4)}, {}} {
				name := fmt.Sprintf("%s %s first=%v last=%v", field, dir, deref(args.First), deref(args.Last))
				q, err := items.NewQuery(args, nil, &items.Order{Field: field, Direction: dir})
				require.NoError(t, err)
				want, err := items.PagesByOwner(ctx, db, owners, q, noCount)
				require.NoError(t, err)
				counter.Take()
				got, err := pages.ByOwner(ctx, owners, q, noCount)
				require.NoError(t, err)
				stmts := counter.Take()
				require.Len(t, stmts, 1, name)
				assert.Contains(t, stmts[0], "unnest($1::bigint[])", "%s: the prepared statement", name)
				require.Len(t, got, len(owners))
				for _, owner := range owners {
					assert.Equal(t, want[owner].Edges, got[owner].Edges, name)
					assert.Equal(t, want[owner].PageInfo, got[owner].PageInfo, name)
				}

				// Brief, prepared and built: the same items and cursors, without the details.
				brief := q.Brief()
				built, err := items.PagesByOwner(ctx, db, owners, brief, noCount)
				require.NoError(t, err)
				got, err = pages.ByOwner(ctx, owners, brief, noCount)
				require.NoError(t, err)
				for _, owner := range owners {
					for _, conns := range []map[int64]*items.Connection{built, got} {
						assert.Equal(t, want[owner].PageInfo, conns[owner].PageInfo, name)
						require.Len(t, conns[owner].Edges, len(want[owner].Edges), name)
						for i, e := range conns[owner].Edges {
							w := want[owner].Edges[i]
							assert.Equal(t, w.Cursor(), e.Cursor(), name)
							assert.Equal(t, []any{w.Node.ID, w.Node.OwnerID, w.Node.Title}, []any{e.Node.ID, e.Node.OwnerID, e.Node.Title}, name)
							if field == items.OrderByCreatedAt { // its cursors need created_at: not brief
								assert.Equal(t, w.Node, e.Node, name)
							} else {
								assert.Nil(t, e.Node.Description, name)
								assert.True(t, e.Node.CreatedAt.IsZero(), name)
							}
						}
					}
				}
			}
		}
	}
	// A filter or a cursor: built as before.
	title := "t1"
	q, err := items.NewQuery(paging.Args{First: ptr(3)}, &items.Filter{TitleContains: &title}, nil)
	require.NoError(t, err)
	counter.Take()
	_, err = pages.ByOwner(ctx, owners, q, noCount)
	require.NoError(t, err)
	stmts := counter.Take()
	require.Len(t, stmts, 1)
	assert.NotContains(t, stmts[0], "$1", "built")
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
