package users_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/users"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestNormalizeUsername(t *testing.T) {
	ok := map[string]string{
		"abc":                   "abc",
		"  Alice.B-c_9  ":       "Alice.B-c_9",
		strings.Repeat("x", 32): strings.Repeat("x", 32),
		"\tbob\n":               "bob",
	}
	for in, want := range ok {
		got, err := users.NormalizeUsername(in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "ab", "   ab   ", strings.Repeat("x", 33), "a b", "zoë", "a@b", "abc\x00", "x;--", "<script>"} {
		_, err := users.NormalizeUsername(in)
		assert.ErrorIs(t, err, apperr.Invalid("username", ""), "%q", in)
	}
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		"a@example.com":            "a@example.com",
		"  First.Last+tag@Ex.org ": "First.Last+tag@Ex.org",
	} {
		got, err := users.NormalizeEmail(in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "plain", "@example.com", "a@", "A <a@example.com>", "a@b@c",
		strings.Repeat("a", 243) + "@example.com", "a\x00@example.com", "a\n@example.com", "\xff@example.com"} {
		_, err := users.NormalizeEmail(in)
		assert.ErrorIs(t, err, apperr.Invalid("email", ""), "%q", in)
	}
	atLimit := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 58) + ".io"
	require.Len(t, atLimit, 254)
	_, err := users.NormalizeEmail(atLimit)
	assert.NoError(t, err, "254 characters is allowed")
}

func TestCheckPage(t *testing.T) {
	assert.NoError(t, users.CheckPage(0, 1))
	assert.NoError(t, users.CheckPage(5, 100))
	assert.ErrorIs(t, users.CheckPage(-1, 10), apperr.Invalid("offset", ""))
	assert.ErrorIs(t, users.CheckPage(0, 0), apperr.Invalid("limit", ""))
	assert.ErrorIs(t, users.CheckPage(0, 101), apperr.Invalid("limit", ""))
}

// The store functions run the same on the pool and inside a transaction; a rolled-back
// transaction leaves nothing.
func TestStoreInsideATransaction(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	u, err := users.Create(ctx, tx, users.NewUser{Username: "tx_user", Email: "tx@example.com"})
	require.NoError(t, err)
	name := "tx_user_2"
	_, err = users.Update(ctx, tx, u.ID, users.UpdateUser{Username: graphql.OmittableOf(&name)})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())

	got, err := users.Find(ctx, db, u.ID)
	require.NoError(t, err)
	assert.Nil(t, got)
	byName, err := users.FindByUsername(ctx, db, "tx_user")
	require.NoError(t, err)
	assert.Nil(t, byName)
}

func TestErrorsAreTestable(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	_, err := users.Delete(ctx, db, 987654321)
	assert.ErrorIs(t, err, users.ErrNotFound)
	assert.ErrorIs(t, err, apperr.ErrNotFound)

	name := fmt.Sprintf("dup_%d", time.Now().UnixNano()%1e12) // unique: the test may run twice
	_, err = users.Create(ctx, db, users.NewUser{Username: name, Email: name + "1@example.com"})
	require.NoError(t, err)
	_, err = users.Create(ctx, db, users.NewUser{Username: strings.ToUpper(name), Email: name + "2@example.com"})
	assert.ErrorIs(t, err, apperr.ErrConflict)
	assert.ErrorIs(t, err, apperr.Taken("username", ""))
}
