package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// parseJWKS returns the keys of a JWKS file that can verify a token: public RS256 or ES256
// (P-256) signature keys. A file without any is an error.
func parseJWKS(b []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, k := range set.Keys {
		if verifies(k) != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS file has no public RS256 or ES256 signature key")
	}
	return keys, nil
}

// verifies is the algorithm k can verify, or "" when it cannot verify tokens: its type (and
// curve) decide, and its alg and use, when set, must agree.
func verifies(k jose.JSONWebKey) string {
	if !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
		return ""
	}
	var alg string
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		alg = "RS256"
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() {
			return ""
		}
		alg = "ES256"
	default:
		return ""
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return ""
	}
	return alg
}

// candidates are the keys a token of alg may have been signed with: those of its kid, or all
// when it has none, that verify alg. The parser tries each in turn.
func candidates(keys []jose.JSONWebKey, alg, kid string) jwt.VerificationKeySet {
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if (kid == "" || k.KeyID == kid) && verifies(k) == alg {
			set.Keys = append(set.Keys, k.Key)
		}
	}
	return set
}
