package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// DefaultJWKSRefresh is how often the JWKS file is looked at again when Options say nothing.
const DefaultJWKSRefresh = 10 * time.Second

// jwksFile holds the keys of a JWKS file and reads the file again when it changes, so keys
// rotate without a restart. It reads it again
//   - when refresh has passed since the last look, comparing the contents (a small file; mtime
//     alone misses a rewrite of the same size within the file system's timestamp granularity),
//   - when a token names a kid it does not know and the file's size, mtime or inode changed
//     (a stat, so tokens with made-up kids cannot make it read the file over and over).
//
// A file that cannot be read or holds no usable key keeps the previous keys; the error is
// logged once until the next change.
type jwksFile struct {
	path    string
	refresh time.Duration
	logger  *slog.Logger
	start   time.Time // the monotonic origin of due
	due     atomic.Int64
	keys    atomic.Pointer[[]jose.JSONWebKey]

	mu      sync.Mutex // one look at the file at a time; guards the fields below
	stat    os.FileInfo
	sum     [sha256.Size]byte // of the contents last read, usable or not
	lastErr string
}

func openJWKS(path string, refresh time.Duration, logger *slog.Logger) (*jwksFile, error) {
	f := &jwksFile{path: path, refresh: refresh, logger: logger, start: time.Now()}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return nil, err
	}
	f.stat, f.sum = st, sha256.Sum256(b)
	f.keys.Store(&keys)
	f.due.Store(int64(refresh))
	return f, nil
}

// lookup returns the keys that may have signed a token of alg and kid ("" for none).
func (f *jwksFile) lookup(alg, kid string) jwt.VerificationKeySet {
	if time.Since(f.start) >= time.Duration(f.due.Load()) && f.mu.TryLock() {
		f.reread() // requests meanwhile use the keys as they are
		f.mu.Unlock()
	}
	keys := *f.keys.Load()
	if kid != "" && !hasKid(keys, kid) {
		f.mu.Lock()
		f.rereadIfChanged()
		f.mu.Unlock()
		keys = *f.keys.Load()
	}
	return candidates(keys, alg, kid)
}

func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for _, k := range keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

// rereadIfChanged reads the file again if its stat changed. Call with mu held.
func (f *jwksFile) rereadIfChanged() {
	st, err := os.Stat(f.path)
	if err != nil {
		f.unreadable(err)
		return
	}
	if f.stat != nil && os.SameFile(st, f.stat) && st.Size() == f.stat.Size() && st.ModTime().Equal(f.stat.ModTime()) {
		return
	}
	f.reread()
}

// reread reads the file and takes its keys if its contents changed. Call with mu held.
func (f *jwksFile) reread() {
	f.due.Store(int64(time.Since(f.start) + f.refresh))
	// stat before reading: a change in between is then seen again next time, not missed.
	st, err := os.Stat(f.path)
	if err != nil {
		f.unreadable(err)
		return
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.unreadable(err)
		return
	}
	f.stat = st
	sum := sha256.Sum256(b)
	if sum == f.sum {
		return
	}
	f.sum = sum
	keys, err := parseJWKS(b)
	if err != nil {
		f.failed(err)
		return
	}
	f.keys.Store(&keys)
	f.lastErr = ""
	f.logger.Info("JWKS reloaded", "file", f.path, "keys", len(keys))
}

// unreadable: whatever the file holds when it can be read again is read, and logged.
func (f *jwksFile) unreadable(err error) {
	f.stat, f.sum = nil, [sha256.Size]byte{}
	f.failed(err)
}

func (f *jwksFile) failed(err error) {
	if err.Error() == f.lastErr {
		return
	}
	f.lastErr = err.Error()
	f.logger.Error("JWKS reload failed; the previous keys stay in use", "file", f.path, "error", err.Error())
}

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
