package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
)

// LSN is a position in PostgreSQL's write-ahead log.
type LSN uint64

// ParseLSN reads an LSN as PostgreSQL writes it ("16/B374D848").
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("lsn %q: want X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// Consistency tokens are "v1." and the LSN in 16 hex digits: opaque to clients, versioned so
// their form may change.
const tokenPrefix = "v1."

// Token is lsn as a Consistency-Token.
func (lsn LSN) Token() string {
	return tokenPrefix + fmt.Sprintf("%016x", uint64(lsn))
}

// ParseToken reads a Consistency-Token; ok is false for anything else (a malformed token is
// ignored, as if absent).
func ParseToken(s string) (LSN, bool) {
	hex, found := strings.CutPrefix(s, tokenPrefix)
	if !found || len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return LSN(v), err == nil
}

// RouterOptions configure a Router.
type RouterOptions struct {
	// MaxLag takes a replica out of the rotation while it lags more (default 5s).
	MaxLag time.Duration
	// Wait is how long a read with a token waits for a replica to replay it before it reads the
	// primary (0: it reads the primary at once).
	Wait time.Duration
	// Interval is the period of the health checks (default 1s).
	Interval time.Duration
	Logger   *slog.Logger
	// Waited, if set, hears of each read with a token that no replica was known to have
	// replayed: how long it took to find where to read (asking the replicas, waiting up to
	// Wait), and whether a replica serves it.
	Waited func(d time.Duration, replica bool)
}

// Router spreads reads over streaming replicas of the primary, by round robin over the replicas
// in rotation: those that answer, are in recovery and lag at most MaxLag. Writes never go
// through it. A read carrying a consistency token (the primary's LSN after a client's write)
// goes only to a replica that has replayed at least that position, else to the primary.
//
// Its decisions are per operation, not per statement (as bun's ConnResolver's would be): one
// operation's reads all see one server's state, prepared statements (which bypass bun's query
// path) follow them, and statements coalesced across requests run on one target only with
// requests that chose it.
type Router struct {
	primary      *bun.DB
	replicas     []*Replica
	opts         RouterOptions
	next         atomic.Uint64
	primaryReads atomic.Uint64

	// floor is the primary's position once this instance's schema was in place (see Ready):
	// a replica that has not replayed it may lack tables, and stays out of the rotation.
	// Until Ready, every replica stays out.
	floor atomic.Uint64

	mu      sync.Mutex
	samples []sample // the primary's LSN over the last checks, oldest first
}

// sample is the primary's WAL position at a moment.
type sample struct {
	at  time.Time
	lsn LSN
}

// Replica is one streaming replica: its pool and its health.
type Replica struct {
	// Name is its host:port, for metrics and logs (never its credentials).
	Name string
	DB   *bun.DB
	// Probe is a pool of its own for the health checks, if DB's connections go elsewhere
	// while the replica is out of the rotation (Options.Down): a check must reach the replica
	// itself to put it back. A read with a token asks it how far the replica has replayed too,
	// rather than wait for a connection of DB's, which reads may all hold.
	Probe *bun.DB

	inRotation atomic.Bool
	replayed   atomic.Uint64 // LSN replayed, as last seen
	lag        atomic.Int64  // nanoseconds, as last measured
	reads      atomic.Uint64 // operations routed to it
}

// InRotation reports whether reads go to r.
func (r *Replica) InRotation() bool { return r.inRotation.Load() }

// Lag is r's lag at the last check.
func (r *Replica) Lag() time.Duration { return time.Duration(r.lag.Load()) }

// Reads is how many operations read from r.
func (r *Replica) Reads() uint64 { return r.reads.Load() }

// Replayed is the WAL position r had replayed at the last look.
func (r *Replica) Replayed() LSN { return LSN(r.replayed.Load()) }

// seen records that r has replayed at least lsn.
func (r *Replica) seen(lsn LSN) {
	for {
		old := r.replayed.Load()
		if uint64(lsn) <= old || r.replayed.CompareAndSwap(old, uint64(lsn)) {
			return
		}
	}
}

// NewRouter returns a router of reads over replicas (pools opened on their URLs); its health
// checks run in Run. Replicas start out of rotation: the first check puts them in.
func NewRouter(primary *bun.DB, replicas []*Replica, opts RouterOptions) *Router {
	if opts.MaxLag <= 0 {
		opts.MaxLag = 5 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	rt := &Router{primary: primary, replicas: replicas, opts: opts}
	rt.floor.Store(^uint64(0))
	return rt
}

// Ready tells the router that the schema this instance needs is on the primary (migrations
// are done): replicas join the rotation once they have replayed the primary's position now.
func (rt *Router) Ready(ctx context.Context) error {
	lsn, err := rt.WrittenLSN(ctx)
	if err != nil {
		return fmt.Errorf("replicas: primary position: %w", err)
	}
	rt.floor.Store(uint64(lsn))
	rt.Check(ctx)
	return nil
}

// ReplicaName is the host:port of a database URL, for metrics and logs.
func ReplicaName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "replica"
	}
	return u.Host
}

// Replicas are the router's replicas, in the order given.
func (rt *Router) Replicas() []*Replica { return rt.replicas }

// PrimaryReads is how many operations the router sent to the primary.
func (rt *Router) PrimaryReads() uint64 { return rt.primaryReads.Load() }

// Pick chooses where an operation reads: the index of a replica in rotation that has replayed
// at least after (0: no token), in turn; or -1, the primary. With a token no replica has
// replayed yet, it asks the replicas afresh, for up to the router's Wait.
func (rt *Router) Pick(ctx context.Context, after LSN) int {
	n := len(rt.replicas)
	if n == 0 {
		return -1
	}
	start := int(rt.next.Add(1) % uint64(n))
	for i := range n {
		k := (start + i) % n
		if r := rt.replicas[k]; r.InRotation() && r.Replayed() >= after {
			r.reads.Add(1)
			return k
		}
	}
	began := time.Now()
	deadline := began.Add(rt.opts.Wait)
	for {
		asked := 0
		for i := range n {
			k := (start + i) % n
			r := rt.replicas[k]
			if !r.InRotation() {
				continue
			}
			asked++
			if lsn, err := rt.replayLSN(ctx, r); err == nil && lsn >= after {
				r.reads.Add(1)
				rt.waited(began, true)
				return k
			}
		}
		// With no replica in the rotation, waiting would only delay the read.
		if asked == 0 || rt.opts.Wait <= 0 || time.Now().Add(10*time.Millisecond).After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt.primaryReads.Add(1)
	rt.waited(began, false)
	return -1
}

func (rt *Router) waited(began time.Time, replica bool) {
	if rt.opts.Waited != nil {
		rt.opts.Waited(time.Since(began), replica)
	}
}

// replayLSN asks r how far it has replayed, briefly.
func (rt *Router) replayLSN(ctx context.Context, r *Replica) (LSN, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 250*time.Millisecond)
	defer cancel()
	db := r.DB
	if r.Probe != nil {
		db = r.Probe // not queued behind the reads that fill DB's pool
	}
	var s sql.NullString
	if err := db.DB.QueryRowContext(ctx, "SELECT pg_last_wal_replay_lsn()::text").Scan(&s); err != nil {
		return 0, err
	}
	if !s.Valid {
		return 0, errors.New("not a standby")
	}
	lsn, err := ParseLSN(s.String)
	if err == nil {
		r.seen(lsn)
	}
	return lsn, err
}

// WrittenLSN returns the end of the last record the primary inserted in its WAL: every
// transaction committed before the call ends at or before it. It is the token of a client's
// writes. (pg_current_wal_lsn, the position written out, may be short of a commit made with
// synchronous_commit off.) The insert position at the start of a WAL page is after the page's
// header, which no replica reports having replayed until another record comes: the header is
// taken off, so the position is where the last record ended.
func (rt *Router) WrittenLSN(ctx context.Context) (LSN, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	var s string
	var block, segment uint64
	if err := rt.primary.DB.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text, "+
		"current_setting('wal_block_size')::int8, pg_size_bytes(current_setting('wal_segment_size'))").Scan(&s, &block, &segment); err != nil {
		return 0, err
	}
	lsn, err := ParseLSN(s)
	if err != nil {
		return 0, err
	}
	// The headers of PostgreSQL's WAL pages: long at a segment's start, short on other pages.
	const longHeader, shortHeader = 40, 24
	switch {
	case segment > 0 && uint64(lsn)%segment == longHeader:
		lsn -= longHeader
	case block > 0 && uint64(lsn)%block == shortHeader:
		lsn -= shortHeader
	}
	return lsn, nil
}

// Run checks the replicas' health every Interval until ctx ends.
func (rt *Router) Run(ctx context.Context) error {
	if len(rt.replicas) == 0 {
		return nil
	}
	t := time.NewTicker(rt.opts.Interval)
	defer t.Stop()
	for {
		rt.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check looks at the primary's position and each replica's once, and puts each replica in or
// out of the rotation.
func (rt *Router) Check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, rt.opts.Interval)
	defer cancel()
	now := time.Now()
	var s string
	if err := rt.primary.DB.QueryRowContext(cctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err == nil {
		if lsn, err := ParseLSN(s); err == nil {
			rt.record(sample{now, lsn})
		}
	}
	var wg sync.WaitGroup
	for _, r := range rt.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.check(cctx, r)
		}()
	}
	wg.Wait()
}

// record adds a sample of the primary, keeping those of the last MaxLag and two intervals:
// enough to tell a lag over MaxLag.
func (rt *Router) record(s sample) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.samples = append(rt.samples, s)
	old := s.at.Add(-rt.opts.MaxLag - 2*rt.opts.Interval)
	i := 0
	for i < len(rt.samples)-1 && rt.samples[i].at.Before(old) {
		i++
	}
	if i > 0 {
		rt.samples = append(rt.samples[:0], rt.samples[i:]...)
	}
}

// lagOf is how far behind the primary a replica that replayed lsn is, at now: none when it has
// what the primary had at the last sample; else at least the age of the oldest sample it lacks
// (the primary had written past it then). Measured on the primary's clock-free samples, not
// pg_last_xact_replay_timestamp(), which on an idle primary is the age of the last commit.
func (rt *Router) lagOf(lsn LSN, now time.Time) time.Duration {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for i := len(rt.samples) - 1; i >= 0; i-- {
		if rt.samples[i].lsn <= lsn {
			if i == len(rt.samples)-1 {
				return 0
			}
			return now.Sub(rt.samples[i+1].at)
		}
	}
	if len(rt.samples) == 0 {
		return 0
	}
	return now.Sub(rt.samples[0].at)
}

func (rt *Router) check(ctx context.Context, r *Replica) {
	db := r.DB
	if r.Probe != nil {
		db = r.Probe
	}
	var recovering bool
	var replay sql.NullString
	err := db.DB.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text").Scan(&recovering, &replay)
	var why string
	switch {
	case err != nil:
		why = err.Error()
	case !recovering || !replay.Valid:
		// Or unreachable: a replica's pool opened with a Fallback reaches the primary then.
		why = "not a standby, or unreachable"
	}
	if why == "" {
		lsn, perr := ParseLSN(replay.String)
		if perr != nil {
			why = perr.Error()
		} else {
			r.seen(lsn)
			lag := rt.lagOf(lsn, time.Now())
			r.lag.Store(int64(lag))
			switch {
			case uint64(lsn) < rt.floor.Load():
				why = "has not replayed the schema yet"
			case lag > rt.opts.MaxLag:
				why = fmt.Sprintf("lags %s", lag.Round(time.Millisecond))
			}
		}
	}
	if why != "" {
		if r.inRotation.Swap(false) {
			rt.opts.Logger.Warn("replica out of rotation", "replica", r.Name, "reason", why)
		}
		return
	}
	if !r.inRotation.Swap(true) {
		rt.opts.Logger.Info("replica in rotation", "replica", r.Name, "lag", r.Lag().String())
	}
}

// Down takes r out of the rotation at once (a read on it found it unreachable); the next check
// that finds it healthy puts it back.
func (rt *Router) Down(r *Replica, err error) {
	if r.inRotation.Swap(false) {
		rt.opts.Logger.Warn("replica out of rotation", "replica", r.Name, "reason", err.Error())
	}
}
