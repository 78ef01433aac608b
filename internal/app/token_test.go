package app_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/app"
	"github.com/wikigraph/wikigraph/internal/config"
)

// `wikigraph token SUB` takes a user's id as the API gives it (its global id) or its row number
// (databaseId), from a review: the global id was refused as "not a user id"; an item's id is not
// a user's.
func TestTokenTakesEitherFormOfAUsersID(t *testing.T) {
	cfg := config.Config{AuthJWTSecret: "0123456789abcdef0123456789abcdef", AuthAudience: "wikigraph"}
	for _, sub := range []string{"VXNlcjox", "1"} {
		var out bytes.Buffer
		require.NoError(t, app.Token(cfg, []string{sub, "user"}, &out), sub)
		require.NotEmpty(t, out.String(), sub)
	}
	for _, sub := range []string{"SXRlbTox", "0", "-1", "x"} {
		require.ErrorContains(t, app.Token(cfg, []string{sub}, &bytes.Buffer{}), "SUB must be a user's id", sub)
	}
}
