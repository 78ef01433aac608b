package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// TestThreeInstancesMigrateAnEmptyDatabaseOnce starts three instances of the built server at
// once against an empty database, as make cluster does: pools through pgbouncer in transaction
// mode, migrations on the direct URL under their advisory lock. All three become ready, each
// migration is recorded once in bun_migrations, and exactly one instance applied them (the
// others found none pending). Without the lock, instances run the same migrations together:
// one fails (relation already exists) and exits, or rows are recorded twice.
func TestThreeInstancesMigrateAnEmptyDatabaseOnce(t *testing.T) {
	direct := dbtest.Empty(t)
	pooler := dbtest.NewPooler(t)
	env := []string{
		"DATABASE_URL=" + pooler.URL(direct), "DATABASE_DIRECT_URL=" + direct, "DB_PREPARED_STATEMENTS=off",
		"LOG_LEVEL=info", "LOG_FLUSH_INTERVAL=0",
	}
	buildBinary(t) // before the three start, so that they start together
	srvs := make([]*running, 3)
	for i := range srvs {
		srvs[i] = launchServer(t, env...)
	}
	for _, srv := range srvs {
		readyOrExited(t, srv, 20*time.Second)
	}

	db, err := dbtest.Open(direct)
	require.NoError(t, err)
	defer db.Close()
	var rows, names int
	require.NoError(t, db.NewRaw("SELECT count(*), count(DISTINCT name) FROM bun_migrations").
		Scan(context.Background(), &rows, &names))
	files, err := filepath.Glob("migrations/*.up.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	assert.Equal(t, len(files), rows, "rows in bun_migrations")
	assert.Equal(t, len(files), names, "migrations in bun_migrations")

	applying := 0
	for _, srv := range srvs {
		logs := stopped(srv)
		require.Contains(t, logs, `"msg":"migrations applied"`)
		if strings.Contains(logs, `"applied":["`) {
			applying++
		}
	}
	assert.Equal(t, 1, applying, "instances that applied migrations")
}

// readyOrExited waits until srv's /readyz answers 200, and fails at once with its logs if it
// exits first.
func readyOrExited(t *testing.T, srv *running, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		select {
		case err := <-srv.exited:
			srv.exited <- err // for stopped
			t.Fatalf("an instance exited before it was ready (%v):\n%s", err, srv.logs)
		default:
		}
		if resp, err := http.Get(srv.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("an instance was not ready after %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
