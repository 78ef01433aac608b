package main

// The mixed load over a running cluster (-mixed, make bench-cluster): clients that write and
// then read their writes through the load balancer, with and without Consistency-Tokens, and
// what the instances' metrics say of where the reads went.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// mixedOptions configure the mixed load.
type mixedOptions struct {
	url         string   // the load balancer's /query
	metrics     []string // each instance's /metrics
	concurrency int
	window      time.Duration
	writeEvery  int // one operation in writeEvery is a mutation
}

// mixedPhase is one phase's outcome.
type mixedPhase struct {
	Tokens       bool    `json:"tokens"`
	Reads        int     `json:"reads"`
	Writes       int     `json:"writes"`
	Errors       int     `json:"errors"`
	Stale        int     `json:"stale_reads"` // a read of the client's last write that missed it
	ReplicaShare float64 `json:"replica_share"`
	ReadP50ms    float64 `json:"read_p50_ms"`
	ReadP99ms    float64 `json:"read_p99_ms"`
	// Reads with a token that asked the replicas (wikigraph_db_token_wait_seconds): how many,
	// how many a replica served, and the time the search took (upper bounds of histogram buckets).
	Searched      int     `json:"token_searches"`
	SearchReplica int     `json:"token_searches_served_by_replica"`
	SearchP50ms   float64 `json:"token_search_p50_ms"`
	SearchP99ms   float64 `json:"token_search_p99_ms"`
	FirstError    string  `json:"first_error,omitempty"`
}

func runMixed(ctx context.Context, opts mixedOptions, out string) error {
	var phases []mixedPhase
	for _, tokens := range []bool{true, false} {
		p, err := mixedRun(ctx, opts, tokens)
		if err != nil {
			return err
		}
		phases = append(phases, p)
	}
	fmt.Printf("\nmixed load through %s: %d clients, %s per phase, one mutation in %d operations\n\n",
		opts.url, opts.concurrency, opts.window, opts.writeEvery)
	fmt.Println("| tokens | reads | writes | errors | stale reads of own write | replica share of reads | read p50 / p99 | token reads that asked the replicas | served by a replica | search p50 / p99 |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
	for _, p := range phases {
		fmt.Printf("| %v | %d | %d | %d | %d | %.1f%% | %.2f / %.2f ms | %d | %d | ≤ %.2f / ≤ %.2f ms |\n",
			p.Tokens, p.Reads, p.Writes, p.Errors, p.Stale, 100*p.ReplicaShare, p.ReadP50ms, p.ReadP99ms,
			p.Searched, p.SearchReplica, p.SearchP50ms, p.SearchP99ms)
	}
	data, _ := json.MarshalIndent(phases, "", "  ")
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON: %s\n", out)
	for _, p := range phases {
		if p.Errors > 0 {
			return fmt.Errorf("%d requests failed, first: %s", p.Errors, p.FirstError)
		}
		if p.Tokens && p.Stale > 0 {
			return fmt.Errorf("%d reads with a token missed their write", p.Stale)
		}
	}
	return nil
}

// mixedRun drives the load for one phase and reads the metrics around it.
func mixedRun(ctx context.Context, opts mixedOptions, tokens bool) (mixedPhase, error) {
	before, err := scrapeAll(opts.metrics)
	if err != nil {
		return mixedPhase{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.window)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: opts.concurrency}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	run := strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
	var mu sync.Mutex
	phase := mixedPhase{Tokens: tokens}
	var lat []time.Duration
	var wg sync.WaitGroup
	for c := range opts.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := mixedClient{hc: hc, url: opts.url, name: fmt.Sprintf("m%s%v%d", run, tokens, c), tokens: tokens}
			var mine []time.Duration
			reads, writes, stale, errs := 0, 0, 0, 0
			first := ""
			fail := func(err error) {
				errs++
				if first == "" {
					first = err.Error()
				}
			}
			for i := 0; ctx.Err() == nil; i++ {
				if cl.id == "" || i%opts.writeEvery == 0 {
					if err := cl.write(i); err != nil {
						if ctx.Err() == nil {
							fail(err)
						}
						continue
					}
					writes++
					continue
				}
				began := time.Now()
				missed, err := cl.read(i)
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					fail(err)
					continue
				}
				mine = append(mine, time.Since(began))
				reads++
				if missed {
					stale++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			phase.Reads += reads
			phase.Writes += writes
			phase.Stale += stale
			phase.Errors += errs
			if phase.FirstError == "" {
				phase.FirstError = first
			}
		}()
	}
	wg.Wait()
	after, err := scrapeAll(opts.metrics)
	if err != nil {
		return phase, err
	}
	d := func(name string) float64 { return after[name] - before[name] }
	var replica, primary float64
	for name := range after {
		if strings.HasPrefix(name, "wikigraph_db_reads_total{") {
			if name == `wikigraph_db_reads_total{target="primary"}` {
				primary += d(name)
			} else {
				replica += d(name)
			}
		}
	}
	if replica+primary > 0 {
		phase.ReplicaShare = replica / (replica + primary)
	}
	slices.Sort(lat)
	phase.ReadP50ms, phase.ReadP99ms = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99))
	phase.SearchReplica = int(d(`wikigraph_db_token_wait_seconds_count{served="replica"}`))
	phase.Searched = phase.SearchReplica + int(d(`wikigraph_db_token_wait_seconds_count{served="primary"}`))
	phase.SearchP50ms, phase.SearchP99ms = bucketQuantile(before, after, 0.5), bucketQuantile(before, after, 0.99)
	return phase, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// bucketQuantile is the upper bound, in ms, of the token-wait bucket holding quantile q of the
// searches between two scrapes (both served labels together).
func bucketQuantile(before, after map[string]float64, q float64) float64 {
	counts := map[float64]float64{}
	for name, v := range after {
		rest, ok := strings.CutPrefix(name, "wikigraph_db_token_wait_seconds_bucket{")
		if !ok {
			continue
		}
		_, le, ok := strings.Cut(rest, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		bound := math.Inf(1)
		if le != "+Inf" {
			bound, _ = strconv.ParseFloat(le, 64)
		}
		counts[bound] += v - before[name]
	}
	bounds := make([]float64, 0, len(counts))
	for b := range counts {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 || counts[bounds[len(bounds)-1]] == 0 {
		return 0
	}
	total := counts[bounds[len(bounds)-1]] // cumulative: +Inf holds them all
	for _, b := range bounds {
		if counts[b] >= q*total {
			return b * 1000
		}
	}
	return math.Inf(1)
}

// scrapeAll sums each sample over the instances' /metrics.
func scrapeAll(urls []string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				continue
			}
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] += v
			}
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mixedClient is one client: it creates a user of its own, changes its email from time to
// time, and reads it back (and a page of users) in between.
type mixedClient struct {
	hc     *http.Client
	url    string
	name   string
	tokens bool
	token  string
	id     string
	email  string // the last one written
}

func (c *mixedClient) write(i int) error {
	c.email = fmt.Sprintf("%s-%d@mixed.example", c.name, i)
	if c.id == "" || rand.IntN(4) == 0 {
		var out struct {
			CreateUser struct{ ID string }
		}
		if err := c.do(`mutation($u: String!, $e: String!) { createUser(input: {username: $u, email: $e}) { id } }`,
			map[string]any{"u": fmt.Sprintf("%s-%d", c.name, i), "e": c.email}, &out); err != nil {
			return err
		}
		c.id = out.CreateUser.ID
		return nil
	}
	return c.do(`mutation($id: ID!, $e: String!) { updateUser(id: $id, input: {email: $e}) { id } }`,
		map[string]any{"id": c.id, "e": c.email}, nil)
}

// read reads the client's user (and, every other time, a page of users); missed reports that
// it did not see the last email written.
func (c *mixedClient) read(i int) (missed bool, err error) {
	var out struct {
		User *struct{ Email string }
	}
	query := `query($id: ID!) { user(id: $id) { email } }`
	if i%2 == 0 {
		query = `query($id: ID!) { user(id: $id) { email } usersConnection(first: 10) { edges { node { id username } } } }`
	}
	if err := c.do(query, map[string]any{"id": c.id}, &out); err != nil {
		return false, err
	}
	return out.User == nil || out.User.Email != c.email, nil
}

func (c *mixedClient) do(query string, vars map[string]any, data any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.tokens && c.token != "" {
		req.Header.Set("Consistency-Token", c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &answer); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
	}
	if len(answer.Errors) > 0 {
		return fmt.Errorf("%s", answer.Errors[0].Message)
	}
	if t := resp.Header.Get("Consistency-Token"); t != "" {
		c.token = t
	}
	if data != nil {
		return json.Unmarshal(answer.Data, data)
	}
	return nil
}
