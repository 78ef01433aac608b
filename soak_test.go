package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// TestSoak runs the built server under a bounded mixed read/write load at high concurrency over
// loopback and checks that nothing fails and memory and goroutines stay flat. It runs only with
// SOAK_DURATION set (make soak); make test skips it.
func TestSoak(t *testing.T) {
	duration, err := time.ParseDuration(os.Getenv("SOAK_DURATION"))
	if err != nil {
		t.Skip("set SOAK_DURATION (e.g. 3m) to soak: make soak")
	}
	concurrency := 64
	if c, err := strconv.Atoi(os.Getenv("SOAK_CONCURRENCY")); err == nil && c > 0 {
		concurrency = c
	}
	// One address drives the whole load: the per-client budget would cap it at one client's share.
	srv := startServer(t, "DATABASE_URL="+dbtest.Empty(t), "LOG_LEVEL=warn",
		"CLIENT_MAX_CONCURRENT_OPERATIONS=0", "CLIENT_COST_PER_SECOND=0")
	defer func() { _ = srv.stop(t) }()
	base := srv.base

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 30 * time.Second}
	post := func(body string) error {
		resp, err := client.Post(base+"/query", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"errors"`) {
			return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
		}
		return nil
	}
	const seeded = 2000
	for i := range seeded {
		require.NoError(t, post(fmt.Sprintf(`{"query":"mutation { createUser(input: {username: \"soak_%d\", email: \"soak_%d@s.example\"}) { id } }"}`, i, i)))
		if i%4 == 0 {
			require.NoError(t, post(fmt.Sprintf(`{"query":"mutation { createItem(input: {ownerId: \"%d\", title: \"item %d\"}) { id } }"}`, i+1, i)))
		}
	}
	sample := func() (rss, goroutines int64) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
		require.NoError(t, err)
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb << 10
			}
		}
		resp, err := http.Get(base + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		sc = bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				goroutines, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		return rss, goroutines
	}

	var (
		requests, failures atomic.Int64
		mu                 sync.Mutex
		latencies          []time.Duration
		firstErr           atomic.Value
		wg                 sync.WaitGroup
	)
	run := func(until time.Time, record bool) {
		for w := range concurrency {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 7))
				var mine []time.Duration
				for i := 0; time.Now().Before(until); i++ {
					var body string
					switch n := r.IntN(10); {
					case n < 6:
						body = fmt.Sprintf(`{"query":"{ user(id: \"%d\") { id username email } }"}`, 1+r.IntN(seeded))
					case n < 8:
						body = `{"query":"{ users(limit: 10) { id username } }"}`
					case n < 9:
						body = `{"query":"{ usersConnection(first: 10) { edges { node { username items(first: 3) { edges { node { title owner { id } } } } } } } }"}`
					default:
						body = fmt.Sprintf(`{"query":"mutation { updateUser(id: \"%d\", input: {email: \"w%d_%d@s.example\"}) { id } }"}`, 1+r.IntN(seeded), w, i)
					}
					start := time.Now()
					err := post(body)
					if record {
						mine = append(mine, time.Since(start))
						requests.Add(1)
						if err != nil {
							failures.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
					}
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	run(time.Now().Add(10*time.Second), false) // warm-up: pool, caches, heap
	rss0, g0 := sample()

	// Subscribers over websocket for the whole run: they must keep receiving, and every one must
	// be released when it goes.
	const subscribers = 16
	var events atomic.Int64
	perSubscriber := make([]atomic.Int64, subscribers)
	var subs []*websocket.Conn
	for i := range subscribers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/query",
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		require.NoError(t, err)
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}))
		var ack map[string]any
		require.NoError(t, wsjson.Read(ctx, conn, &ack))
		require.Equal(t, "connection_ack", ack["type"])
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe",
			"payload": map[string]any{"query": "subscription { userUpdated { id email } }"}}))
		cancel()
		subs = append(subs, conn)
		go func() {
			for {
				var msg map[string]any
				if wsjson.Read(context.Background(), conn, &msg) != nil {
					return
				}
				switch msg["type"] {
				case "next":
					events.Add(1)
					perSubscriber[i].Add(1)
				case "ping": // as every graphql-ws client does; the server drops a socket that stops answering
					_ = wsjson.Write(context.Background(), conn, map[string]any{"type": "pong"})
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return gauge(t, base, "wikigraph_subscriptions_active") == subscribers }, 10*time.Second, 50*time.Millisecond)
	updatesBefore := gauge(t, base, `wikigraph_graphql_operations_total{name="anonymous",outcome="ok",type="mutation"}`)
	run(time.Now().Add(duration), true)
	updates := gauge(t, base, `wikigraph_graphql_operations_total{name="anonymous",outcome="ok",type="mutation"}`) - updatesBefore
	require.Eventually(t, func() bool { return float64(events.Load()) >= updates*subscribers }, 10*time.Second, 100*time.Millisecond,
		"every subscriber hears every update: %d events for %.0f updates", events.Load(), updates)
	for i := range perSubscriber {
		assert.Equal(t, int64(updates), perSubscriber[i].Load(), "subscriber %d", i)
	}
	for _, conn := range subs {
		_ = conn.Close(websocket.StatusNormalClosure, "done")
	}
	require.Eventually(t, func() bool { return gauge(t, base, "wikigraph_subscriptions_active") == 0 }, 10*time.Second, 100*time.Millisecond,
		"every subscription released")
	rss1, g1 := sample()

	slices.Sort(latencies)
	q := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	report := fmt.Sprintf("soak: %s at concurrency %d: %d requests (%.0f/s), %d errors, p50 %s, p99 %s, max %s; RSS %.1f MB -> %.1f MB; goroutines %d -> %d; %d subscribers got %d events",
		duration, concurrency, requests.Load(), float64(requests.Load())/duration.Seconds(), failures.Load(),
		q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond),
		float64(rss0)/(1<<20), float64(rss1)/(1<<20), g0, g1, subscribers, events.Load())
	t.Log(report)
	fmt.Println(report)
	assert.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
	assert.Less(t, rss1, rss0*3/2+(20<<20), "memory flat")
	assert.LessOrEqual(t, g1, g0+10, "goroutines flat")
}

// gauge reads one unlabelled metric from the server's /metrics.
func gauge(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
