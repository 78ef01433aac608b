package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/idempotency"
)

func keyed(o idempotency.Options) writerOptions {
	return writerOptions{wrap: func(db *bun.DB, next http.Handler) http.Handler {
		return idempotency.New(db, o).Middleware(next)
	}}
}

// seedOwner inserts a user and returns its id, as the GraphQL ID.
func seedOwner(t *testing.T, db *bun.DB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e9)
	var id int64
	require.NoError(t, db.NewRaw("INSERT INTO users (username, email) VALUES (?, ?) RETURNING id", name, name+"@example.com").
		Scan(context.Background(), &id))
	return fmt.Sprint(id)
}

func createItemBody(t *testing.T, owner, title string) []byte {
	return body(t, `mutation($in: NewItem!) { createItem(input: $in) { id title owner { id } } }`,
		map[string]any{"in": map[string]any{"ownerId": owner, "title": title}})
}

func TestIdempotencyKey(t *testing.T) {
	w := startWriter(t, dbtest.URL(t), keyed(idempotency.Options{}))
	owner := seedOwner(t, w.db, "idem")
	items := func(title string) int { return count(t, w.db, "SELECT count(*) FROM items WHERE title = ?", title) }

	t.Run("same key and body: the first answer, written once", func(t *testing.T) {
		key := fmt.Sprintf("k-%d", time.Now().UnixNano())
		b := createItemBody(t, owner, key)
		first := post(t, w.base, b, "Idempotency-Key", key)
		require.Equal(t, http.StatusOK, first.status, "%s", first.body)
		require.Equal(t, "", first.code(), "%s", first.body)
		assert.Empty(t, first.header.Get("Idempotent-Replayed"))
		second := post(t, w.base, b, "Idempotency-Key", key)
		assert.Equal(t, http.StatusOK, second.status)
		assert.Equal(t, string(first.body), string(second.body), "the same answer")
		assert.Equal(t, "true", second.header.Get("Idempotent-Replayed"))
		assert.Equal(t, first.header.Get("Content-Type"), second.header.Get("Content-Type"))
		assert.NotEqual(t, first.header.Get("X-Request-Id"), second.header.Get("X-Request-Id"), "a request id of its own")
		assert.Equal(t, 1, items(key), "written once")

		other := post(t, w.base, createItemBody(t, owner, key+"-other"), "Idempotency-Key", key)
		assert.Equal(t, http.StatusUnprocessableEntity, other.status)
		assert.Equal(t, "IDEMPOTENCY_KEY_REUSED", other.code(), "%s", other.body)
		assert.Equal(t, 0, items(key+"-other"), "refused, not written")

		plain := post(t, w.base, b)
		assert.Equal(t, "", plain.code(), "without the key a request runs again")
		assert.Equal(t, 2, items(key))
	})
	t.Run("over a streaming transport too", func(t *testing.T) {
		// A client that accepts multipart/mixed on every POST (as Apollo Client does): the
		// answer is kept whole and replayed; it used to be 500, streaming unsupported.
		key := fmt.Sprintf("k-%d", time.Now().UnixNano())
		b := createItemBody(t, owner, key)
		first := post(t, w.base, b, "Idempotency-Key", key, "Accept", "multipart/mixed;deferSpec=20220824,application/json")
		require.Equal(t, http.StatusOK, first.status, "%s", first.body)
		assert.Contains(t, string(first.body), `"createItem"`)
		second := post(t, w.base, b, "Idempotency-Key", key, "Accept", "multipart/mixed;deferSpec=20220824,application/json")
		assert.Equal(t, string(first.body), string(second.body), "the same answer")
		assert.Equal(t, "true", second.header.Get("Idempotent-Replayed"))
		assert.Equal(t, 1, items(key), "written once")
	})
	t.Run("an answer that wrote is kept even when it is an error", func(t *testing.T) {
		key := fmt.Sprintf("k-%d", time.Now().UnixNano())
		b := createItemBody(t, "999999999", key) // no such owner
		first := post(t, w.base, b, "Idempotency-Key", key)
		require.Equal(t, "BAD_USER_INPUT", first.code(), "%s", first.body)
		second := post(t, w.base, b, "Idempotency-Key", key)
		assert.Equal(t, string(first.body), string(second.body))
		assert.Equal(t, "true", second.header.Get("Idempotent-Replayed"))
	})
	t.Run("a query with a key just runs", func(t *testing.T) {
		b := body(t, `{ items(limit: 1) { id } }`, nil)
		for range 2 {
			a := post(t, w.base, b, "Idempotency-Key", "query-key")
			assert.Equal(t, "", a.code(), "%s", a.body)
			assert.Empty(t, a.header.Get("Idempotent-Replayed"))
		}
		assert.Zero(t, count(t, w.db, "SELECT count(*) FROM idempotency_keys WHERE key = 'query-key'"))
	})
	t.Run("malformed keys", func(t *testing.T) {
		b := createItemBody(t, owner, "malformed")
		for _, key := range []string{strings.Repeat("k", idempotency.MaxKeyLength+1), "tab\tkey", "é"} {
			a := post(t, w.base, b, "Idempotency-Key", key)
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Equal(t, "IDEMPOTENCY_KEY_INVALID", a.code())
		}
		a := post(t, w.base, b, "Idempotency-Key", "a", "Idempotency-Key", "b")
		assert.Equal(t, "IDEMPOTENCY_KEY_INVALID", a.code(), "two keys")
		assert.Equal(t, 0, items("malformed"))
	})
	t.Run("an abandoned claim answers OUTCOME_UNKNOWN and never runs", func(t *testing.T) {
		// What a crashed instance leaves: a claim whose lease has ended, with no answer.
		key := fmt.Sprintf("k-%d", time.Now().UnixNano())
		b := createItemBody(t, owner, key)
		_, err := w.db.NewRaw(`INSERT INTO idempotency_keys (scope, key, request_hash, owner, lease_until, expires_at)
			VALUES ('', ?, sha256(?::bytea), 'gone', now() - interval '1 second', now() + interval '1 hour')`, key, string(b)).
			Exec(context.Background())
		require.NoError(t, err)
		a := post(t, w.base, b, "Idempotency-Key", key)
		assert.Equal(t, http.StatusConflict, a.status)
		assert.Equal(t, "OUTCOME_UNKNOWN", a.code(), "%s", a.body)
		assert.Equal(t, 0, items(key))
	})
	t.Run("an expired key is claimed again and purged", func(t *testing.T) {
		key := fmt.Sprintf("k-%d", time.Now().UnixNano())
		b := createItemBody(t, owner, key)
		require.Equal(t, "", post(t, w.base, b, "Idempotency-Key", key).code())
		_, err := w.db.NewRaw(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = ?`, key).
			Exec(context.Background())
		require.NoError(t, err)
		a := post(t, w.base, b, "Idempotency-Key", key)
		assert.Empty(t, a.header.Get("Idempotent-Replayed"), "past its retention a key is new")
		assert.Equal(t, 2, items(key))
		_, err = w.db.NewRaw(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = ?`, key).
			Exec(context.Background())
		require.NoError(t, err)
		n, err := idempotency.New(w.db, idempotency.Options{}).Purge(context.Background())
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n, 1)
		assert.Zero(t, count(t, w.db, "SELECT count(*) FROM idempotency_keys WHERE key = ?", key))
	})
}

// Retries of one createItem race its first attempt on two instances over one database: the
// first attempt's INSERT is held on a lock while they arrive. Exactly one item is written; every
// answer is that attempt's success, replayed, or (on the instance that waits only a moment)
// IDEMPOTENCY_IN_PROGRESS with Retry-After.
func TestIdempotencyKeyRacesAcrossInstances(t *testing.T) {
	u := dbtest.URL(t)
	waits := startWriter(t, u, keyed(idempotency.Options{Wait: 20 * time.Second}))
	hurries := startWriter(t, u, keyed(idempotency.Options{Wait: time.Millisecond}))
	owner := seedOwner(t, waits.db, "race")
	key := fmt.Sprintf("race-%d", time.Now().UnixNano())
	b := createItemBody(t, owner, key)

	release := lockTable(t, waits.db, "items", "SHARE") // the INSERT waits
	const perInstance = 6
	type result struct {
		from string
		a    answer
	}
	results := make(chan result, 2*perInstance)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, in := range []struct {
		name string
		w    *writer
	}{{"waits", waits}, {"hurries", hurries}} {
		for range perInstance {
			wg.Go(func() {
				<-start
				results <- result{in.name, post(t, in.w.base, b, "Idempotency-Key", key)}
			})
		}
	}
	close(start)
	waitBlocked(t, waits.db, "%INSERT INTO \"items\"%")
	// Every request of the hurried instance but the first attempt (if it is there) answers
	// while the INSERT still waits.
	var got []result
	hurried := 0
	deadline := time.After(30 * time.Second)
	for hurried < perInstance-1 {
		select {
		case r := <-results:
			got = append(got, r)
			if r.from == "hurries" {
				hurried++
			}
		case <-deadline:
			t.Fatalf("the hurried instance answered %d of %d", hurried, perInstance-1)
		}
	}
	release()
	wg.Wait()
	close(results)
	for r := range results {
		got = append(got, r)
	}
	require.Len(t, got, 2*perInstance)

	assert.Equal(t, 1, count(t, waits.db, "SELECT count(*) FROM items WHERE title = ?", key), "written once")
	var success string
	var ok, inProgress int
	for _, r := range got {
		switch r.a.status {
		case http.StatusOK:
			ok++
			require.Equal(t, "", r.a.code(), "%s", r.a.body)
			if success == "" {
				success = string(r.a.body)
			}
			assert.Equal(t, success, string(r.a.body), "every success is the first attempt's answer")
		case http.StatusConflict:
			inProgress++
			assert.Equal(t, "hurries", r.from)
			assert.Equal(t, "IDEMPOTENCY_IN_PROGRESS", r.a.code(), "%s", r.a.body)
			assert.Equal(t, "1", r.a.header.Get("Retry-After"))
		default:
			t.Errorf("unexpected answer %d from %s: %s", r.a.status, r.from, r.a.body)
		}
	}
	assert.GreaterOrEqual(t, inProgress, perInstance-1, "the hurried retries met the first attempt running")
	assert.GreaterOrEqual(t, ok, perInstance, "the waiting retries got the answer")
	for _, w := range []*writer{waits, hurries} {
		a := post(t, w.base, b, "Idempotency-Key", key)
		assert.Equal(t, success, string(a.body), "a later retry replays it")
		assert.Equal(t, "true", a.header.Get("Idempotent-Replayed"))
	}
	assert.Equal(t, 1, count(t, waits.db, "SELECT count(*) FROM items WHERE title = ?", key), "still written once")
}
