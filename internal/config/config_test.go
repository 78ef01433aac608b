package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AUTH_MODE=jwt checks the audience of tokens, or is told explicitly not to.
func TestJWTModeNeedsAnAudience(t *testing.T) {
	t.Setenv("AUTH_MODE", "jwt")
	t.Setenv("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcdef")
	_, err := Load()
	require.ErrorContains(t, err, "AUTH_AUDIENCE")

	t.Setenv("AUTH_AUDIENCE", "wikigraph")
	cfg, err := Load()
	require.NoError(t, err)
	assert.Equal(t, "wikigraph", cfg.AuthAudience)

	t.Setenv("AUTH_ANY_AUDIENCE", "true")
	_, err = Load()
	require.ErrorContains(t, err, "contradict", "an audience and the opt-out together are a mistake")

	t.Setenv("AUTH_AUDIENCE", "")
	cfg, err = Load()
	require.NoError(t, err, "the explicit opt-out")
	assert.True(t, cfg.AuthAnyAudience)

	t.Setenv("AUTH_MODE", "none")
	t.Setenv("AUTH_ANY_AUDIENCE", "")
	_, err = Load()
	require.NoError(t, err, "AUTH_MODE=none checks no token")
}

func TestJWKSRefreshMustBePositive(t *testing.T) {
	cfg, err := Load()
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, cfg.AuthJWKSRefresh)
	t.Setenv("AUTH_JWKS_REFRESH", "0s")
	_, err = Load()
	require.ErrorContains(t, err, "AUTH_JWKS_REFRESH")
}

// A transaction pooler: prepared statements off, LISTEN and migrations on a direct URL that
// defaults to DATABASE_URL.
func TestPoolerSettings(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://pooler/db")
	cfg, err := Load()
	require.NoError(t, err)
	assert.True(t, bool(cfg.DBPreparedStatements), "prepared statements by default")
	assert.Equal(t, "postgres://pooler/db", cfg.DatabaseDirectURL)

	t.Setenv("DATABASE_DIRECT_URL", "postgres://primary/db")
	for value, want := range map[string]bool{"off": false, "false": false, "OFF": false, "0": false, "on": true, "true": true} {
		t.Setenv("DB_PREPARED_STATEMENTS", value)
		cfg, err = Load()
		require.NoError(t, err, value)
		assert.Equal(t, want, bool(cfg.DBPreparedStatements), value)
		assert.Equal(t, "postgres://primary/db", cfg.DatabaseDirectURL)
	}
	t.Setenv("DB_PREPARED_STATEMENTS", "sometimes")
	_, err = Load()
	require.ErrorContains(t, err, `want on or off, got "sometimes"`)
}

// Replicas: none by default; a list with blanks and spaces tidied; lag and wait checked.
func TestReplicaSettings(t *testing.T) {
	cfg, err := Load()
	require.NoError(t, err)
	assert.Empty(t, cfg.DatabaseReplicaURLs)
	assert.Equal(t, 5*time.Second, cfg.ReplicaMaxLag)
	assert.Zero(t, cfg.ReplicaTokenWait)
	assert.Equal(t, time.Second, cfg.ReplicaAnswerTimeout)

	t.Setenv("DATABASE_REPLICA_URLS", "")
	cfg, err = Load()
	require.NoError(t, err)
	assert.Empty(t, cfg.DatabaseReplicaURLs)

	t.Setenv("DATABASE_REPLICA_URLS", " postgres://r1/db, ,postgres://r2/db ")
	cfg, err = Load()
	require.NoError(t, err)
	assert.Equal(t, []string{"postgres://r1/db", "postgres://r2/db"}, cfg.DatabaseReplicaURLs)

	t.Setenv("REPLICA_ANSWER_TIMEOUT", "-1s")
	_, err = Load()
	require.ErrorContains(t, err, "REPLICA_ANSWER_TIMEOUT")
	t.Setenv("REPLICA_ANSWER_TIMEOUT", "0s") // no answer timeout
	_, err = Load()
	require.NoError(t, err)
	t.Setenv("REPLICA_ANSWER_TIMEOUT", "1s")

	t.Setenv("REPLICA_MAX_LAG", "0s")
	_, err = Load()
	require.ErrorContains(t, err, "REPLICA_MAX_LAG")
}

// Trusted documents: off by default, both bypasses off; a bypass without a manifest, the admin
// bypass without admin tokens, or the introspection bypass with introspection off is a mistake.
func TestTrustedDocumentsSettings(t *testing.T) {
	cfg, err := Load()
	require.NoError(t, err)
	assert.Empty(t, cfg.TrustedDocuments)
	assert.False(t, cfg.TrustedDocumentsAdminBypass)
	assert.False(t, cfg.TrustedDocumentsIntrospection)

	t.Setenv("TRUSTED_DOCUMENTS_INTROSPECTION", "true")
	_, err = Load()
	require.ErrorContains(t, err, "need TRUSTED_DOCUMENTS")
	t.Setenv("TRUSTED_DOCUMENTS", "manifest.json")
	cfg, err = Load()
	require.NoError(t, err)
	assert.True(t, cfg.TrustedDocumentsIntrospection)
	t.Setenv("INTROSPECTION", "false")
	_, err = Load()
	require.ErrorContains(t, err, "TRUSTED_DOCUMENTS_INTROSPECTION=true lets introspection through")
	t.Setenv("INTROSPECTION", "true")

	t.Setenv("TRUSTED_DOCUMENTS_ADMIN_BYPASS", "true")
	_, err = Load()
	require.ErrorContains(t, err, "TRUSTED_DOCUMENTS_ADMIN_BYPASS needs AUTH_MODE=jwt")
	t.Setenv("AUTH_MODE", "jwt")
	t.Setenv("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcdef")
	t.Setenv("AUTH_AUDIENCE", "wikigraph")
	cfg, err = Load()
	require.NoError(t, err)
	assert.True(t, cfg.TrustedDocumentsAdminBypass)
}
