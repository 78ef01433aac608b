package users_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/users"
)

// counter counts the statements of a pool that mention a table.
type counter struct{ n atomic.Int64 }

func (c *counter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (c *counter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if strings.Contains(e.Query, "FROM users") {
		c.n.Add(1)
	}
}

func createUsers(t *testing.T, db bun.IDB, n int) []*users.User {
	t.Helper()
	out := make([]*users.User, n)
	for i := range out {
		name := fmt.Sprintf("lk%d_%d", time.Now().UnixNano()%1e9, i)
		u, err := users.Create(context.Background(), db, users.NewUser{Username: name, Email: name + "@example.com"})
		require.NoError(t, err)
		out[i] = u
	}
	return out
}

// Lookups from many goroutines at once get the right users, in fewer statements than lookups,
// through prepared statements that the query hooks still see.
func TestLookupsShareStatementsAndAnswerRight(t *testing.T) {
	db, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: "lookups-test", MaxConns: 4})
	require.NoError(t, err)
	defer db.Close()
	count := &counter{}
	database.AddQueryHook(db, count)
	created := createUsers(t, db, 40)
	l := users.NewLookups(db, coalesce.Options{Slots: 1})
	ctx := context.Background()

	const rounds = 5
	var wg sync.WaitGroup
	for r := range rounds {
		for i, want := range created {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := l.Find(ctx, want.ID)
				if assert.NoError(t, err) && assert.NotNil(t, got) {
					assert.Equal(t, want.Username, got.Username, "round %d, user %d", r, i)
				}
			}()
		}
	}
	wg.Wait()
	lookups := int64(rounds * len(created))
	assert.Less(t, count.n.Load(), lookups, "concurrent lookups shared statements")
	assert.Positive(t, count.n.Load(), "prepared statements are shown to the hooks")

	missing, err := l.Find(ctx, 1<<62)
	require.NoError(t, err)
	assert.Nil(t, missing)
	found, err := l.FindMany(ctx, []int64{created[0].ID, 1 << 62, created[1].ID})
	require.NoError(t, err)
	assert.Len(t, found, 2)

	page, err := l.List(ctx, 0, 5)
	require.NoError(t, err)
	direct, err := users.List(ctx, db, 0, 5)
	require.NoError(t, err)
	assert.Equal(t, direct, page, "the prepared page is the page")
	_, err = l.List(ctx, -1, 5)
	assert.Error(t, err, "paging arguments are still checked")
}

// A lookup sees every write committed before it was asked, however busy the lookups are.
func TestLookupsReadTheirWrites(t *testing.T) {
	db := dbtest.DB(t)
	l := users.NewLookups(db, coalesce.Options{Slots: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	busy := createUsers(t, db, 1)[0]
	var wg sync.WaitGroup
	for range 8 { // keep the one slot busy and batches pending
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _ = l.Find(ctx, busy.ID)
			}
		}()
	}
	for i := range 50 {
		u := createUsers(t, db, 1)[0]
		got, err := l.Find(context.Background(), u.ID)
		require.NoError(t, err)
		require.NotNil(t, got, "write %d not seen by the next lookup", i)

		email := fmt.Sprintf("changed%d_%d@example.com", i, time.Now().UnixNano())
		_, err = db.NewUpdate().Model((*users.User)(nil)).Set("email = ?", email).Where("id = ?", u.ID).Exec(context.Background())
		require.NoError(t, err)
		got, err = l.Find(context.Background(), u.ID)
		require.NoError(t, err)
		require.Equal(t, email, got.Email, "update %d not seen by the next lookup", i)
	}
	cancel()
	wg.Wait()
}

// A cancelled lookup returns at once and stops no one else's.
func TestLookupCancelled(t *testing.T) {
	db := dbtest.DB(t)
	l := users.NewLookups(db, coalesce.Options{})
	u := createUsers(t, db, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Find(ctx, u.ID)
	assert.ErrorIs(t, err, context.Canceled)
	got, err := l.Find(context.Background(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, u.ID, got.ID)
}
