package gqlscalar_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

func TestGlobalIDs(t *testing.T) {
	for _, c := range []struct {
		id   gqlscalar.ID
		text string
	}{
		{gqlscalar.ID{Type: gqlscalar.TypeUser, Row: 1}, "VXNlcjox"}, // "User:1", as graphql-relay-js's toGlobalId("User", "1")
		{gqlscalar.ID{Type: gqlscalar.TypeItem, Row: 1}, "SXRlbTox"}, // "Item:1"
		{gqlscalar.ID{Type: gqlscalar.TypeUser, Row: 12}, "VXNlcjoxMg=="},
		{gqlscalar.ID{Type: gqlscalar.TypeItem, Row: 9223372036854775807}, "SXRlbTo5MjIzMzcyMDM2ODU0Nzc1ODA3"},
	} {
		assert.Equal(t, c.text, c.id.String())
		var b bytes.Buffer
		c.id.MarshalGQL(&b)
		assert.Equal(t, `"`+c.text+`"`, b.String())
		got, err := gqlscalar.ParseID(c.text)
		require.NoError(t, err, c.text)
		assert.Equal(t, c.id, got, c.text)
	}
}

func TestParseID(t *testing.T) {
	user1 := gqlscalar.ID{Type: gqlscalar.TypeUser, Row: 1}
	for in, want := range map[any]gqlscalar.ID{
		"VXNlcjox":       user1,
		"1":              {Row: 1}, // a bare row number, as the REST service's clients send it
		"42":             {Row: 42},
		"007":            {Row: 7}, // as strconv reads it, as before global ids
		int64(5):         {Row: 5},
		5:                {Row: 5},
		json.Number("6"): {Row: 6},
	} {
		got, err := gqlscalar.ParseID(in)
		require.NoError(t, err, "%v", in)
		assert.Equal(t, want, got, "%v", in)
	}
	for _, in := range []any{
		"", "0", "-1", "abc", "1.5", "9223372036854775808", json.Number("1e3"), 1.5, true, nil,
		"VXNlcjox=",                        // padding where there is none
		"VXNlcjoxMg",                       // "User:12" without its padding
		"VXNlcjowMQ==",                     // "User:01"
		"VXNlcjotMQ==",                     // "User:-1"
		"VXNlcjow",                         // "User:0"
		"UG9zdDox",                         // "Post:1": no such type
		"dXNlcjox",                         // "user:1"
		"VXNlcg==",                         // "User"
		"VXNlcjo=",                         // "User:"
		"VXNlcjoxOjE=",                     // "User:1:1"
		"VXNlcjox VXNlcjox",                // two
		"VXNlcjo5MjIzMzcyMDM2ODU0Nzc1ODA4", // "User:9223372036854775808"
	} {
		_, err := gqlscalar.ParseID(in)
		require.Error(t, err, "%v", in)
		var appErr *apperr.Error
		require.True(t, errors.As(err, &appErr), "%v", in)
		assert.Equal(t, apperr.BadUserInput, appErr.Code, "%v", in)
		assert.Empty(t, appErr.Field, "the presenter names the argument from the path")
	}
}

func TestRowOf(t *testing.T) {
	user1 := gqlscalar.ID{Type: gqlscalar.TypeUser, Row: 1}
	row, err := user1.RowOf(gqlscalar.TypeUser, "id")
	require.NoError(t, err)
	assert.Equal(t, int64(1), row)
	row, err = gqlscalar.ID{Row: 3}.RowOf(gqlscalar.TypeItem, "id")
	require.NoError(t, err, "a bare row number is of whatever type the argument names")
	assert.Equal(t, int64(3), row)

	_, err = user1.RowOf(gqlscalar.TypeItem, "id")
	var appErr *apperr.Error
	require.True(t, errors.As(err, &appErr))
	assert.Equal(t, apperr.BadUserInput, appErr.Code)
	assert.Equal(t, "id", appErr.Field)
	assert.Equal(t, "is the id of a User, not of an Item", appErr.Message)
}

func TestUserID(t *testing.T) {
	var id gqlscalar.UserID
	require.NoError(t, id.UnmarshalGQL("VXNlcjoy"))
	assert.Equal(t, gqlscalar.UserID(2), id)
	require.NoError(t, id.UnmarshalGQL("3"))
	assert.Equal(t, gqlscalar.UserID(3), id)
	err := id.UnmarshalGQL("SXRlbTox")
	assert.ErrorIs(t, err, apperr.ErrInvalid, "an Item's id names no user")
	assert.ErrorContains(t, err, "is the id of an Item, not of a User")
	assert.ErrorIs(t, id.UnmarshalGQL("nope"), apperr.ErrInvalid)
	var b bytes.Buffer
	gqlscalar.UserID(2).MarshalGQL(&b)
	assert.Equal(t, `"VXNlcjoy"`, b.String())
}
