package httpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

// privateDatabase starts a private cluster with a migrated wikigraph database.
func privateDatabase(t *testing.T) (*dbtest.Server, string) {
	t.Helper()
	pg := dbtest.NewServer(t)
	admin, err := dbtest.Open(pg.URL)
	require.NoError(t, err)
	_, err = admin.ExecContext(context.Background(), "CREATE DATABASE wikigraph")
	require.NoError(t, err)
	admin.Close()
	u := strings.Replace(pg.URL, "/postgres?", "/wikigraph?", 1)
	migrator, err := dbtest.Open(u)
	require.NoError(t, err)
	_, err = database.Up(context.Background(), migrator)
	require.NoError(t, err)
	migrator.Close()
	return pg, u
}

type outcome struct {
	at      time.Time
	took    time.Duration
	code    string // "" for success
	written string // the id a createUser acknowledged
}

// PostgreSQL stopped and restarted under steady load: requests during the outage fail fast with
// SERVICE_UNAVAILABLE, /readyz says 503, and the server recovers by itself without leaking
// connections; every acknowledged write is in the database.
func TestDatabaseRestartUnderLoad(t *testing.T) {
	pg, u := privateDatabase(t)
	in := startInstance(t, u)
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(query string, vars map[string]any) outcome {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		start := time.Now()
		resp, err := client.Post("http://"+in.base+"/query", "application/json", strings.NewReader(string(body)))
		o := outcome{at: start}
		if err != nil {
			o.code = "transport: " + err.Error()
			return o
		}
		defer resp.Body.Close()
		var out struct {
			Data   map[string]map[string]any
			Errors []struct{ Extensions map[string]any }
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		o.took = time.Since(start)
		if len(out.Errors) > 0 {
			o.code, _ = out.Errors[0].Extensions["code"].(string)
		} else if c := out.Data["createUser"]; c != nil {
			o.written, _ = c["id"].(string)
		}
		return o
	}

	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var o outcome
				if i%2 == 0 {
					o = post(`{ users(limit: 5) { id } }`, nil)
				} else {
					name := fmt.Sprintf("load_%d_%d", w, i)
					o = post(`mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
						map[string]any{"u": name, "e": name + "@load.example"})
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	ready := func() int {
		resp, err := http.Get("http://" + in.base + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	time.Sleep(time.Second)
	require.Equal(t, http.StatusOK, ready())
	down := time.Now()
	pg.Stop(t)
	time.Sleep(2 * time.Second)
	assert.Equal(t, http.StatusServiceUnavailable, ready(), "not ready while the database is down")
	pg.Start(t)
	up := time.Now()
	require.Eventually(t, func() bool { return ready() == http.StatusOK }, 15*time.Second, 100*time.Millisecond, "ready again")
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	var failed, succeededAfter, unknown int
	var recovered time.Time
	acknowledged := map[string]bool{}
	for _, o := range outcomes {
		switch {
		case o.code == "":
			if o.at.After(up) {
				succeededAfter++
				if recovered.IsZero() || o.at.Before(recovered) {
					recovered = o.at
				}
			}
			if o.written != "" {
				acknowledged[o.written] = true
			}
		case o.code == "OUTCOME_UNKNOWN":
			// A createUser sent as the connection broke: not acknowledged, nothing to check.
			unknown++
			assert.True(t, o.at.After(down.Add(-time.Second)), "errors only around the outage")
		default:
			failed++
			assert.Equal(t, "SERVICE_UNAVAILABLE", o.code, "a clear code during the outage")
			assert.Less(t, o.took, 6*time.Second, "failed fast, not at the deadline")
			assert.True(t, o.at.After(down.Add(-time.Second)), "errors only around the outage")
		}
	}
	assert.Positive(t, failed, "some requests met the outage")
	assert.Positive(t, succeededAfter, "requests succeed again")
	assert.Less(t, recovered.Sub(up), 10*time.Second, "recovered within seconds of the database returning")
	t.Logf("%d requests, %d failed during the outage (and %d writes with an unknown outcome), recovered %.1fs after the database returned",
		len(outcomes), failed, unknown, recovered.Sub(up).Seconds())

	ctx := context.Background()
	stats := in.db.Stats()
	assert.Zero(t, stats.InUse, "no connection held once the load stopped")
	var connections int
	require.NoError(t, in.db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'wikigraph-test'").Scan(ctx, &connections))
	assert.LessOrEqual(t, connections, in.db.Stats().OpenConnections+1, "no leaked connections: the pool's own and the listener's")
	var ids []int64
	require.NoError(t, in.db.NewRaw("SELECT id FROM users").Scan(ctx, &ids))
	present := map[string]bool{} // by global id, as createUser answered
	for _, id := range ids {
		present[gqlscalar.ID{Type: gqlscalar.TypeUser, Row: id}.String()] = true
	}
	for id := range acknowledged {
		assert.True(t, present[id], "acknowledged write %s is in the database", id)
	}
}
