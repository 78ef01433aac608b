package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/wikigraph/wikigraph/internal/database"
)

// A request's token is the later of its header's and its cookie's; a malformed one is ignored.
func TestRequestTokenTakesTheLater(t *testing.T) {
	older, newer := database.LSN(0x100).Token(), database.LSN(0x200).Token()
	for _, tc := range []struct {
		header, cookie string
		want           database.LSN
		found          bool
	}{
		{"", "", 0, false},
		{older, "", 0x100, true},
		{"", newer, 0x200, true},
		{older, newer, 0x200, true},
		{newer, older, 0x200, true},
		{"garbage", older, 0x100, true},
		{newer, "garbage", 0x200, true},
		{"garbage", "", 0, false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/query", nil)
		if tc.header != "" {
			r.Header.Set(ConsistencyToken, tc.header)
		}
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: ConsistencyToken, Value: tc.cookie})
		}
		got, found := requestToken(r)
		assert.Equal(t, tc.found, found, "%+v", tc)
		assert.Equal(t, tc.want, got, "%+v", tc)
	}
}
