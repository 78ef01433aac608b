// Package auth says who is asking and what they may do. In JWT mode a request carries
// `Authorization: Bearer <JWT>` (a websocket carries it in its connection_init payload); the
// token's sub is a user id and its role claim is admin or user. Anonymous callers may only read.
// In open mode (AUTH_MODE=none) everyone may do everything.
//
// The domain packages call the checks here before they write, so a refused write writes nothing.
package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// Role is what a token's role claim grants.
type Role string

// Roles.
const (
	Admin Role = "admin"
	User  Role = "user"
)

// Principal is the caller a valid token names, until the token expires.
type Principal struct {
	UserID  int64
	Role    Role
	Expires time.Time
}

// Policy is what the server allows beyond the roles.
type Policy struct {
	// Open: no authentication at all (AUTH_MODE=none).
	Open bool
	// OpenSignup lets anyone, anonymous callers included, create a user.
	OpenSignup bool
}

// caller is what a request's context knows about its caller.
type caller struct {
	policy    Policy
	principal *Principal
	err       error // a token was sent but is not valid
}

type ctxKey struct{}

// WithCaller returns ctx for a caller: p nil is anonymous; err is a token that was sent but
// refused, reported when an operation needs a caller.
func WithCaller(ctx context.Context, policy Policy, p *Principal, err error) context.Context {
	return context.WithValue(ctx, ctxKey{}, caller{policy: policy, principal: p, err: err})
}

func from(ctx context.Context) caller {
	c, ok := ctx.Value(ctxKey{}).(caller)
	if !ok {
		// No middleware ran (a background job, a test of the domain): nothing is restricted.
		return caller{policy: Policy{Open: true}}
	}
	return c
}

// Errors of this package.
var (
	ErrNoToken   = apperr.NotAuthenticated("this operation needs a bearer token")
	errForbidden = apperr.NotAllowed("this token may not do that")
)

// Me returns the caller's user id, or false when anonymous (or in open mode). A refused token
// is UNAUTHENTICATED.
func Me(ctx context.Context) (int64, bool, error) {
	c := from(ctx)
	if err := c.refused(); err != nil {
		return 0, false, err
	}
	if c.principal == nil {
		return 0, false, nil
	}
	return c.principal.UserID, true, nil
}

// IsAdmin reports whether the caller holds a valid admin token. In open mode (AUTH_MODE=none)
// nobody does: everyone may do everything there, but nobody is an admin.
func IsAdmin(ctx context.Context) bool {
	c := from(ctx)
	return c.principal != nil && c.principal.Role == Admin && c.refused() == nil
}

// errExpired: a websocket outlives the token it was opened with.
var errExpired = apperr.NotAuthenticated("token is expired")

// refused is the caller's token fault, if any, checked again now: a token valid when a websocket
// opened may have expired since.
func (c caller) refused() error {
	if c.err != nil {
		return c.err
	}
	if c.principal != nil && time.Now().After(c.principal.Expires) {
		return errExpired
	}
	return nil
}

// authenticated returns the caller's principal; nil with no error means open mode.
func authenticated(ctx context.Context) (*Principal, error) {
	c := from(ctx)
	switch {
	case c.policy.Open:
		return nil, nil
	case c.refused() != nil:
		return nil, c.refused()
	case c.principal == nil:
		return nil, ErrNoToken
	}
	return c.principal, nil
}

// CanCreateUser: admins, or anyone when sign-up is open.
func CanCreateUser(ctx context.Context) error {
	c := from(ctx)
	if c.policy.OpenSignup && c.refused() == nil {
		return nil
	}
	p, err := authenticated(ctx)
	if err != nil || p == nil {
		return err
	}
	if p.Role != Admin {
		return errForbidden
	}
	return nil
}

// CanActAs: admins, or the user itself (changing itself, or the items it owns).
func CanActAs(ctx context.Context, userID int64) error {
	p, err := authenticated(ctx)
	if err != nil || p == nil {
		return err
	}
	if p.Role != Admin && p.UserID != userID {
		return errForbidden
	}
	return nil
}

// OwnerScope says whose rows the caller may change: restricted is false for admins and in open
// mode; otherwise only rows owned by owner.
func OwnerScope(ctx context.Context) (owner int64, restricted bool, err error) {
	p, err := authenticated(ctx)
	if err != nil || p == nil || p.Role == Admin {
		return 0, false, err
	}
	return p.UserID, true, nil
}

// Forbidden is the error for a caller acting on a row it does not own.
func Forbidden() error { return errForbidden }

// Visibility names what the caller may see and do, for sharing work between callers: two
// contexts with the same Visibility get the same answers from every check of this package, now
// and later (a token's expiry is part of it: one that expires sooner is refused sooner).
func Visibility(ctx context.Context) string {
	c := from(ctx)
	switch {
	case c.policy.Open:
		return "open"
	case c.err != nil:
		return "refused:" + c.err.Error()
	case c.principal == nil:
		return fmt.Sprintf("anonymous signup=%t", c.policy.OpenSignup)
	}
	p := c.principal
	return fmt.Sprintf("user=%d role=%s expires=%d signup=%t", p.UserID, p.Role, p.Expires.UnixNano(), c.policy.OpenSignup)
}
