package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// subsOptions are make bench-subs' settings (issue 16).
type subsOptions struct {
	subscribers int           // N
	sse         int           // of which over server-sent events
	perProcess  int           // subscribers per node process
	rate        float64       // createUser per second
	duration    time.Duration // of the mutations
	idle        bool          // connect and subscribe, send nothing
	idleHold    time.Duration // how long the idle subscribers are held before measuring
	dir         string        // the npm workspace with client.mjs
	profile     string        // folder for the server's CPU and heap profiles (during the events)
	node        string
	connectWait time.Duration
}

// SubsReport is the table's row (and bin/bench-subs.json).
type SubsReport struct {
	Started        time.Time          `json:"started"`
	Subscribers    int                `json:"subscribers"`
	SSE            int                `json:"sse"`
	Processes      int                `json:"client_processes"`
	Idle           bool               `json:"idle"`
	ServerEnv      []string           `json:"server_env"`
	ConnectS       float64            `json:"connect_s"`
	ConnectFailed  int                `json:"connect_failed"`
	Failures       map[string]int     `json:"connect_failures,omitempty"`
	Rate           float64            `json:"rate"`
	DurationS      float64            `json:"duration_s"`
	Sent           int                `json:"events_sent"`
	MutationErrors map[string]int     `json:"mutation_errors,omitempty"`
	AppliedAfter   map[string]int     `json:"applied_after_error,omitempty"` // mutations answering an error whose user was announced`
	Expected       int64              `json:"deliveries_expected"`
	Delivered      int64              `json:"deliveries"`
	Lost           int64              `json:"events_lost"`
	Duplicates     int64              `json:"duplicates"`
	DrainS         float64            `json:"drain_s"` // from the last mutation to the last delivery (or giving up)
	DeliveryP50ms  float64            `json:"delivery_p50_ms"`
	DeliveryP99ms  float64            `json:"delivery_p99_ms"`
	DeliveryMaxms  float64            `json:"delivery_max_ms"`
	MutationP50ms  float64            `json:"mutation_p50_ms"`
	MutationP99ms  float64            `json:"mutation_p99_ms"`
	Closes         map[string]int     `json:"server_closes,omitempty"`        // close codes the clients saw
	CloseReasons   map[string]float64 `json:"server_close_reasons,omitempty"` // wikigraph_websocket_closed_by_server_total, by reason
	SubErrors      map[string]int     `json:"subscription_errors,omitempty"`
	Completed      int                `json:"completed_by_server"`
	RSSStartMB     float64            `json:"rss_start_mb"`
	RSSSubscribed  float64            `json:"rss_subscribed_mb"`
	PeakRSSMB      float64            `json:"peak_rss_mb"`
	RSSAfterMB     float64            `json:"rss_after_mb"`
	GoroutinesAt   [4]float64         `json:"goroutines"` // start, subscribed (before events), peak during, after the clients left
	HeapAfterMB    float64            `json:"heap_after_mb"`
	CPUConnectS    float64            `json:"server_cpu_connect_s"`
	CPUEventsS     float64            `json:"server_cpu_events_s"`
	ClientCPUS     float64            `json:"client_cpu_events_s"` // the node processes, same span`
	KBPerSub       float64            `json:"kb_per_subscriber"`
}

// clientProc is one node process of subscribers.
type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	raw   chan []byte
	done  chan error
}

type subsReport struct {
	Subscribers int              `json:"subscribers"`
	Deliveries  int64            `json:"deliveries"`
	Duplicates  int64            `json:"duplicates"`
	Unknown     int64            `json:"unknown"`
	Closes      map[string]int   `json:"closes"`
	Errors      map[string]int   `json:"errors"`
	Ended       map[string]int   `json:"ended"`
	Hist        map[string]int64 `json:"hist"`
	Received    []int            `json:"received"`
}

// raiseFileLimit sets the soft limit of open files to the hard one: the server and each client
// process (which inherit it) hold a descriptor per socket.
func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

func runSubs(ctx context.Context, env benchEnv, binary string, o subsOptions, out string) error {
	limit := raiseFileLimit()
	if need := uint64(o.subscribers + 200); limit < need {
		log.Printf("warning: %d open files allowed (hard limit): the server needs about %d for %d subscribers; "+
			"past it, it refuses connections (raise the hard limit: ulimit -Hn, or LimitNOFILE)", limit, need, o.subscribers)
	}
	rep := SubsReport{Started: time.Now().UTC(), Subscribers: o.subscribers, SSE: o.sse, Idle: o.idle, Rate: o.rate, DurationS: o.duration.Seconds()}
	// The server's defaults, except where N needs more: MAX_SUBSCRIPTIONS (50,000) counts every
	// subscription of the instance.
	if o.subscribers > 50000 && os.Getenv("MAX_SUBSCRIPTIONS") == "" {
		env.serverEnv = append(env.serverEnv, "MAX_SUBSCRIPTIONS="+strconv.Itoa(o.subscribers))
	}
	env.serverLog = "server-subs.log"
	srv, err := startServer(ctx, binary, env, o.profile != "", false)
	if err != nil {
		return err
	}
	defer srv.stop()
	rep.ServerEnv = append(slices.Clone(env.serverEnv), srv.extraEnv...)
	pid := srv.cmd.Process.Pid
	time.Sleep(time.Second)
	rep.RSSStartMB = mb(rss(pid))
	rep.GoroutinesAt[0] = metric(srv.addr, "go_goroutines")
	cpu0, _ := cpuTime(pid)

	// Subscribers: node processes of perProcess each.
	url := "ws://" + srv.addr + srv.path
	maxEvents := int(o.rate*o.duration.Seconds()) + 16
	if o.idle {
		maxEvents = 1
	}
	var procs []*clientProc
	defer func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	}()
	t0 := time.Now()
	var outcomes []string
	sseLeft := o.sse
	for first := 0; first < o.subscribers; first += o.perProcess {
		n := min(o.perProcess, o.subscribers-first)
		// The SSE share goes to the last processes, spread as evenly as the counts allow.
		procsLeft := (o.subscribers - first + o.perProcess - 1) / o.perProcess
		sse := min(n, (sseLeft+procsLeft-1)/procsLeft)
		sseLeft -= sse
		cfg, _ := json.Marshal(map[string]any{"url": url, "count": n, "sse": sse, "first": first, "maxEvents": maxEvents})
		p, err := startClient(ctx, o, string(cfg), len(procs))
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	rep.Processes = len(procs)
	log.Printf("%d subscribers (%d over SSE) in %d node processes, connecting", o.subscribers, o.sse, len(procs))
	rep.Failures = map[string]int{}
	connected := 0
	for i, p := range procs {
		msg, err := p.next(ctx, o.connectWait)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		connected += int(num(msg["connected"]))
		rep.ConnectFailed += int(num(msg["failed"]))
		if f, ok := msg["failures"].(map[string]any); ok {
			for k, v := range f {
				rep.Failures[k] += int(num(v))
			}
		}
	}
	// Every subscription counted by the server: it is listening for them.
	deadline := time.Now().Add(o.connectWait)
	// (A server that shares subscriptions counts its listening subscribers apart; before that,
	// each subscriber was a subscription of the broker's.)
	listening := func() float64 {
		if v := metric(srv.addr, "wikigraph_subscribers_listening"); !math.IsNaN(v) {
			return v
		}
		return metric(srv.addr, "wikigraph_subscriptions_active")
	}
	for listening() < float64(connected) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d subscribers connected, the server counts %v listening after %s", connected, listening(), o.connectWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep.ConnectS = time.Since(t0).Seconds()
	log.Printf("%d connected and subscribed in %.1fs (%d failed)", connected, rep.ConnectS, rep.ConnectFailed)
	time.Sleep(time.Second) // the last subscriptions reach the broker
	cpu1, _ := cpuTime(pid)
	rep.CPUConnectS = (cpu1 - cpu0).Seconds()
	clientCPU := func() (sum time.Duration) {
		for _, p := range procs {
			d, _ := cpuTime(p.cmd.Process.Pid)
			sum += d
		}
		return sum
	}
	client1 := clientCPU()

	var peakGoroutines float64
	var sampling sync.WaitGroup
	stopSampling := make(chan struct{})
	sample := func() {
		defer sampling.Done()
		for {
			if g := metric(srv.addr, "go_goroutines"); g > peakGoroutines {
				peakGoroutines = g
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	if o.idle {
		time.Sleep(o.idleHold)
		rep.RSSSubscribed = mb(rss(pid))
		if o.profile != "" && srv.pprof != "" {
			// What the subscribers hold, garbage collected first.
			fetch(ctx, "http://"+srv.pprof+"/debug/pprof/heap?gc=1", filepath.Join(o.profile, fmt.Sprintf("subs%d-idle.heap.pprof", o.subscribers)))
		}
		rep.GoroutinesAt[1] = metric(srv.addr, "go_goroutines")
		rep.GoroutinesAt[2] = rep.GoroutinesAt[1]
		cpu2, _ := cpuTime(pid)
		rep.CPUEventsS = (cpu2 - cpu1).Seconds()
	} else {
		rep.RSSSubscribed = mb(rss(pid))
		rep.GoroutinesAt[1] = metric(srv.addr, "go_goroutines")
		sampling.Add(1)
		go sample()
		var prof *profiler
		if o.profile != "" {
			prof = srv.profile(ctx, o.profile, fmt.Sprintf("subs%d", o.subscribers), 0, 0, min(o.duration, 30*time.Second))
		}
		var lat []float64
		lastSend := time.Now().Add(o.duration - time.Duration(float64(time.Second)/o.rate))
		lat, outcomes = driveMutations(ctx, srv.addr, o.rate, o.duration)
		rep.MutationErrors = map[string]int{}
		sent := 0
		for _, code := range outcomes {
			if code == "" {
				sent++
			} else {
				rep.MutationErrors[code]++
			}
		}
		rep.MutationP50ms, rep.MutationP99ms = percentile(lat, 0.50), percentile(lat, 0.99)
		// Wait for the deliveries: until every subscriber has every event, or nothing arrives for 15 s
		// (a mutation that answered an error may still have created its user).
		want := int64(connected) * int64(sent)
		var got, before int64
		var lastDelivery float64 // ms since the epoch
		progressAt := time.Now()
		for {
			got = 0
			for _, p := range procs {
				if _, err := io.WriteString(p.stdin, "progress\n"); err != nil {
					return err
				}
			}
			for i, p := range procs {
				msg, err := p.next(ctx, 30*time.Second)
				if err != nil {
					return fmt.Errorf("client %d: %w", i, err)
				}
				got += int64(num(msg["deliveries"]))
				lastDelivery = max(lastDelivery, num(msg["last"]))
			}
			if got >= want && (sent == len(outcomes) || time.Since(lastSend) > 5*time.Second) {
				break
			}
			if got > before {
				before, progressAt = got, time.Now()
			} else if time.Since(progressAt) > 15*time.Second {
				log.Printf("giving up waiting: %d of %d deliveries", got, want)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		rep.DrainS = (lastDelivery - float64(lastSend.UnixMicro())/1000) / 1000
		cpu2, _ := cpuTime(pid)
		rep.CPUEventsS = (cpu2 - cpu1).Seconds()
		rep.ClientCPUS = (clientCPU() - client1).Seconds()
		close(stopSampling)
		sampling.Wait()
		rep.GoroutinesAt[2] = peakGoroutines
		if prof != nil {
			prof.wait()
		}
	}
	rep.PeakRSSMB = mb(peakRSS(pid))

	// The clients leave.
	var hist = map[int]int64{}
	rep.Closes, rep.SubErrors = map[string]int{}, map[string]int{}
	received := make([]int64, maxEvents)
	subscribers := 0
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "stop\n"); err != nil {
			return err
		}
	}
	for i, p := range procs {
		msg, err := p.nextRaw(ctx, 60*time.Second)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		var r subsReport
		if err := json.Unmarshal(msg, &r); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		subscribers += r.Subscribers
		rep.Delivered += r.Deliveries
		rep.Duplicates += r.Duplicates
		for k, v := range r.Closes {
			rep.Closes[k] += v
		}
		for k, v := range r.Errors {
			rep.SubErrors[k] += v
		}
		rep.Completed += r.Ended["complete"]
		for k, v := range r.Hist {
			ms, _ := strconv.Atoi(k)
			hist[ms] += v
		}
		for k, v := range r.Received {
			received[k] += int64(v)
		}
		<-p.done
	}
	if !o.idle {
		// An event is a user a mutation created: its answer said so, or a subscriber got it
		// (a write that answered OUTCOME_UNKNOWN may have been applied).
		rep.AppliedAfter = map[string]int{}
		for k, code := range outcomes {
			if code == "" || received[k] > 0 {
				rep.Sent++
				rep.Expected += int64(subscribers)
				rep.Lost += int64(subscribers) - received[k]
			}
			if code != "" && received[k] > 0 {
				rep.AppliedAfter[code]++
			}
		}
		rep.DeliveryP50ms, rep.DeliveryP99ms, rep.DeliveryMaxms = histPercentile(hist, 0.50), histPercentile(hist, 0.99), histPercentile(hist, 1)
	}
	// Memory and goroutines once the clients have left (the server's timers and the collector
	// get some seconds; goroutines are polled until they are back to where they started).
	left := time.Now()
	for time.Since(left) < 20*time.Second && metric(srv.addr, "go_goroutines") > rep.GoroutinesAt[0]+2 {
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	rep.GoroutinesAt[3] = metric(srv.addr, "go_goroutines")
	rep.CloseReasons = metricByLabel(srv.addr, "wikigraph_websocket_closed_by_server_total")
	rep.RSSAfterMB = mb(rss(pid))
	rep.HeapAfterMB = metric(srv.addr, "go_memstats_heap_inuse_bytes") / (1 << 20)
	if o.subscribers > 0 {
		rep.KBPerSub = (rep.RSSSubscribed - rep.RSSStartMB) * 1024 / float64(o.subscribers)
	}
	procs = nil
	printSubs(os.Stdout, rep)
	if data, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.MkdirAll(filepath.Dir(out), 0o755)
		_ = os.WriteFile(out, data, 0o644)
	}
	var fails []string
	if rep.ConnectFailed > 0 {
		fails = append(fails, fmt.Sprintf("%d subscribers could not connect", rep.ConnectFailed))
	}
	if rep.Lost > 0 {
		fails = append(fails, fmt.Sprintf("%d deliveries lost", rep.Lost))
	}
	if len(fails) > 0 {
		return errors.New(strings.Join(fails, "; "))
	}
	return nil
}

func startClient(ctx context.Context, o subsOptions, cfg string, n int) (*clientProc, error) {
	cmd := exec.CommandContext(ctx, o.node, "--max-old-space-size=4096", "client.mjs", cfg)
	cmd.Dir = o.dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join("bin", "bench", fmt.Sprintf("subs-client-%d.log", n)))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	raw := make(chan []byte, 4)
	p := &clientProc{cmd: cmd, stdin: stdin, raw: raw, done: make(chan error, 1)}
	go func() {
		r := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				raw <- line
			}
			if err != nil {
				close(raw)
				break
			}
		}
		p.done <- cmd.Wait()
		logFile.Close()
	}()
	return p, nil
}

func (p *clientProc) nextRaw(ctx context.Context, wait time.Duration) ([]byte, error) {
	select {
	case line, ok := <-p.raw:
		if !ok {
			return nil, fmt.Errorf("node exited (see bin/bench/subs-client-*.log)")
		}
		return line, nil
	case <-time.After(wait):
		return nil, fmt.Errorf("no answer after %s", wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *clientProc) next(ctx context.Context, wait time.Duration) (map[string]any, error) {
	line, err := p.nextRaw(ctx, wait)
	if err != nil {
		return nil, err
	}
	var msg map[string]any
	if err := json.Unmarshal(line, &msg); err != nil {
		return nil, fmt.Errorf("%w: %.200s", err, line)
	}
	return msg, nil
}

// driveMutations sends createUser at rate per second for d (open loop: each at its time, whether
// the ones before have answered or not), from 127.0.0.2 (its own client for the per-client
// limits), and returns their latencies and each one's outcome ("" when it answered success,
// else its error code); user k is e<k>_<send time in µs>.
func driveMutations(ctx context.Context, addr string, rate float64, d time.Duration) ([]float64, []string) {
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
			MaxIdleConnsPerHost: 64,
		},
	}
	total := int(rate * d.Seconds())
	var (
		mu       sync.Mutex
		lat      = make([]float64, 0, total)
		outcomes = make([]string, total)
		wg       sync.WaitGroup
	)
	start := time.Now()
	for k := 0; k < total; k++ {
		at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
			return lat, outcomes[:k]
		}
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			sent := time.Now()
			body := fmt.Sprintf(`{"query":"mutation($in: NewUser!) { createUser(input: $in) { id } }","variables":{"in":{"username":"e%d_%d","email":"e%d@subs.bench.example"}}}`,
				k, sent.UnixMicro(), k)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/query", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			code := ""
			if err != nil {
				code = "transport error"
			} else {
				var r struct {
					Errors []struct {
						Extensions struct{ Code string } `json:"extensions"`
					} `json:"errors"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if len(r.Errors) > 0 {
					code = r.Errors[0].Extensions.Code
				} else if resp.StatusCode != http.StatusOK {
					code = "HTTP " + strconv.Itoa(resp.StatusCode)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, float64(time.Since(sent))/float64(time.Millisecond))
			outcomes[k] = code
		}(k)
	}
	wg.Wait()
	client.CloseIdleConnections() // the server's goroutines for them end too
	return lat, outcomes
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]
}

// histPercentile reads a percentile from a histogram of whole milliseconds (its bucket's upper end).
func histPercentile(h map[int]int64, p float64) float64 {
	var total int64
	keys := make([]int, 0, len(h))
	for k, v := range h {
		total += v
		keys = append(keys, k)
	}
	if total == 0 {
		return 0
	}
	slices.Sort(keys)
	want := int64(math.Ceil(p * float64(total)))
	var seen int64
	for _, k := range keys {
		seen += h[k]
		if seen >= want {
			return float64(k + 1)
		}
	}
	return float64(keys[len(keys)-1] + 1)
}

// metric reads one unlabelled value from the server's /metrics (NaN when absent).
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return math.NaN()
}

// metricByLabel reads the series of a metric with one label from the server's /metrics, by the
// label's value (those at 0 left out).
func metricByLabel(addr, name string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), name+"{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		_, label, _ := strings.Cut(labels, "=")
		f, _ := strconv.ParseFloat(value, 64)
		if f != 0 {
			out[strings.Trim(label, `"`)] = f
		}
	}
	return out
}

// peakRSS is the process's high-water mark of resident memory (VmHWM).
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// millis writes a latency as people read it: 27 ms, 2.4 s.
func millis(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func printSubs(w io.Writer, r SubsReport) {
	mode := fmt.Sprintf("%g createUser/s for %gs", r.Rate, r.DurationS)
	if r.Idle {
		mode = "idle"
	}
	fmt.Fprintf(w, "\nmake bench-subs: %d subscribers (%d over SSE, %d node processes), %s; server env %v\n\n",
		r.Subscribers, r.SSE, r.Processes, mode, r.ServerEnv)
	kv := [][2]string{
		{"subscribers (connect failures)", fmt.Sprintf("%d (%d)", r.Subscribers, r.ConnectFailed)},
		{"connected and subscribed in", fmt.Sprintf("%.1f s (server CPU %.1f s)", r.ConnectS, r.CPUConnectS)},
	}
	if !r.Idle {
		kv = append(kv, [][2]string{
			{"events sent (mutation errors; of them, users created all the same)", fmt.Sprintf("%d (%v; %v)", r.Sent, r.MutationErrors, r.AppliedAfter)},
			{"deliveries (expected)", fmt.Sprintf("%d (%d)", r.Delivered, r.Expected)},
			{"events lost", fmt.Sprintf("%d", r.Lost)},
			{"delivery p50 / p99 / max", fmt.Sprintf("%.0f / %.0f / %.0f ms", r.DeliveryP50ms, r.DeliveryP99ms, r.DeliveryMaxms)},
			{"last delivery after the last mutation's send", fmt.Sprintf("%.0f ms", 1000*r.DrainS)},
			{"mutation p50 / p99", fmt.Sprintf("%.1f / %.1f ms", r.MutationP50ms, r.MutationP99ms)},
			{"server CPU during events (clients' CPU)", fmt.Sprintf("%.1f s, %.0f%% of one core (%.1f s)", r.CPUEventsS, 100*r.CPUEventsS/(r.DurationS+r.DrainS), r.ClientCPUS)},
		}...)
	} else {
		kv = append(kv, [2]string{"server CPU while idle", fmt.Sprintf("%.2f s", r.CPUEventsS)})
	}
	kv = append(kv, [][2]string{
		{"RSS start / subscribed / peak / after", fmt.Sprintf("%.0f / %.0f / %.0f / %.0f MB (%.1f KB per subscriber)", r.RSSStartMB, r.RSSSubscribed, r.PeakRSSMB, r.RSSAfterMB, r.KBPerSub)},
		{"goroutines start / subscribed / peak / after", fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", r.GoroutinesAt[0], r.GoroutinesAt[1], r.GoroutinesAt[2], r.GoroutinesAt[3])},
		{"heap in use after", fmt.Sprintf("%.0f MB", r.HeapAfterMB)},
		{"sockets closed by the server (codes the clients saw; reasons the server counted)", fmt.Sprintf("%v; %v", r.Closes, r.CloseReasons)},
		{"subscriptions ended by the server (error code)", fmt.Sprintf("%v, %d complete", r.SubErrors, r.Completed)},
	}...)
	fmt.Fprintln(w, "| measure | value |\n| --- | --- |")
	for _, row := range kv {
		fmt.Fprintf(w, "| %s | %s |\n", row[0], row[1])
	}
	// The same as one row, for a table of runs (README, the notes).
	fmt.Fprintln(w, "\n| subscribers | events | lost | delivery p50 / p99 | mutation p50 / p99 | peak RSS | goroutines start / subscribed / peak / after | server CPU | closed by server |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | --- | --- | ---: | --- | ---: | --- |")
	closes := 0
	for _, n := range r.Closes {
		closes += n
	}
	subs := fmt.Sprintf("%d", r.Subscribers)
	if r.SSE > 0 {
		subs += fmt.Sprintf(" (%d SSE)", r.SSE)
	}
	if r.Idle {
		fmt.Fprintf(w, "| %s idle | — | — | — | — | %.0f MB | %.0f / %.0f / — / %.0f | %.1f s | %d |\n",
			subs, r.PeakRSSMB, r.GoroutinesAt[0], r.GoroutinesAt[1], r.GoroutinesAt[3], r.CPUConnectS+r.CPUEventsS, closes)
		return
	}
	fmt.Fprintf(w, "| %s | %d | %d | %s / %s | %s / %s | %.0f MB | %.0f / %.0f / %.0f / %.0f | %.1f s | %d |\n",
		subs, r.Sent, r.Lost, millis(r.DeliveryP50ms), millis(r.DeliveryP99ms), millis(r.MutationP50ms), millis(r.MutationP99ms),
		r.PeakRSSMB, r.GoroutinesAt[0], r.GoroutinesAt[1], r.GoroutinesAt[2], r.GoroutinesAt[3], r.CPUEventsS, closes)
}
