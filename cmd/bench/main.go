// Command bench is the performance suite behind `make bench`. It seeds a database with 100,000
// users and 500,000 items, starts the server binary on it, drives each operation over loopback
// with keep-alive connections at fixed concurrency levels, runs the same SQL with pgbench
// (prepared mode, same concurrency) right after, and prints both with their ratio, the number
// that matters: the machine's noise mostly cancels in it. With -peer postgraphile it also drives
// PostGraphile 5 (peer.go) on the operations it expresses, in the same rounds, for a second ratio.
// With -floor it also drives the floor (floor.go: net/http, one prepared statement through
// database/sql and pgdriver, no GraphQL) on user(id) and users(limit:N), for what any Go server
// over pgdriver gets here.
//
//	go run ./cmd/bench -server bin/wikigraph -db "$TEST_DATABASE_URL" -pgdata "$PG_TEST_DATA"
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

type benchEnv struct {
	workDir                        string
	dbHost, dbPort, dbUser, dbName string
	dbURL                          string
	postmaster                     int
	serverLog                      string   // the server's log file in workDir (default server.log)
	serverEnv                      []string // more settings for the server
}

// Stats are the numbers of one side (server, peer, floor or pgbench) of one operation at one
// concurrency.
type Stats struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50ms     float64 `json:"p50_ms"`
	P90ms     float64 `json:"p90_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// CPU seconds used inside the window: the server process (server, floor, and peer: the node process),
	// the PostgreSQL cluster, and the load generator (ours or pgbench, scaled to the window).
	ServerCPU float64 `json:"server_cpu_s,omitempty"`
	DBCPU     float64 `json:"db_cpu_s"`
	ClientCPU float64 `json:"client_cpu_s"`
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	// From the server's /metrics: SQL statements per request, and how many keys one coalesced
	// lookup statement served (requests sharing it).
	SQLPerRequest float64 `json:"sql_per_request,omitempty"`
	KeysPerLookup float64 `json:"keys_per_lookup,omitempty"`
	FirstError    string  `json:"first_error,omitempty"`
}

// Result is one operation at one concurrency.
type Result struct {
	Operation   string  `json:"operation"`
	Concurrency int     `json:"concurrency"`
	Server      Stats   `json:"server"`
	Pgbench     *Stats  `json:"pgbench,omitempty"`
	Ratio       float64 `json:"ratio_server_to_pgbench,omitempty"`
	// The peer's equivalent query (-peer), in the same rounds, and our rate over its rate.
	Peer      *Stats  `json:"peer,omitempty"`
	PeerRatio float64 `json:"ratio_server_to_peer,omitempty"`
	// The floor's answers to the same requests (-floor), in the same rounds; its rate over
	// pgbench's, and ours over its.
	Floor         *Stats  `json:"floor,omitempty"`
	FloorRatio    float64 `json:"ratio_floor_to_pgbench,omitempty"`
	ServerToFloor float64 `json:"ratio_server_to_floor,omitempty"`
	// The same server through pgbouncer (-pooler), in the same rounds; its rate over the
	// direct one's.
	Pooled      *Stats  `json:"pooled,omitempty"`
	PooledRatio float64 `json:"ratio_pooled_to_direct,omitempty"`
}

// Report is the JSON the suite writes.
type Report struct {
	Started     time.Time `json:"started"`
	CPUs        int       `json:"cpus"`
	WindowS     float64   `json:"window_s"`
	WarmupS     float64   `json:"warmup_s"`
	ServerEnv   []string  `json:"server_env,omitempty"`
	Peer        string    `json:"peer,omitempty"`   // what ran as the peer, versions included
	Floor       string    `json:"floor,omitempty"`  // what ran as the floor
	Pooler      string    `json:"pooler,omitempty"` // what ran as the pooled side
	Results     []Result  `json:"results"`
	PeakRSSMB   float64   `json:"server_peak_rss_mb"`
	TotalS      float64   `json:"total_s"`
	SeedSeconds float64   `json:"seed_s"`
	// What the change-notification trigger costs a write (pgbench, concurrency 32, back to back).
	Trigger []TriggerCost `json:"notify_trigger,omitempty"`
}

// TriggerCost is one write's pgbench rate on the users table when no instance has subscribers
// (the trigger checks, announces nothing), when one has (it announces), and on a copy of the
// table without the trigger.
type TriggerCost struct {
	Operation  string  `json:"operation"`
	Idle       float64 `json:"nobody_subscribed_per_second"`
	Announcing float64 `json:"subscribed_per_second"`
	Without    float64 `json:"without_trigger_per_second"`
}

// measureTrigger runs the write scripts with pgbench on users, with and without a subscribed
// instance (a row in event_listeners), and on users_plain.
func measureTrigger(ctx context.Context, env benchEnv, warmup, window time.Duration, run string) []TriggerCost {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(env.dbURL)))
	defer db.Close()
	subscribed := func(on bool) error {
		q := "DELETE FROM event_listeners WHERE instance = 'make-bench'"
		if on {
			q = "INSERT INTO event_listeners VALUES ('make-bench', now() + interval '1 hour')"
		}
		_, err := db.ExecContext(ctx, q)
		return err
	}
	var out []TriggerCost
	for _, op := range operations {
		if op.Name != "createUser" && op.Name != "updateUser" {
			continue
		}
		plain := op
		plain.pgbench = strings.Replace(op.pgbench, `"users"`, `"users_plain"`, 1)
		var rates [3]float64
		for i, o := range []operation{op, op, plain} {
			if err := subscribed(i == 1); err != nil {
				log.Printf("trigger cost: %v", err)
				return out
			}
			p, err := runPgbench(ctx, env, o, 32, warmup, window, fmt.Sprintf("%st%d", run, i))
			if err != nil {
				log.Printf("trigger cost: %v", err)
				return out
			}
			rates[i] = float64(p.Requests) / window.Seconds()
		}
		out = append(out, TriggerCost{Operation: op.Name, Idle: rates[0], Announcing: rates[1], Without: rates[2]})
	}
	return out
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	var (
		server   = flag.String("server", "bin/wikigraph", "the server binary")
		dbURL    = flag.String("db", os.Getenv("TEST_DATABASE_URL"), "URL of a PostgreSQL database the suite may create databases from (superuser)")
		pgdata   = flag.String("pgdata", os.Getenv("PG_TEST_DATA"), "data folder of that cluster, to measure its CPU time (optional)")
		window   = flag.Duration("duration", 5*time.Second, "measured time per operation, concurrency and side")
		warmup   = flag.Duration("warmup", time.Second, "unmeasured time before each window")
		levels   = flag.String("c", "8,32,128", "concurrency levels")
		only     = flag.String("ops", "", "only operations whose name matches this regexp")
		out      = flag.String("out", "bin/bench.json", "where the JSON report goes")
		noPgb    = flag.Bool("no-pgbench", false, "skip the pgbench side")
		peerName = flag.String("peer", "", "also drive this peer on the operations it can express (postgraphile)")
		peerDir  = flag.String("peer-dir", "bench/postgraphile", "the peer's npm workspace (npm ci there first)")
		peerWarm = flag.Duration("peer-warmup", 5*time.Second, "unmeasured load on each of the peer's operations once it has started, for node's JIT")
		floorOn  = flag.Bool("floor", false, "also drive the floor on user(id) and users(limit:N): a net/http server with no GraphQL, one prepared statement "+
			"through database/sql and pgdriver per request, JSON written by hand (cmd/bench/floor) — what any Go server over pgdriver costs on this machine")
		poolerOn = flag.Bool("pooler", false, "also drive the same server through pgbouncer in transaction mode (prepared statements off), in the same rounds")
		profile  = flag.String("profile", "", "write the server's CPU and heap profiles of each run into this folder")
		workDirF = flag.String("work", "bin/bench", "folder for the server log and pgbench logs")
		rounds   = flag.Int("rounds", 2, "the window is split into this many rounds, over the operations and their sides (server, peer, floor, pgbench) in turn")
		attack   = flag.Bool("attack", false, "replay the hostile-client attacks instead (make attack): each against a fresh server, on a smaller seed")
		atkLimit = flag.Duration("attack-timeout", 20*time.Second, "with -attack: give up on an attack's requests after this")
		atkDocs  = flag.Int("attack-docs", 300, "with -attack: how many distinct 900 KB documents to send")
		mixed    = flag.String("mixed", "", "drive a running cluster instead (make bench-cluster): clients writing and reading their writes "+
			"through this /query URL, with Consistency-Tokens and without, one phase each of -duration at the first -c level")
		subs       = flag.Int("subs", 0, "drive N subscribers to userCreated instead (make bench-subs): graphql-ws clients in node processes, createUser at -subs-rate")
		subsSSE    = flag.Int("subs-sse", 0, "with -subs: how many of them subscribe over server-sent events")
		subsRate   = flag.Float64("subs-rate", 20, "with -subs: createUser per second")
		subsFor    = flag.Duration("subs-duration", 60*time.Second, "with -subs: how long the mutations go on")
		subsIdle   = flag.Bool("subs-idle", false, "with -subs: connect and subscribe, send nothing, measure memory and goroutines")
		subsHold   = flag.Duration("subs-idle-hold", 10*time.Second, "with -subs-idle: how long the subscribers are held before measuring")
		subsPer    = flag.Int("subs-per-process", 2500, "with -subs: subscribers per node process")
		subsDir    = flag.String("subs-dir", "bench/subs", "with -subs: the clients' npm workspace (npm ci there first)")
		subsWait   = flag.Duration("subs-connect-timeout", 3*time.Minute, "with -subs: give up when the subscribers are not all connected by then")
		mixedMet   = flag.String("mixed-metrics", "", "with -mixed: the instances' /metrics URLs, comma-separated")
		mixedEvery = flag.Int("mixed-write-every", 10, "with -mixed: one operation in this many is a mutation")
	)
	flag.Parse()
	if *mixed != "" {
		c, err := strconv.Atoi(strings.Split(*levels, ",")[0])
		if err != nil || c < 1 || *mixedEvery < 2 {
			log.Fatal("bad -c or -mixed-write-every")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if *out == "bin/bench.json" {
			*out = "bin/bench-cluster.json"
		}
		opts := mixedOptions{url: *mixed, metrics: strings.Split(*mixedMet, ","), concurrency: c, window: *window, writeEvery: *mixedEvery}
		if err := runMixed(ctx, opts, *out); err != nil {
			stop()
			log.Fatal(err)
		}
		return
	}
	if *dbURL == "" {
		log.Fatal("no database: set -db or TEST_DATABASE_URL (make bench does)")
	}
	if *peerName != "" {
		if *peerName != "postgraphile" {
			log.Fatalf("unknown peer %q: the suite knows postgraphile", *peerName)
		}
		if _, _, _, err := postgraphileFiles(*peerDir); err != nil { // before seeding, not after
			log.Fatal(err)
		}
	}
	var concurrencies []int
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("bad concurrency %q", f)
		}
		concurrencies = append(concurrencies, n)
	}
	var filter *regexp.Regexp
	if *only != "" {
		filter = regexp.MustCompile(*only)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*workDirF, 0o755); err != nil {
		log.Fatal(err)
	}
	var floorBin string
	if *floorOn && !*attack { // built before seeding, not after
		var err error
		if floorBin, err = buildFloor(ctx, *workDirF); err != nil {
			log.Fatal(err)
		}
	}
	began := time.Now()
	env, err := prepare(ctx, *dbURL, *pgdata, *workDirF)
	if err != nil {
		log.Fatal(err)
	}
	if *subs > 0 {
		if *out == "bin/bench.json" {
			*out = "bin/bench-subs.json"
		}
		o := subsOptions{subscribers: *subs, sse: min(*subsSSE, *subs), perProcess: max(1, *subsPer), rate: *subsRate, duration: *subsFor,
			idle: *subsIdle, idleHold: *subsHold, dir: *subsDir, profile: *profile, node: "node", connectWait: *subsWait}
		if err := runSubs(ctx, env, *server, o, *out); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *attack {
		// Enough rows for the costliest query to read full pages: 5 items for each user.
		log.Printf("seeding %d users and %d items", attackUsers, 5*attackUsers)
		if err := seed(ctx, env, *server, attackUsers, 5*attackUsers); err != nil {
			log.Fatal(err)
		}
		if *out == "bin/bench.json" {
			*out = "bin/attack.json"
		}
		if err := runAttacks(ctx, env, *server, attackOptions{timeout: *atkLimit, docs: *atkDocs, only: filter}, *out); err != nil {
			log.Fatal(err)
		}
		return
	}
	report := Report{Started: began.UTC(), CPUs: runtime.NumCPU(), WindowS: window.Seconds(), WarmupS: warmup.Seconds()}
	log.Printf("seeding %d users and %d items", seedUsers, seedItems)
	t0 := time.Now()
	if err := seed(ctx, env, *server, seedUsers, seedItems); err != nil {
		log.Fatal(err)
	}
	report.SeedSeconds = time.Since(t0).Seconds()
	log.Printf("seeded in %.1fs", report.SeedSeconds)

	srv, err := startServer(ctx, *server, env, *profile != "", true)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.stop()
	var peer, floor, pooled *serverProc
	stopPooled := func() {}
	stopAll := func() {
		srv.stop()
		stopPooled()
		if peer != nil {
			peer.stop()
		}
		if floor != nil {
			floor.stop()
		}
	}
	// log.Fatal skips deferred calls: stop the servers first.
	fatal := func(v ...any) { stopAll(); log.Fatal(v...) }
	fatalf := func(format string, v ...any) { stopAll(); log.Fatalf(format, v...) }
	report.ServerEnv = srv.extraEnv
	if *peerName != "" {
		if peer, report.Peer, err = startPostGraphile(ctx, *peerDir, env); err != nil {
			fatal(err)
		}
		defer peer.stop()
		log.Printf("peer: %s", report.Peer)
		if err := warmPeer(ctx, peer, filter, *peerWarm); err != nil {
			fatal(err)
		}
	}
	if *poolerOn {
		if pooled, stopPooled, report.Pooler, err = startPooled(ctx, *server, env, false); err != nil {
			fatal(err)
		}
		defer stopPooled()
		log.Printf("pooled: %s", report.Pooler)
	}
	if floorBin != "" {
		if floor, report.Floor, err = startFloor(ctx, floorBin, env); err != nil {
			fatal(err)
		}
		defer floor.stop()
		log.Printf("floor: %s", report.Floor)
	}
	run := strconv.FormatInt(began.Unix()%1_000_000, 36)
	var selected []operation
	for _, op := range operations {
		if filter == nil || filter.MatchString(op.Name) {
			selected = append(selected, op)
		}
	}
	// The rounds go over every operation in turn, and every side of each (server, peer, floor,
	// pgbench) in turn, so that a slow spell of the (shared, noisy) machine falls on all of them
	// rather than on one: ratios between operations (nested within 3x a page) and between sides
	// hold up better than their rates.
	slice := *window / time.Duration(*rounds)
	type parts struct {
		srv, peer, floor, pooled, pgb                []Stats
		srvRes, peerRes, floorRes, pooledRes, pgbRes []loadResult
	}
	for _, c := range concurrencies {
		acc := make([]parts, len(selected))
		for round := range *rounds {
			for k, op := range selected {
				if ctx.Err() != nil {
					fatal("interrupted")
				}
				a := &acc[k]
				tag := fmt.Sprintf("%s%d%d%c", run, c, round, 'a'+k%26)
				var prof *profiler
				if *profile != "" && round == 0 {
					prof = srv.profile(ctx, *profile, op.Name, c, *warmup, slice)
				}
				st, res, err := measureServer(ctx, env, srv, op, c, *warmup, slice, tag)
				if err != nil {
					fatal(err)
				}
				a.srv, a.srvRes = append(a.srv, st), append(a.srvRes, res)
				if prof != nil {
					prof.wait()
				}
				if peerOp, ok := postgraphileOps[op.Name]; ok && peer != nil {
					st, res, err := measureServer(ctx, env, peer, peerOp, c, *warmup, slice, tag+"p")
					if err != nil {
						fatal(err)
					}
					a.peer, a.peerRes = append(a.peer, st), append(a.peerRes, res)
				}
				if pooled != nil {
					st, res, err := measureServer(ctx, env, pooled, op, c, *warmup, slice, tag+"b")
					if err != nil {
						fatal(err)
					}
					a.pooled, a.pooledRes = append(a.pooled, st), append(a.pooledRes, res)
				}
				if route, ok := floorOps[op.Name]; ok && floor != nil {
					st, res, err := measureServer(ctx, env, floor.at(route), op, c, *warmup, slice, tag+"f")
					if err != nil {
						fatal(err)
					}
					a.floor, a.floorRes = append(a.floor, st), append(a.floorRes, res)
				}
				if *noPgb {
					continue
				}
				p, err := runPgbench(ctx, env, op, c, *warmup, slice, tag)
				if err != nil {
					fatal(err)
				}
				ps := Stats{DBCPU: p.DBCPU.Seconds(), ClientCPU: p.ClientCPU.Seconds()}
				a.pgb, a.pgbRes = append(a.pgb, ps), append(a.pgbRes, p.loadResult)
			}
		}
		for k, op := range selected {
			a := &acc[k]
			r := Result{Operation: op.Name, Concurrency: c}
			r.Server = combine(a.srv, a.srvRes, *window)
			if len(a.peer) > 0 {
				s := combine(a.peer, a.peerRes, *window)
				r.Peer = &s
				if s.PerSecond > 0 {
					r.PeerRatio = r.Server.PerSecond / s.PerSecond
				}
			}
			if len(a.pgb) > 0 {
				s := combine(a.pgb, a.pgbRes, *window)
				r.Pgbench = &s
				if s.PerSecond > 0 {
					r.Ratio = r.Server.PerSecond / s.PerSecond
				}
			}
			if len(a.pooled) > 0 {
				s := combine(a.pooled, a.pooledRes, *window)
				r.Pooled = &s
				if r.Server.PerSecond > 0 {
					r.PooledRatio = s.PerSecond / r.Server.PerSecond
				}
			}
			if len(a.floor) > 0 {
				s := combine(a.floor, a.floorRes, *window)
				r.Floor = &s
				if s.PerSecond > 0 {
					r.ServerToFloor = r.Server.PerSecond / s.PerSecond
				}
				if r.Pgbench != nil && r.Pgbench.PerSecond > 0 {
					r.FloorRatio = s.PerSecond / r.Pgbench.PerSecond
				}
			}
			report.Results = append(report.Results, r)
			printResult(r)
		}
	}
	if !*noPgb && (filter == nil || filter.MatchString("createUser") || filter.MatchString("updateUser")) {
		report.Trigger = measureTrigger(ctx, env, *warmup, *window, run)
	}
	report.PeakRSSMB = srv.peakRSS
	report.TotalS = time.Since(began).Seconds()
	fmt.Println()
	printTable(os.Stdout, report)
	data, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		fatal(err)
	}
	fmt.Printf("\nJSON: %s; server log: %s; took %s\n", *out, filepath.Join(env.workDir, "server.log"), time.Since(began).Round(time.Second))
	errs := 0
	for _, r := range report.Results {
		errs += r.Server.Errors
		if r.Pgbench != nil {
			errs += r.Pgbench.Errors
		}
		if r.Peer != nil {
			errs += r.Peer.Errors
		}
		if r.Floor != nil {
			errs += r.Floor.Errors
		}
		if r.Pooled != nil {
			errs += r.Pooled.Errors
		}
	}
	if errs > 0 {
		fatalf("%d requests failed", errs)
	}
}

// prepare creates a fresh database for the suite in the cluster dbURL names.
func prepare(ctx context.Context, dbURL, pgdata, workDir string) (benchEnv, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return benchEnv{}, err
	}
	env := benchEnv{workDir: workDir, dbHost: u.Hostname(), dbPort: u.Port(), dbUser: u.User.Username(), dbName: "wikigraph_bench"}
	if env.dbPort == "" {
		env.dbPort = "5432"
	}
	if pgdata != "" {
		env.postmaster = postmasterPID(pgdata)
	}
	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dbURL)))
	defer admin.Close()
	for _, stmt := range []string{
		"DROP DATABASE IF EXISTS " + env.dbName + " WITH (FORCE)",
		"CREATE DATABASE " + env.dbName,
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			return env, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	u.Path = "/" + env.dbName
	env.dbURL = u.String()
	return env, nil
}

// seed migrates the suite's database with the server binary and fills it in a few statements.
// Triggers are off while seeding (session_replication_role): the seed announces no changes.
func seed(ctx context.Context, env benchEnv, server string, seedUsers, seedItems int) error {
	cmd := exec.CommandContext(ctx, server, "migrate", "up")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+env.dbURL, "LOG_LEVEL=warn")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v\n%s", err, out)
	}
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(env.dbURL), pgdriver.WithTimeout(10*time.Minute)))
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, stmt := range []string{
		"SET session_replication_role = replica",
		fmt.Sprintf(`INSERT INTO users (username, email, created_at, updated_at)
			SELECT 'user_' || g, 'user_' || g || '@bench.example', t, t
			FROM generate_series(1, %d) g, LATERAL (SELECT now() - (%d - g) * interval '1 second' AS t) x`, seedUsers, seedUsers),
		fmt.Sprintf(`INSERT INTO items (owner_id, title, description)
			SELECT 1 + (g - 1) %% %d, 'item ' || g, CASE WHEN g %% 2 = 0 THEN 'a description' END
			FROM generate_series(1, %d) g`, seedUsers, seedItems),
		"SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))",
		"SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT max(id) FROM items))",
		"RESET session_replication_role",
		// The same table without the change-notification trigger, to measure what it costs.
		"CREATE TABLE users_plain (LIKE users INCLUDING ALL)",
		"INSERT INTO users_plain SELECT * FROM users",
		"SELECT setval(pg_get_serial_sequence('users_plain', 'id'), (SELECT max(id) FROM users_plain))",
		"VACUUM (ANALYZE) users",
		"VACUUM (ANALYZE) items",
		"VACUUM (ANALYZE) users_plain",
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

type serverProc struct {
	cmd      *exec.Cmd
	addr     string
	path     string // of the GraphQL endpoint
	metrics  bool   // whether it serves our /metrics (ours does, the peer does not)
	pprof    string
	extraEnv []string
	peakRSS  float64
	done     chan error
}

// startServer runs the server binary on a free loopback port with the caller's environment (so
// DB_MAX_CONNS=… make bench measures another setting) and waits until it is ready.
func startServer(ctx context.Context, binary string, env benchEnv, pprof, oneClient bool) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &serverProc{addr: "127.0.0.1:" + strconv.Itoa(port), path: "/query", metrics: true}
	extra := append([]string{"DATABASE_URL=" + env.dbURL, "HOST=127.0.0.1", "PORT=" + strconv.Itoa(port)}, env.serverEnv...)
	// The load generator is one client at one address (oneClient): the per-client budget would
	// cap the suite at one client's share. Unbounded unless set.
	for _, kv := range []string{"CLIENT_MAX_CONCURRENT_OPERATIONS=0", "CLIENT_COST_PER_SECOND=0"} {
		if name, _, _ := strings.Cut(kv, "="); oneClient && os.Getenv(name) == "" {
			extra = append(extra, kv)
		}
	}
	if pprof {
		pport, err := freePort()
		if err != nil {
			return nil, err
		}
		s.pprof = "127.0.0.1:" + strconv.Itoa(pport)
		extra = append(extra, "PPROF_ADDR="+s.pprof)
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if known(name) && !slices.ContainsFunc(extra, func(e string) bool { return strings.HasPrefix(e, name+"=") }) {
			s.extraEnv = append(s.extraEnv, kv)
		}
	}
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), extra...)
	logName := env.serverLog
	if logName == "" {
		logName = "server.log"
	}
	if err := s.launch(ctx, cmd, filepath.Join(env.workDir, logName), s.ready, 30*time.Second); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return s, nil
}

// launch starts cmd with its output in logName and waits until ready says so.
func (s *serverProc) launch(ctx context.Context, cmd *exec.Cmd, logName string, ready func() bool, patience time.Duration) error {
	logFile, err := os.Create(logName)
	if err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	go func() { s.done <- s.cmd.Wait(); logFile.Close() }()
	deadline := time.Now().Add(patience)
	for !ready() {
		select {
		case err := <-s.done:
			return fmt.Errorf("exited: %v (see %s)", err, logName)
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("not ready after %s (see %s)", patience, logName)
		}
	}
	return nil
}

// known reports whether name is one of the server's settings (listed in the report).
func known(name string) bool {
	for _, p := range []string{"DB_", "QUERY_", "LOG_", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG", "OPERATION_", "MAX_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (s *serverProc) stop() {
	if s.cmd.ProcessState != nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// measureServer drives op against the server (ours or the peer) and measures its CPU time and RSS
// in the window.
func measureServer(ctx context.Context, env benchEnv, srv *serverProc, op operation, c int, warmup, window time.Duration, run string) (Stats, loadResult, error) {
	pid := srv.cmd.Process.Pid
	var self0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	type cpu struct {
		server time.Duration
		db     map[int]time.Duration
	}
	sampled := make(chan [2]cpu, 1)
	peak := make(chan int64, 1)
	go func() {
		time.Sleep(warmup)
		var s [2]cpu
		s[0].server, _ = cpuTime(pid)
		s[0].db = clusterCPU(env.postmaster)
		var top int64
		end := time.Now().Add(window)
		for time.Now().Before(end) {
			top = max(top, rss(pid))
			time.Sleep(50 * time.Millisecond)
		}
		s[1].server, _ = cpuTime(pid)
		s[1].db = clusterCPU(env.postmaster)
		sampled <- s
		peak <- top
	}()
	var before, after map[string]float64
	if srv.metrics {
		before = scrape(srv.addr)
	}
	res, err := drive(ctx, srv.addr, srv.path, op, c, warmup, window, run)
	if err != nil {
		return Stats{}, res, err
	}
	if srv.metrics {
		after = scrape(srv.addr)
	}
	s := <-sampled
	var self1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	st := stats(res, window)
	st.ServerCPU = (s[1].server - s[0].server).Seconds()
	st.DBCPU = cpuSince(s[0].db, s[1].db).Seconds()
	clientCPU := time.Duration(self1.Utime.Nano() + self1.Stime.Nano() - self0.Utime.Nano() - self0.Stime.Nano())
	st.ClientCPU = clientCPU.Seconds() * window.Seconds() / (warmup + window).Seconds()
	st.PeakRSSMB = float64(<-peak) / (1 << 20)
	// The counters cover warm-up and window alike: divide by every request answered.
	if total := after["requests"] - before["requests"]; total > 0 {
		st.SQLPerRequest = (after["wikigraph_db_statements_total"] - before["wikigraph_db_statements_total"]) / total
	}
	if n := after["wikigraph_db_lookup_statements_total"] - before["wikigraph_db_lookup_statements_total"]; n > 0 {
		st.KeysPerLookup = (after["wikigraph_db_lookup_keys_total"] - before["wikigraph_db_lookup_keys_total"]) / n
	}
	srv.peakRSS = max(srv.peakRSS, st.PeakRSSMB)
	return st, res, nil
}

// combine makes one Stats of the rounds of one side: counts, latencies and CPU times add up,
// RSS is the peak, per-request ratios are averaged by requests.
func combine(parts []Stats, results []loadResult, window time.Duration) Stats {
	var all loadResult
	for _, r := range results {
		all.Requests += r.Requests
		all.Errors += r.Errors
		all.Latencies = append(all.Latencies, r.Latencies...)
		if all.FirstErr == "" {
			all.FirstErr = r.FirstErr
		}
	}
	s := stats(all, window)
	for _, p := range parts {
		s.ServerCPU += p.ServerCPU
		s.DBCPU += p.DBCPU
		s.ClientCPU += p.ClientCPU
		s.PeakRSSMB = max(s.PeakRSSMB, p.PeakRSSMB)
		if all.Requests > 0 {
			w := float64(p.Requests) / float64(all.Requests)
			s.SQLPerRequest += p.SQLPerRequest * w
			s.KeysPerLookup += p.KeysPerLookup * w
		}
	}
	return s
}

// scrape reads the counters the suite uses from the server's /metrics, summed over labels;
// "requests" is the number of GraphQL operations answered.
func scrape(addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			rest = line[i+1:]
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			continue
		}
		switch name {
		case "wikigraph_db_statements_total", "wikigraph_db_lookup_statements_total", "wikigraph_db_lookup_keys_total":
			out[name] += v
		case "wikigraph_graphql_operations_total":
			out["requests"] += v
		}
	}
	return out
}

func stats(res loadResult, window time.Duration) Stats {
	s := Stats{Requests: res.Requests, Errors: res.Errors, FirstError: res.FirstErr}
	s.PerSecond = float64(res.Requests) / window.Seconds()
	if n := len(res.Latencies); n > 0 {
		slices.Sort(res.Latencies)
		at := func(q float64) float64 {
			return float64(res.Latencies[min(n-1, int(q*float64(n)))]) / 1e6
		}
		s.P50ms, s.P90ms, s.P99ms, s.MaxMs = at(0.50), at(0.90), at(0.99), float64(res.Latencies[n-1])/1e6
	}
	return s
}

func printResult(r Result) {
	line := fmt.Sprintf("%-28s c=%-3d server %8.0f/s p99 %6.2f ms errors %d", r.Operation, r.Concurrency, r.Server.PerSecond, r.Server.P99ms, r.Server.Errors)
	if r.Pgbench != nil {
		line += fmt.Sprintf(" | pgbench %8.0f/s p99 %6.2f ms errors %d | ratio %.2f", r.Pgbench.PerSecond, r.Pgbench.P99ms, r.Pgbench.Errors, r.Ratio)
	}
	if r.Peer != nil {
		line += fmt.Sprintf(" | peer %8.0f/s p99 %6.2f ms errors %d | ratio %.2f", r.Peer.PerSecond, r.Peer.P99ms, r.Peer.Errors, r.PeerRatio)
	}
	if r.Pooled != nil {
		line += fmt.Sprintf(" | pooled %8.0f/s p99 %6.2f ms errors %d | pooled/direct %.2f", r.Pooled.PerSecond, r.Pooled.P99ms, r.Pooled.Errors, r.PooledRatio)
	}
	if r.Floor != nil {
		line += fmt.Sprintf(" | floor %8.0f/s p99 %6.2f ms errors %d | floor/pgbench %.2f", r.Floor.PerSecond, r.Floor.P99ms, r.Floor.Errors, r.FloorRatio)
	}
	log.Print(line)
	if r.Server.FirstError != "" {
		log.Printf("  first server error: %s", r.Server.FirstError)
	}
	if r.Pgbench != nil && r.Pgbench.FirstError != "" {
		log.Printf("  pgbench: %s", r.Pgbench.FirstError)
	}
	if r.Peer != nil && r.Peer.FirstError != "" {
		log.Printf("  first peer error: %s", r.Peer.FirstError)
	}
	if r.Pooled != nil && r.Pooled.FirstError != "" {
		log.Printf("  first pooled error: %s", r.Pooled.FirstError)
	}
	if r.Floor != nil && r.Floor.FirstError != "" {
		log.Printf("  first floor error: %s", r.Floor.FirstError)
	}
}

func printTable(w io.Writer, rep Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tc\treq/s\tp50 ms\tp90 ms\tp99 ms\terrors\tserver CPU s\tdb CPU s\tclient CPU s\tRSS MB\tSQL/req\tkeys/lookup\t| pgbench tx/s\tp50 ms\tp99 ms\tdb CPU s\tclient CPU s\t| ratio\t")
	for _, r := range rep.Results {
		s := r.Server
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t%.1f\t", r.Operation, r.Concurrency,
			s.PerSecond, s.P50ms, s.P90ms, s.P99ms, s.Errors, s.ServerCPU, s.DBCPU, s.ClientCPU, s.PeakRSSMB, s.SQLPerRequest, s.KeysPerLookup)
		if p := r.Pgbench; p != nil {
			fmt.Fprintf(tw, "| %.0f\t%.2f\t%.2f\t%.2f\t%.2f\t| %.2f\t\n", p.PerSecond, p.P50ms, p.P99ms, p.DBCPU, p.ClientCPU, r.Ratio)
		} else {
			fmt.Fprintln(tw, "|\t\t\t\t\t|\t")
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "window %.0fs after %.0fs warm-up per row and side; %d CPUs shared by load generator, server and PostgreSQL; server peak RSS %.0f MB\n",
		rep.WindowS, rep.WarmupS, rep.CPUs, rep.PeakRSSMB)
	for _, tc := range rep.Trigger {
		fmt.Fprintf(w, "change trigger, %s by pgbench at c=32: %.0f tx/s with nobody subscribed, %.0f with a subscribed instance (NOTIFY), %.0f without the trigger\n",
			tc.Operation, tc.Idle, tc.Announcing, tc.Without)
	}
	if len(rep.ServerEnv) > 0 {
		fmt.Fprintf(w, "server settings: %s\n", strings.Join(rep.ServerEnv, " "))
	}
	printPeerTable(w, rep)
	printFloorTable(w, rep)
	printPooledTable(w, rep)
}

// printPooledTable prints the rows that have a pooled side: the direct server and the same
// server through pgbouncer, and the pooled rate over the direct one.
func printPooledTable(w io.Writer, rep Report) {
	if rep.Pooler == "" {
		return
	}
	fmt.Fprintf(w, "\npooled: %s\n", rep.Pooler)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation	c	direct req/s	p50 ms	p99 ms	| pooled req/s	p50 ms	p99 ms	| pooled/direct	")
	for _, r := range rep.Results {
		s, p := r.Server, r.Pooled
		if p == nil {
			continue
		}
		fmt.Fprintf(tw, "%s	%d	%.0f	%.2f	%.2f	| %.0f	%.2f	%.2f	| %.2f	\n", r.Operation, r.Concurrency,
			s.PerSecond, s.P50ms, s.P99ms, p.PerSecond, p.P50ms, p.P99ms, r.PooledRatio)
	}
	tw.Flush()
}

// printPeerTable prints the rows that have a peer side: both rates, latencies and CPU per
// request (the server process, and PostgreSQL), and our rate over the peer's.
func printPeerTable(w io.Writer, rep Report) {
	if rep.Peer == "" {
		return
	}
	perReq := func(cpu float64, s *Stats) float64 {
		if s.Requests == 0 {
			return 0
		}
		return cpu * 1e6 / float64(s.Requests)
	}
	fmt.Fprintf(w, "\npeer: %s\n", rep.Peer)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tc\twikigraph req/s\tp50 ms\tp99 ms\tCPU µs/req\tdb µs/req\t| PostGraphile req/s\tp50 ms\tp99 ms\tCPU µs/req\tdb µs/req\tRSS MB\t| wikigraph/PostGraphile\t")
	for _, r := range rep.Results {
		s, p := r.Server, r.Peer
		if p == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t| %.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t| %.2f\t\n", r.Operation, r.Concurrency,
			s.PerSecond, s.P50ms, s.P99ms, perReq(s.ServerCPU, &s), perReq(s.DBCPU, &s),
			p.PerSecond, p.P50ms, p.P99ms, perReq(p.ServerCPU, p), perReq(p.DBCPU, p), p.PeakRSSMB, r.PeerRatio)
	}
	tw.Flush()
}

// printFloorTable prints the rows that have a floor side: our rate and pgbench's, the floor's
// numbers, its rate over pgbench's and ours over its.
func printFloorTable(w io.Writer, rep Report) {
	if rep.Floor == "" {
		return
	}
	fmt.Fprintf(w, "\nfloor (no GraphQL, one prepared statement per request): %s\n", rep.Floor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tc\tserver req/s\t| pgbench tx/s\t| floor req/s\tp50 ms\tp90 ms\tp99 ms\terrors\tfloor CPU s\tdb CPU s\tclient CPU s\tRSS MB\t| server/pgbench\tfloor/pgbench\tserver/floor\t")
	for _, r := range rep.Results {
		f := r.Floor
		if f == nil {
			continue
		}
		pgb := ""
		if r.Pgbench != nil {
			pgb = fmt.Sprintf("%.0f", r.Pgbench.PerSecond)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t| %s\t| %.0f\t%.2f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%.2f\t%.0f\t| %.2f\t%.2f\t%.2f\t\n", r.Operation, r.Concurrency,
			r.Server.PerSecond, pgb, f.PerSecond, f.P50ms, f.P90ms, f.P99ms, f.Errors, f.ServerCPU, f.DBCPU, f.ClientCPU, f.PeakRSSMB,
			r.Ratio, r.FloorRatio, r.ServerToFloor)
	}
	tw.Flush()
}

// ready reports whether the process answers its readiness probe (/readyz) with 200.
func (s *serverProc) ready() bool {
	resp, err := http.Get("http://" + s.addr + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
