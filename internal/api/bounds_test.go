package api

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func TestBoundedMessages(t *testing.T) {
	long := strings.Repeat("é", 10_000)
	for _, tc := range []struct{ in, want string }{
		{`Cannot query field "name" on type "User".`, `Cannot query field "name" on type "User".`},
		{`Cannot query field "` + long + `" on type "Query".`, `Cannot query field "` + long[:maxQuoted] + `…" on type "Query".`},
		{`Unknown argument "x` + long + `" on field "Query.user".`, `Unknown argument "x` + long[:maxQuoted-2] + `…" on field "Query.user".`},
		{`operation ` + long + ` not found`, `operation ` + long[:maxMessage-10] + `…`},
		{`an unbalanced "` + long, `an unbalanced "` + long[:maxMessage-16] + `…`},
	} {
		got := bounded(&gqlerror.Error{Message: tc.in}).Message
		assert.Equal(t, tc.want, got)
		assert.True(t, utf8.ValidString(got))
		assert.LessOrEqual(t, len(got), maxMessage+len("…"))
	}
	e := bounded(&gqlerror.Error{Message: "m", Locations: make([]gqlerror.Location, 100), Path: ast.Path{ast.PathName("a")}})
	assert.Len(t, e.Locations, maxLocations)
}
