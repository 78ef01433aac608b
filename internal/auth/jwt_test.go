package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/auth"
)

const (
	audience = "wikigraph"
	secret   = "test-secret-that-is-at-least-32-bytes-long"
)

// keys are generated once per test binary: RSA generation is slow under -race.
var (
	rsaA          = mustRSA()
	ecA, ecB, ecC = mustEC(elliptic.P256()), mustEC(elliptic.P256()), mustEC(elliptic.P256())
	ecP384        = mustEC(elliptic.P384())
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// writeJWKS replaces path with a JWKS of keys the way rotation tools do: a new file renamed over
// the old one.
func writeJWKS(t *testing.T, path string, keys ...jose.JSONWebKey) {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	require.NoError(t, err)
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// sign makes a token for user 7 of this audience; kid "" leaves the header without one.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims{
		"sub": "7", "role": "user", "aud": audience, "exp": time.Now().Add(time.Hour).Unix(),
	})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func pub(key any, kid, alg string) jose.JSONWebKey {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: alg}
	case *ecdsa.PrivateKey:
		return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: alg}
	}
	panic(fmt.Sprintf("unexpected key %T", key))
}

// A token is checked against every key of its kid (or every key, without one) that can verify
// its algorithm: the key type, the curve, the key's alg and use all have to fit.
func TestJWKSKeyChoice(t *testing.T) {
	sigUse := func(k jose.JSONWebKey, use string) jose.JSONWebKey { k.Use = use; return k }
	cases := []struct {
		name   string
		keys   []jose.JSONWebKey
		token  string
		accept bool
	}{
		{"ES256 without kid, JWKS [RSA, EC] without alg", []jose.JSONWebKey{pub(rsaA, "", ""), pub(ecA, "", "")},
			sign(t, jwt.SigningMethodES256, ecA, ""), true},
		{"RS256 without kid, JWKS [EC, RSA] without alg", []jose.JSONWebKey{pub(ecA, "", ""), pub(rsaA, "", "")},
			sign(t, jwt.SigningMethodRS256, rsaA, ""), true},
		{"ES256 without kid, the second of two EC keys", []jose.JSONWebKey{pub(ecA, "a", "ES256"), pub(ecB, "b", "ES256")},
			sign(t, jwt.SigningMethodES256, ecB, ""), true},
		{"ES256 with a kid that an RSA key shares", []jose.JSONWebKey{pub(rsaA, "k", ""), pub(ecA, "k", "")},
			sign(t, jwt.SigningMethodES256, ecA, "k"), true},
		{"ES256 with a kid two EC keys share, the second", []jose.JSONWebKey{pub(ecA, "k", ""), pub(ecB, "k", "")},
			sign(t, jwt.SigningMethodES256, ecB, "k"), true},
		{"ES256 with the kid of another key", []jose.JSONWebKey{pub(ecA, "a", "ES256"), pub(ecB, "b", "ES256")},
			sign(t, jwt.SigningMethodES256, ecB, "a"), false},
		{"ES256 with an unknown kid", []jose.JSONWebKey{pub(ecA, "a", "ES256")},
			sign(t, jwt.SigningMethodES256, ecA, "zz"), false},
		{"ES256 with the kid of an RSA key", []jose.JSONWebKey{pub(rsaA, "r", ""), pub(ecA, "e", "")},
			sign(t, jwt.SigningMethodES256, ecA, "r"), false},
		{"ES256 against an EC key whose alg is ES384", []jose.JSONWebKey{pub(ecA, "", "ES384"), pub(rsaA, "", "")},
			sign(t, jwt.SigningMethodES256, ecA, ""), false},
		{"ES256 against an EC key whose alg is RS256", []jose.JSONWebKey{pub(ecA, "", "RS256"), pub(rsaA, "", "")},
			sign(t, jwt.SigningMethodES256, ecA, ""), false},
		{"ES256 against a P-384 key", []jose.JSONWebKey{pub(ecP384, "", ""), pub(rsaA, "", "")},
			sign(t, jwt.SigningMethodES256, ecA, ""), false},
		{"ES256 against a key for encryption", []jose.JSONWebKey{sigUse(pub(ecA, "", ""), "enc"), pub(rsaA, "", "")},
			sign(t, jwt.SigningMethodES256, ecA, ""), false},
		{"ES256 against a key for signatures", []jose.JSONWebKey{sigUse(pub(ecA, "", ""), "sig")},
			sign(t, jwt.SigningMethodES256, ecA, ""), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "jwks.json")
			writeJWKS(t, file, c.keys...)
			v, err := auth.NewVerifier(auth.Options{JWKSFile: file, Audience: audience})
			require.NoError(t, err)
			p, err := v.Verify(c.token)
			if c.accept {
				require.NoError(t, err)
				assert.Equal(t, int64(7), p.UserID)
			} else {
				require.ErrorIs(t, err, apperr.ErrUnauthenticated)
			}
		})
	}
}

// A JWKS file of which no key can verify a token is a configuration mistake, refused at start.
func TestJWKSWithoutUsableKeyIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	enc := pub(ecA, "", "")
	enc.Use = "enc"
	writeJWKS(t, file, pub(ecP384, "", ""), enc, jose.JSONWebKey{Key: ecA, KeyID: "private"})
	_, err := auth.NewVerifier(auth.Options{JWKSFile: file, Audience: audience})
	require.ErrorContains(t, err, "no public RS256 or ES256 signature key")
}

// Without an audience, any token of a shared identity provider with a numeric sub and a role
// would pass: JWT verification needs one.
func TestVerifierNeedsAnAudience(t *testing.T) {
	_, err := auth.NewVerifier(auth.Options{Secret: secret})
	require.ErrorContains(t, err, "AUTH_AUDIENCE")
	_, err = auth.NewVerifier(auth.Options{Secret: secret, Audience: audience, AnyAudience: true})
	require.ErrorContains(t, err, "contradict")

	elsewhere := func(aud any) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "7", "role": "user", "aud": aud, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		require.NoError(t, err)
		return tok
	}
	v, err := auth.NewVerifier(auth.Options{Secret: secret, Audience: audience})
	require.NoError(t, err)
	_, err = v.Verify(elsewhere("another-service"))
	require.ErrorIs(t, err, apperr.ErrUnauthenticated)
	_, err = v.Verify(elsewhere(nil))
	require.ErrorIs(t, err, apperr.ErrUnauthenticated, "a token without aud is refused")
	_, err = v.Verify(elsewhere([]string{"another-service", audience}))
	require.NoError(t, err)

	// The explicit opt-out.
	v, err = auth.NewVerifier(auth.Options{Secret: secret, AnyAudience: true})
	require.NoError(t, err)
	_, err = v.Verify(elsewhere("another-service"))
	require.NoError(t, err)
}

// Keys rotate without a restart: a token of a kid the verifier does not know makes it look at
// the file again, and a key gone from the file is refused from then on.
func TestJWKSRotation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, file, pub(ecA, "a", "ES256"))
	v, err := auth.NewVerifier(auth.Options{JWKSFile: file, Audience: audience})
	require.NoError(t, err)
	accepts := func(tok string) error { _, err := v.Verify(tok); return err }

	require.NoError(t, accepts(sign(t, jwt.SigningMethodES256, ecA, "a")))
	writeJWKS(t, file, pub(ecB, "b", "ES256"), pub(rsaA, "r", "RS256"))
	require.NoError(t, accepts(sign(t, jwt.SigningMethodES256, ecB, "b")), "the new key")
	require.NoError(t, accepts(sign(t, jwt.SigningMethodRS256, rsaA, "r")), "the new key")
	require.ErrorIs(t, accepts(sign(t, jwt.SigningMethodES256, ecA, "a")), apperr.ErrUnauthenticated, "the removed key")
}

// Keys without a kid rotate too, found by the periodic look at the file, which compares
// contents: here the file is rewritten in place, and may keep its size and mtime.
func TestJWKSRotationInPlace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	write := func(keys ...jose.JSONWebKey) {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(file, b, 0o600))
	}
	write(pub(ecA, "", ""))
	// A refresh of a nanosecond: every token looks at the file (the test needs no clock).
	v, err := auth.NewVerifier(auth.Options{JWKSFile: file, Audience: audience, JWKSRefresh: time.Nanosecond})
	require.NoError(t, err)
	accepts := func(tok string) error { _, err := v.Verify(tok); return err }

	require.NoError(t, accepts(sign(t, jwt.SigningMethodES256, ecA, "")))
	write(pub(ecB, "", ""))
	require.NoError(t, accepts(sign(t, jwt.SigningMethodES256, ecB, "")), "the new key")
	require.ErrorIs(t, accepts(sign(t, jwt.SigningMethodES256, ecA, "")), apperr.ErrUnauthenticated, "the removed key")
}

// A broken or missing file keeps the keys in use and says so in the log, once; the next good
// file is taken.
func TestJWKSBrokenRotationKeepsKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, file, pub(ecA, "a", ""))
	var logs bytes.Buffer
	v, err := auth.NewVerifier(auth.Options{JWKSFile: file, Audience: audience, JWKSRefresh: time.Nanosecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	accepts := func(tok string) error { _, err := v.Verify(tok); return err }
	tokA := sign(t, jwt.SigningMethodES256, ecA, "a")

	for _, broken := range []string{`{"keys": [`, `{"keys": []}`, `{"keys": [{"kty": "EC", "crv": "P-256"}]}`} {
		logs.Reset()
		tmp := file + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(broken), 0o600))
		require.NoError(t, os.Rename(tmp, file))
		for range 3 {
			require.NoError(t, accepts(tokA), broken)
			require.ErrorIs(t, accepts(sign(t, jwt.SigningMethodES256, ecB, "b")), apperr.ErrUnauthenticated, broken)
		}
		assert.Equal(t, 1, strings.Count(logs.String(), "JWKS reload failed"), "logged once: %s", logs.String())
	}

	logs.Reset()
	require.NoError(t, os.Remove(file))
	for range 3 {
		require.NoError(t, accepts(tokA), "missing file")
		require.ErrorIs(t, accepts(sign(t, jwt.SigningMethodES256, ecB, "b")), apperr.ErrUnauthenticated)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "JWKS reload failed"), "logged once: %s", logs.String())

	writeJWKS(t, file, pub(ecB, "b", ""))
	require.NoError(t, accepts(sign(t, jwt.SigningMethodES256, ecB, "b")), "the next good file")
	require.ErrorIs(t, accepts(tokA), apperr.ErrUnauthenticated)
	assert.Contains(t, logs.String(), "JWKS reloaded")
}

// Verifications go on while the file rotates (run with -race): each token is either accepted
// or refused as UNAUTHENTICATED, and once rotation stops the file's key is the one in use.
func TestJWKSRotationConcurrent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	keys := []*ecdsa.PrivateKey{ecA, ecB, ecC}
	kids := []string{"a", "b", "c"}
	writeJWKS(t, file, pub(ecA, "a", ""))
	v, err := auth.NewVerifier(auth.Options{JWKSFile: file, Audience: audience, JWKSRefresh: time.Nanosecond,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	var tokens []string
	for i, k := range keys {
		tokens = append(tokens, sign(t, jwt.SigningMethodES256, k, kids[i]), sign(t, jwt.SigningMethodES256, k, ""))
	}

	var wg sync.WaitGroup
	unexpected := make(chan error, 4*300)
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				_, err := v.Verify(tokens[(w+i)%len(tokens)])
				if err != nil && !errors.Is(err, apperr.ErrUnauthenticated) {
					unexpected <- err
				}
			}
		})
	}
	for i := range 60 {
		writeJWKS(t, file, pub(keys[i%3], kids[i%3], ""))
	}
	wg.Wait()
	close(unexpected)
	for err := range unexpected {
		t.Error(err)
	}
	// The last file holds key c (59 % 3 == 2).
	for i, tok := range tokens {
		_, err := v.Verify(tok)
		if i/2 == 2 {
			assert.NoError(t, err, "token %d", i)
		} else {
			assert.ErrorIs(t, err, apperr.ErrUnauthenticated, "token %d", i)
		}
	}
}
