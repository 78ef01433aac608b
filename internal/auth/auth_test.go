package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/wikigraph/wikigraph/internal/auth"
)

// IsAdmin: a valid admin token only; in open mode, where everyone may do everything, nobody.
func TestIsAdmin(t *testing.T) {
	jwt := auth.Policy{}
	admin := &auth.Principal{UserID: 1, Role: auth.Admin, Expires: time.Now().Add(time.Hour)}
	for name, tc := range map[string]struct {
		ctx  context.Context
		want bool
	}{
		"admin":           {auth.WithCaller(context.Background(), jwt, admin, nil), true},
		"user":            {auth.WithCaller(context.Background(), jwt, &auth.Principal{UserID: 1, Role: auth.User, Expires: admin.Expires}, nil), false},
		"expired admin":   {auth.WithCaller(context.Background(), jwt, &auth.Principal{UserID: 1, Role: auth.Admin, Expires: time.Now().Add(-time.Second)}, nil), false},
		"refused token":   {auth.WithCaller(context.Background(), jwt, nil, errors.New("bad")), false},
		"anonymous":       {auth.WithCaller(context.Background(), jwt, nil, nil), false},
		"open mode":       {auth.WithCaller(context.Background(), auth.Policy{Open: true}, nil, nil), false},
		"no caller known": {context.Background(), false},
	} {
		assert.Equal(t, tc.want, auth.IsAdmin(tc.ctx), name)
	}
}
