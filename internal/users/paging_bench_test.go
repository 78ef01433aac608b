package users_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// BenchmarkPagingDepth compares offset paging (users) with keyset cursor paging (usersConnection)
// for a page of 10 at the start of the list and 100,000 rows deep.
//
//	make bench BENCH=PagingDepth
func BenchmarkPagingDepth(b *testing.B) {
	const rows, depth, size = 110_000, 100_000, 10
	ctx := context.Background()
	db := dbtest.Migrated(b)
	_, err := db.ExecContext(ctx, `INSERT INTO users (username, email, created_at)
		SELECT 'user_' || lpad(g::text, 6, '0'), 'user' || g || '@example.com', now() - (g || ' seconds')::interval
		FROM generate_series(1, ?) g`, rows)
	require.NoError(b, err)
	_, err = db.ExecContext(ctx, "ANALYZE users")
	require.NoError(b, err)

	for _, at := range []int{0, depth} {
		b.Run(fmt.Sprintf("offset/depth=%d", at), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := users.List(ctx, db, at, size)
				if err != nil || len(page) != size {
					b.Fatal(err, len(page))
				}
			}
		})
		for _, field := range []users.OrderField{users.OrderByID, users.OrderByUsername, users.OrderByCreatedAt} {
			// The cursor of the row just before the page, as a client holds it after paging there.
			var after *string
			if at > 0 {
				list := make([]*users.User, 0, 1)
				require.NoError(b, db.NewSelect().Model(&list).OrderExpr(orderColumn(field)+", id").Offset(at-1).Limit(1).Scan(ctx))
				c := users.CursorOf(list[0], field)
				after = &c
			}
			b.Run(fmt.Sprintf("cursor-%s/depth=%d", field, at), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					conn, err := users.Page(ctx, db, paging.Args{First: ptr(size), After: after}, nil, &users.Order{Field: field, Direction: paging.Asc})
					if err != nil || len(conn.Edges) != size {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func orderColumn(f users.OrderField) string {
	switch f {
	case users.OrderByUsername:
		return "username"
	case users.OrderByCreatedAt:
		return "created_at"
	}
	return "id"
}

func ptr[T any](v T) *T { return &v }
