package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The hostile-client suite behind `make attack` (-attack): the attacks of issue 17, each against
// a freshly started server with its defaults, measured from outside: what it was answered, the
// server's CPU time until it was idle again, its peak RSS, and the latency of a cheap query that
// another client sent meanwhile. Every attack is bounded in requests and in time: what has no
// answer when its time is up is reported as such.

// attackUsers is how many users the suite seeds, with 5 items each.
const attackUsers = 20_000

// attackOptions bound the suite.
type attackOptions struct {
	timeout time.Duration  // an attack's requests are given up after this
	docs    int            // distinct 900 KB documents sent (the issue sent 797)
	only    *regexp.Regexp // only attacks whose name matches
}

// attackRow is one line of the table.
type attackRow struct {
	Name     string  `json:"attack"`
	Request  string  `json:"request"`
	Answer   string  `json:"answer"`
	Seconds  float64 `json:"seconds"`      // until the last answer, or until given up
	CPU      float64 `json:"server_cpu_s"` // from the first request until the server was idle
	CPUAfter float64 `json:"server_cpu_after_s"`
	RSSStart float64 `json:"rss_start_mb"`
	RSSPeak  float64 `json:"rss_peak_mb"`
	ProbeN   int     `json:"cheap_queries"`
	ProbeBad int     `json:"cheap_queries_failed"`
	ProbeP50 float64 `json:"cheap_p50_ms"`
	ProbeP99 float64 `json:"cheap_p99_ms"`
}

// target is the server under attack and the clients that attack it: each attacking client has
// a loopback address of its own (127.0.1.N), so that a server that budgets per client address
// sees as many clients as there are; the cheap query comes from 127.0.0.2.
type target struct {
	addr    string
	timeout time.Duration
	mu      sync.Mutex
	clients map[string]*http.Client
}

func (t *target) client(src string) *http.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.clients[src]; ok {
		return c
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{
		DialContext: d.DialContext, MaxIdleConnsPerHost: 4, DisableCompression: true,
	}}
	t.clients[src] = c
	return c
}

// attacker is the source address of attacking client i.
func attacker(i int) string { return fmt.Sprintf("127.0.1.%d", 1+i%250) }

// answer is what one request got.
type answer struct {
	status int
	body   []byte
	err    error
}

// post sends body from src and reads the whole answer, within ctx.
func (t *target) post(ctx context.Context, src string, body []byte) answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.addr+"/query", bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client(src).Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b, err: err}
}

// tally counts the answers of an attack by status and first error code.
type tally struct {
	mu        sync.Mutex
	kinds     map[string]int
	maxBytes  int
	maxErrors int // in one answer
	notes     []string
}

var firstCode = regexp.MustCompile(`"code":"([A-Z_]+)"`)

func (t *tally) add(a answer) {
	kind := ""
	switch {
	case a.err != nil && (errors.Is(a.err, context.DeadlineExceeded) || errors.Is(a.err, context.Canceled)):
		kind = "no answer in time"
	case a.err != nil:
		kind = "failed: " + shortErr(a.err)
	default:
		kind = strconv.Itoa(a.status)
		if m := firstCode.FindSubmatch(a.body); m != nil {
			kind += " " + string(m[1])
		} else if bytes.Contains(a.body, []byte(`"errors"`)) {
			kind += " error"
		} else {
			kind += " ok"
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = map[string]int{}
	}
	t.kinds[kind]++
	t.maxBytes = max(t.maxBytes, len(a.body))
	t.maxErrors = max(t.maxErrors, bytes.Count(a.body, []byte(`"message":`)))
}

func (t *tally) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	kinds := make([]string, 0, len(t.kinds))
	for k := range t.kinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return t.kinds[b] - t.kinds[a] })
	var parts []string
	total := 0
	for _, k := range kinds {
		total += t.kinds[k]
		if t.kinds[k] == 1 {
			parts = append(parts, k)
		} else {
			parts = append(parts, fmt.Sprintf("%d× %s", t.kinds[k], k))
		}
	}
	if total > 0 {
		largest := "largest " + size(t.maxBytes)
		if t.maxErrors > 1 {
			largest += fmt.Sprintf(" (%d errors)", t.maxErrors)
		}
		parts = append(parts, largest)
	}
	if len(parts)+len(t.notes) == 0 {
		return "—"
	}
	return strings.Join(append(parts, t.notes...), ", ")
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 100<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func gqlBody(query string) []byte {
	b, _ := json.Marshal(map[string]string{"query": query})
	return b
}

// an attack sends its requests within ctx (its time bound) and says what it sent.
type attack struct {
	name string
	run  func(ctx context.Context, t *target, answers *tally) (request string)
}

// once sends body once from one client.
func once(body []byte) func(context.Context, *target, *tally) string {
	return func(ctx context.Context, t *target, answers *tally) string {
		answers.add(t.post(ctx, attacker(0), body))
		return size(len(body))
	}
}

// together sends body once from each of n clients at the same time.
func together(n int, body []byte) func(context.Context, *target, *tally) string {
	return func(ctx context.Context, t *target, answers *tally) string {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { answers.add(t.post(ctx, attacker(i), body)) })
		}
		wg.Wait()
		return fmt.Sprintf("%s from each of %d clients at once", size(len(body)), n)
	}
}

// looping has n clients send body back to back for d.
func looping(n int, d time.Duration, body []byte) func(context.Context, *target, *tally) string {
	return loopingFrom(n, d, body, attacker)
}

// loopingFrom is looping with the address of each client chosen by addr.
func loopingFrom(n int, d time.Duration, body []byte, addr func(int) string) func(context.Context, *target, *tally) string {
	return func(ctx context.Context, t *target, answers *tally) string {
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		var sent atomic.Int64
		for i := range n {
			wg.Go(func() {
				for time.Now().Before(end) && ctx.Err() == nil {
					sent.Add(1)
					answers.add(t.post(ctx, addr(i), body))
				}
			})
		}
		wg.Wait()
		return fmt.Sprintf("%s, %d clients back to back for %s (%d requests)", size(len(body)), n, d, sent.Load())
	}
}

// fragmentBomb: each fragment spreads the next ten times, levels deep: 10^levels fields.
func fragmentBomb(levels int) []byte {
	var b strings.Builder
	b.WriteString(`query Bomb { user(id: "1") { ...F0 } }`)
	for i := range levels {
		fmt.Fprintf(&b, "\nfragment F%d on User {", i)
		for range 10 {
			fmt.Fprintf(&b, " ...F%d", i+1)
		}
		b.WriteString(" }")
	}
	fmt.Fprintf(&b, "\nfragment F%d on User { id }", levels)
	return gqlBody(b.String())
}

// repeatedField: one field n times, no aliases.
func repeatedField(n int) []byte {
	return gqlBody(`{ user(id: "1") {` + strings.Repeat(" id", n) + ` } }`)
}

// schemaAliases: __schema under n aliases.
func schemaAliases(n int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: __schema { types { name kind description fields(includeDeprecated: true) { name description args { name type { name kind ofType { name kind } } } type { name kind ofType { name kind ofType { name kind } } } } } }", i)
	}
	b.WriteString(" }")
	return gqlBody(b.String())
}

// costliest is the most expensive query the default limits admit (complexity 4,601 of 5,000):
// 100 users, 5 items each, each item's owner.
const costliest = `{ users(limit: 100) { id username email createdAt updatedAt items(first: 5) { edges { node { id title description owner { id username } } } } } }`

// batchArray: batched operations in a JSON array of about n bytes.
func batchArray(n int) []byte {
	b := []byte("[")
	for len(b) < n {
		b = append(b, `{"query":"{ __typename }"},`...)
	}
	return append(b[:len(b)-1], ']')
}

// unknownDirectives: about n bytes of directives the schema does not have.
func unknownDirectives(n int) []byte {
	var b strings.Builder
	b.WriteString("{ __typename")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, " @d%d", i)
	}
	b.WriteString(" }")
	return gqlBody(b.String())
}

// bigDocuments sends n distinct valid documents of about 900 KB each (a comment makes them
// large and distinct) from 4 clients, stopping when ctx ends.
func bigDocuments(n int) func(context.Context, *target, *tally) string {
	return func(ctx context.Context, t *target, answers *tally) string {
		pad := strings.Repeat("x", 900<<10)
		var next, sent atomic.Int64
		var wg sync.WaitGroup
		for c := range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					body := gqlBody(fmt.Sprintf("# document %d %s\n{ __typename }", i, pad))
					sent.Add(1)
					answers.add(t.post(ctx, attacker(c), body))
				}
			})
		}
		wg.Wait()
		return fmt.Sprintf("%d of %d distinct valid 900 KB documents, 4 clients", sent.Load(), n)
	}
}

// subscribeFlood opens one graphql-transport-ws socket, sends n subscribe messages, has another
// client write once (every subscription is told), and then sends a subscription id already in
// use (the protocol closes with 4409).
func subscribeFlood(n int) func(context.Context, *target, *tally) string {
	return func(ctx context.Context, t *target, answers *tally) string {
		request := fmt.Sprintf("%d subscribe messages on one websocket", n)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(dctx, "ws://"+t.addr+"/query", &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"},
			HTTPClient:   t.client(attacker(0)),
		})
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			answers.note("dial: %v", shortErr(err))
			return request
		}
		defer conn.CloseNow()
		conn.SetReadLimit(16 << 20)
		write := func(v any) error {
			b, _ := json.Marshal(v)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return conn.Write(wctx, websocket.MessageText, b)
		}
		var events, errs atomic.Int64
		acked := make(chan struct{})
		closed := make(chan error, 1)
		go func() {
			var ack sync.Once
			for {
				_, b, err := conn.Read(context.Background())
				if err != nil {
					closed <- err
					return
				}
				var m struct{ Type string }
				_ = json.Unmarshal(b, &m)
				switch m.Type {
				case "connection_ack":
					ack.Do(func() { close(acked) })
				case "next":
					events.Add(1)
				case "error":
					errs.Add(1)
				case "ping":
					_ = write(map[string]string{"type": "pong"})
				}
			}
		}()
		closedAs := func(err error) string {
			if s := websocket.CloseStatus(err); s != -1 {
				return fmt.Sprintf("closed %d", s)
			}
			return "connection lost: " + shortErr(err)
		}
		if err := write(map[string]string{"type": "connection_init"}); err != nil {
			answers.note("init: %v", shortErr(err))
			return request
		}
		select {
		case <-acked:
		case err := <-closed:
			answers.note("before ack: %s", closedAs(err))
			return request
		case <-ctx.Done():
			answers.note("no connection_ack")
			return request
		}
		start := time.Now()
		sub := map[string]any{"type": "subscribe", "payload": map[string]string{"query": "subscription { userCreated { id username } }"}}
		sent := 0
		for i := range n {
			sub["id"] = strconv.Itoa(i)
			if write(sub) != nil {
				break
			}
			sent++
		}
		answers.note("%d sent in %.2f s", sent, time.Since(start).Seconds())
		select {
		case err := <-closed:
			answers.note("%s, %d errors", closedAs(err), errs.Load())
			return request
		case <-time.After(time.Second): // the server takes them in
		}
		if errs.Load() > 0 {
			answers.note("%d refused", errs.Load())
		}
		// One write: every subscription on the socket is told.
		name := fmt.Sprintf("attack_%d", time.Now().UnixNano()%1e9)
		w := t.post(ctx, "127.0.0.3", gqlBody(fmt.Sprintf(`mutation { createUser(input: {username: %q, email: "%s@attack.example"}) { id } }`, name, name)))
		if w.err != nil || w.status != 200 || bytes.Contains(w.body, []byte(`"errors"`)) {
			answers.note("the write failed: %d %.200s %v", w.status, w.body, w.err)
		}
		written := time.Now()
		want := int64(sent) - errs.Load()
		for events.Load() < want && ctx.Err() == nil && time.Since(written) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		answers.note("1 write → %d events in %.2f s", events.Load(), time.Since(written).Seconds())
		// A subscription id in use.
		sub["id"] = "0"
		if err := write(sub); err != nil {
			answers.note("duplicate id: write failed")
			return request
		}
		select {
		case err := <-closed:
			answers.note("duplicate id: %s", closedAs(err))
		case <-time.After(2 * time.Second):
			answers.note("duplicate id: accepted")
		}
		_ = conn.Close(websocket.StatusNormalClosure, "")
		return request
	}
}

func attacks(o attackOptions) []attack {
	return []attack{
		{"none (the cheap query alone)", func(context.Context, *target, *tally) string { return "—" }},
		{"fragment bomb, 7 levels", once(fragmentBomb(7))},
		{"fragment bomb, 8 levels", once(fragmentBomb(8))},
		{"one field 4,900 times, no aliases", once(repeatedField(4900))},
		{"__schema under 100 aliases", together(32, schemaAliases(100))},
		{"distinct 900 KB documents", bigDocuments(o.docs)},
		{"10,000 subscribe on one websocket", subscribeFlood(10_000)},
		{"costliest allowed query", looping(32, 5*time.Second, gqlBody(costliest))},
		{"costliest allowed query, one client", loopingFrom(32, 5*time.Second, gqlBody(costliest),
			func(int) string { return attacker(0) })},
		{"1 MB batch array", once(batchArray(1000 << 10))},
		{"13 KB of unknown directives", once(unknownDirectives(13 << 10))},
	}
}

// probe sends the cheap query from its own address every 20 ms until stop, one at a time, and
// returns the latencies (ns) and how many failed.
func probe(t *target, stop <-chan struct{}) ([]int64, int) {
	var lat []int64
	bad := 0
	body := gqlBody("{ __typename }")
	for {
		select {
		case <-stop:
			return lat, bad
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
		t0 := time.Now()
		a := t.post(ctx, "127.0.0.2", body)
		lat = append(lat, int64(time.Since(t0)))
		cancel()
		if a.err != nil || a.status != 200 || !bytes.Contains(a.body, []byte(`"__typename":"Query"`)) {
			bad++
		}
		select {
		case <-stop:
			return lat, bad
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitIdle waits until pid uses less than 5% of a core over half a second, for at most limit.
func waitIdle(pid int, limit time.Duration) {
	end := time.Now().Add(limit)
	prev, _ := cpuTime(pid)
	for time.Now().Before(end) {
		time.Sleep(500 * time.Millisecond)
		now, err := cpuTime(pid)
		if err != nil || now-prev < 25*time.Millisecond {
			return
		}
		prev = now
	}
}

// runAttack starts a server, runs a against it and measures.
func runAttack(ctx context.Context, env benchEnv, binary string, a attack, o attackOptions, n int) (attackRow, error) {
	row := attackRow{Name: a.name}
	env.workDir = filepath.Join(env.workDir, fmt.Sprintf("attack%d", n))
	if err := os.MkdirAll(env.workDir, 0o755); err != nil {
		return row, err
	}
	srv, err := startServer(ctx, binary, env, false, false) // its defaults, budgets included
	if err != nil {
		return row, err
	}
	defer srv.stop()
	pid := srv.cmd.Process.Pid
	t := &target{addr: srv.addr, timeout: o.timeout, clients: map[string]*http.Client{}}
	// Warm: one cheap query, then quiet.
	if a := t.post(ctx, "127.0.0.2", gqlBody("{ __typename }")); a.err != nil || a.status != 200 {
		return row, fmt.Errorf("the server does not answer: %v %d", a.err, a.status)
	}
	waitIdle(pid, 5*time.Second)
	row.RSSStart = float64(rss(pid)) / (1 << 20)
	cpu0, _ := cpuTime(pid)

	done := make(chan struct{})
	var peak atomic.Int64
	go func() {
		for {
			peak.Store(max(peak.Load(), rss(pid)))
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	stopProbe := make(chan struct{})
	type probed struct {
		lat []int64
		bad int
	}
	probeDone := make(chan probed, 1)
	go func() { l, b := probe(t, stopProbe); probeDone <- probed{l, b} }()

	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, o.timeout)
	answers := &tally{}
	row.Request = a.run(actx, t, answers)
	cancel()
	row.Seconds = time.Since(start).Seconds()
	// The cheap query runs for at least 2 s, whatever the attack took.
	if d := 2*time.Second - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	close(stopProbe)
	p := <-probeDone
	cpuDone, _ := cpuTime(pid)
	waitIdle(pid, o.timeout)
	cpuEnd, err := cpuTime(pid)
	close(done)
	if err != nil {
		answers.note("the server exited")
	}
	row.Answer = answers.String()
	row.CPU = (cpuEnd - cpu0).Seconds()
	row.CPUAfter = (cpuEnd - cpuDone).Seconds()
	row.RSSPeak = float64(peak.Load()) / (1 << 20)
	row.ProbeN, row.ProbeBad = len(p.lat), p.bad
	if len(p.lat) > 0 {
		slices.Sort(p.lat)
		at := func(q float64) float64 { return float64(p.lat[min(len(p.lat)-1, int(q*float64(len(p.lat))))]) / 1e6 }
		row.ProbeP50, row.ProbeP99 = at(0.50), at(0.99)
	}
	return row, nil
}

// runAttacks runs the suite, prints its table (Markdown, for the README) and writes it as JSON.
func runAttacks(ctx context.Context, env benchEnv, binary string, o attackOptions, out string) error {
	var rows []attackRow
	began := time.Now()
	for i, a := range attacks(o) {
		if o.only != nil && !o.only.MatchString(a.name) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Printf("%s…", a.name)
		row, err := runAttack(ctx, env, binary, a, o, i)
		if err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		log.Printf("  %s: %s; %.1f s; server CPU %.2f s; RSS %.0f→%.0f MB; cheap query p50 %.1f ms p99 %.1f ms (%d failed)",
			row.Request, row.Answer, row.Seconds, row.CPU, row.RSSStart, row.RSSPeak, row.ProbeP50, row.ProbeP99, row.ProbeBad)
		rows = append(rows, row)
	}
	fmt.Println()
	fmt.Println("| attack | request | answer | answered in | server CPU s (after the clients) | peak RSS MB (at start) | `{ __typename }` meanwhile p50 / p99 ms |")
	fmt.Println("| --- | --- | --- | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		failed := ""
		if r.ProbeBad > 0 {
			failed = fmt.Sprintf(", %d of %d failed", r.ProbeBad, r.ProbeN)
		}
		fmt.Printf("| %s | %s | %s | %.2f s | %.2f (%.2f) | %.0f (%.0f) | %.1f / %.1f%s |\n",
			r.Name, r.Request, r.Answer, r.Seconds, r.CPU, r.CPUAfter, r.RSSPeak, r.RSSStart, r.ProbeP50, r.ProbeP99, failed)
	}
	fmt.Printf("\nEach attack against a freshly started server with its defaults (its requests given up after %s);\n"+
		"attacking clients from 127.0.1.N (one address each), the cheap query from 127.0.0.2 every 20 ms;\n"+
		"server CPU from the first request until the server was idle again, the cheap queries' included. Took %s.\n", o.timeout, time.Since(began).Round(time.Second))
	data, _ := json.MarshalIndent(rows, "", "  ")
	return os.WriteFile(out, append(data, '\n'), 0o644)
}
