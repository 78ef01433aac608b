package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wikigraph/wikigraph/internal/apperr"
)

// Options configure JWT verification. Secret enables HS256; JWKSFile enables RS256 and ES256
// with the public keys of a JWKS file. Issuer is checked when set; Audience is required unless
// AnyAudience says explicitly that tokens meant for any audience are accepted.
type Options struct {
	Secret      string
	JWKSFile    string
	Issuer      string
	Audience    string
	AnyAudience bool
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// JWKSRefresh is how often the JWKS file is looked at again for rotated keys (0:
	// DefaultJWKSRefresh); a token with an unknown kid looks sooner, if the file changed.
	JWKSRefresh time.Duration
	// Logger hears about reloads of the JWKS file (nil: slog.Default()).
	Logger *slog.Logger
	Policy Policy
}

// Verifier checks bearer tokens.
type Verifier struct {
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
	policy  Policy
	leeway  time.Duration
}

// claims are the claims a token must carry.
type claims struct {
	jwt.RegisteredClaims
	Role Role `json:"role"`
}

// NewVerifier reads the keys. Those of a JWKS file are read again when the file changes, so keys
// rotate without a restart.
func NewVerifier(opts Options) (*Verifier, error) {
	var methods []string
	var jwks *jwksFile
	if opts.Secret != "" {
		if len(opts.Secret) < 32 {
			return nil, errors.New("auth: AUTH_JWT_SECRET must be at least 32 bytes")
		}
		methods = append(methods, "HS256")
	}
	if opts.JWKSFile != "" {
		refresh, logger := opts.JWKSRefresh, opts.Logger
		if refresh <= 0 {
			refresh = DefaultJWKSRefresh
		}
		if logger == nil {
			logger = slog.Default()
		}
		var err error
		if jwks, err = openJWKS(opts.JWKSFile, refresh, logger); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		methods = append(methods, "RS256", "ES256")
	}
	if len(methods) == 0 {
		return nil, errors.New("auth: AUTH_MODE=jwt needs AUTH_JWT_SECRET or AUTH_JWKS_FILE")
	}
	switch {
	case opts.Audience == "" && !opts.AnyAudience:
		return nil, errors.New("auth: AUTH_MODE=jwt needs AUTH_AUDIENCE, or AUTH_ANY_AUDIENCE=true")
	case opts.Audience != "" && opts.AnyAudience:
		return nil, errors.New("auth: AUTH_AUDIENCE and AUTH_ANY_AUDIENCE=true contradict each other")
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(opts.Leeway), jwt.WithExpirationRequired()}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	keyfunc := func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "HS256":
			return []byte(opts.Secret), nil
		case "RS256", "ES256":
			kid, ok := t.Header["kid"].(string)
			if _, sent := t.Header["kid"]; sent && !ok {
				return nil, errors.New("kid is not a string")
			}
			keys := jwks.lookup(t.Method.Alg(), kid)
			if len(keys.Keys) == 0 {
				return nil, errors.New("no key for this token")
			}
			return keys, nil
		}
		return nil, errors.New("unexpected algorithm")
	}
	return &Verifier{parser: jwt.NewParser(popts...), keyfunc: keyfunc, policy: opts.Policy, leeway: opts.Leeway}, nil
}

// Verify checks a token and returns its principal. Every refusal is UNAUTHENTICATED, with a
// message that says why but gives no key material away.
func (v *Verifier) Verify(token string) (*Principal, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyfunc); err != nil {
		return nil, apperr.NotAuthenticated(reason(err))
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return nil, apperr.NotAuthenticated("token subject is not a user id")
	}
	if c.Role != Admin && c.Role != User {
		return nil, apperr.NotAuthenticated("token role must be admin or user")
	}
	return &Principal{UserID: id, Role: c.Role, Expires: c.ExpiresAt.Add(v.leeway)}, nil
}

func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token is for another audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token is from another issuer"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature is not valid"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	}
	return "token is not valid"
}

// fromHeader reads "Bearer <token>"; ok is false when there is no such header.
func (v *Verifier) fromHeader(h string) (p *Principal, ok bool, err error) {
	if h == "" {
		return nil, false, nil
	}
	scheme, token, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, true, apperr.NotAuthenticated("authorization must be 'Bearer <token>'")
	}
	p, err = v.Verify(strings.TrimSpace(token))
	return p, true, err
}

// Middleware puts the caller of each request in its context. A missing token is an anonymous
// caller; a refused one is remembered and reported by operations that need a caller.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _, err := v.fromHeader(r.Header.Get("Authorization"))
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), v.policy, p, err)))
	})
}

// WebsocketInit authenticates a websocket from its connection_init payload
// ({"Authorization": "Bearer <token>"}). A refused token closes the socket with 4403, which
// graphql-ws clients take as final rather than retrying forever.
func (v *Verifier) WebsocketInit(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	p, sent, err := v.fromHeader(payload.Authorization())
	if !sent {
		err = from(ctx).refused() // the upgrade request's own header, if any, stands
		p = from(ctx).principal
	}
	if err != nil {
		return transport.WithWebsocketCloseCode(ctx, 4403), nil, err
	}
	return WithCaller(ctx, v.policy, p, nil), nil, nil
}

// Open returns the middleware of AUTH_MODE=none: every caller may do everything.
func Open(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), Policy{Open: true}, nil, nil)))
	})
}

// Mint signs an HS256 token for development and tests: sub is the user id, role admin or user.
func Mint(secret string, sub int64, role Role, ttl time.Duration, issuer, audience string) (string, error) {
	if len(secret) < 32 {
		return "", errors.New("auth: AUTH_JWT_SECRET must be at least 32 bytes")
	}
	if role != Admin && role != User {
		return "", errors.New("auth: role must be admin or user")
	}
	now := time.Now()
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: strconv.FormatInt(sub, 10), IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer: issuer,
	}, Role: role}
	if audience != "" {
		c.Audience = jwt.ClaimStrings{audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}
