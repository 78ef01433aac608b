package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// The server running the first request with an Idempotency-Key is killed (SIGKILL) while its
// INSERT waits on a lock. Retries on another server wait (IDEMPOTENCY_IN_PROGRESS) while the
// claim's lease lasts, then answer OUTCOME_UNKNOWN; none of them writes.
func TestIdempotencyKeyOfACrashedServer(t *testing.T) {
	dbURL := dbtest.Empty(t)
	env := []string{"DATABASE_URL=" + dbURL, "OPERATION_TIMEOUT=1s", "IDEMPOTENCY_LEASE=3s", "LOG_FLUSH_INTERVAL=0"}
	crashing := startServer(t, env...)
	survivor := startServer(t, env...)
	db, err := dbtest.Open(dbURL)
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	var owner int64
	require.NoError(t, db.NewRaw("INSERT INTO users (username, email) VALUES ('crash', 'crash@example.com') RETURNING id").Scan(ctx, &owner))
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: NewItem!) { createItem(input: $in) { id } }`,
		"variables": map[string]any{"in": map[string]any{"ownerId": fmt.Sprint(owner), "title": "crash"}},
	})
	post := func(base string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "crash-key")
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out struct {
			Errors []struct{ Extensions struct{ Code string } }
		}
		_ = json.Unmarshal(b, &out)
		if len(out.Errors) == 0 {
			return resp.StatusCode, string(b)
		}
		return resp.StatusCode, out.Errors[0].Extensions.Code
	}

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "LOCK TABLE items IN SHARE MODE") // the INSERT waits
	require.NoError(t, err)
	first := make(chan string, 1)
	go func() { _, got := post(crashing.base); first <- got }()
	require.Eventually(t, func() bool {
		var n int
		err := db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO "items"%'`).Scan(ctx, &n)
		return err == nil && n == 1
	}, 20*time.Second, 10*time.Millisecond, "the first attempt's INSERT waits")
	require.NoError(t, crashing.cmd.Process.Kill())
	<-crashing.exited
	t.Logf("the first attempt's client saw: %s", <-first)
	require.NoError(t, tx.Rollback())

	// The killed server's backend runs on until PostgreSQL notices its client is gone: its
	// INSERT may well commit now that the lock is free. That is the unknown outcome.
	require.Eventually(t, func() bool {
		var n int
		err := db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE '%INSERT INTO "items"%'`).Scan(ctx, &n)
		return err == nil && n == 0
	}, 20*time.Second, 10*time.Millisecond, "the killed server's INSERT ends")
	var written int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM items WHERE title = 'crash'").Scan(ctx, &written))
	t.Logf("the killed server's write was applied: %v", written == 1)
	var codes []string
	for range 60 {
		status, code := post(survivor.base)
		codes = append(codes, code)
		if code == "OUTCOME_UNKNOWN" {
			assert.Equal(t, http.StatusConflict, status)
			break
		}
		require.Equal(t, "IDEMPOTENCY_IN_PROGRESS", code, "while the lease lasts the retry waits")
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, "OUTCOME_UNKNOWN", codes[len(codes)-1], "after the lease, the outcome is unknown: %v", codes)
	status, code := post(survivor.base)
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "OUTCOME_UNKNOWN", code, "and stays so")
	var after int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM items WHERE title = 'crash'").Scan(ctx, &after))
	assert.Equal(t, written, after, "no retry wrote")
	assert.LessOrEqual(t, after, 1)
}
