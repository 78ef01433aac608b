package events_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/events"
)

// The listener checks a quiet connection every interval here (5 s in the server).
const interval = 250 * time.Millisecond

// runBroker runs a broker on db until the test ends.
func runBroker(t *testing.T, db *bun.DB, opts events.Options) *events.Broker {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := events.New(db, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	select {
	case <-b.Listening():
	case <-time.After(10 * time.Second):
		t.Fatal("not listening")
	}
	return b
}

func openPool(t *testing.T, u string, conns int) *bun.DB {
	t.Helper()
	db, err := database.Open(database.Options{URL: u, AppName: "events-liveness", MaxConns: conns})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// holdPool takes every connection of a pool; the returned function gives them back.
func holdPool(t *testing.T, db *bun.DB, conns int) func() {
	t.Helper()
	held := make([]*sql.Conn, 0, conns)
	for range conns {
		c, err := db.DB.Conn(context.Background())
		require.NoError(t, err)
		held = append(held, c)
	}
	var once sync.Once
	give := func() {
		once.Do(func() {
			for _, c := range held {
				_ = c.Close()
			}
		})
	}
	t.Cleanup(give)
	return give
}

// A busy process is no dead connection. Here the broker's pool is held whole, as a server
// whose connections are all taken would hold it: the listener cannot send itself a ping (it used
// to take the failed ping for a dead connection after two quiet intervals and end every
// subscription), and then the dispatcher, which loads rows through that pool, is stuck while
// thousands of notifications pour in, more than the listener's buffer. The connection is alive
// all along: no subscription ends, and the next change is delivered.
func TestBusyProcessKeepsItsListener(t *testing.T) {
	ctx := context.Background()
	const conns = 2
	db := openPool(t, dbtest.URL(t), conns)
	b := runBroker(t, db, events.Options{Buffer: 64, PingInterval: interval})
	subCtx, end := events.WithEndReason(ctx)
	created, err := b.UserCreated(subCtx)
	require.NoError(t, err)

	give := holdPool(t, db, conns)
	time.Sleep(4 * interval) // quiet, and no ping can be sent
	// Users that do not exist: their rows are looked for (through the pool: the dispatcher
	// waits) and not found, so nothing is sent for them.
	other := dbtest.DB(t)
	_, err = other.ExecContext(ctx, `SELECT pg_notify(?, json_build_object('e', 'user', 'k', 'CREATED', 'id', -i, 'o', 0)::text)
		FROM generate_series(1, 3000) i`, events.Channel)
	require.NoError(t, err)
	time.Sleep(4 * interval)
	give()

	u := newUser(t, "after_busy")
	for {
		select {
		case got, ok := <-created:
			require.True(t, ok, "the subscription ended: %v", end())
			if got.ID == u.ID {
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no event after the busy spell")
		}
	}
}

// freezer forwards TCP connections to a server until frozen: then the connections it had stay
// open and carry nothing, as through a network cut; connections made later work.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen map[net.Conn]bool // open connections: frozen or not
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &freezer{ln: ln, frozen: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		for c := range f.frozen {
			_ = c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			f.mu.Lock()
			f.frozen[c], f.frozen[s] = false, false
			f.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); f.pipe(c, s) }()
			go func() { defer wg.Done(); f.pipe(s, c) }()
		}
	}()
	return f
}

// pipe copies from src to dst, dropping what comes once src is frozen.
func (f *freezer) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		f.mu.Lock()
		frozen := f.frozen[src]
		f.mu.Unlock()
		if !frozen {
			if _, err := dst.Write(buf[:n]); err != nil {
				_ = src.Close()
				return
			}
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.frozen {
		f.frozen[c] = true
	}
}

// url is u through the freezer.
func (f *freezer) url(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	p.Host = f.ln.Addr().String()
	return p.String()
}

// A LISTEN connection cut off without a word (the network, not the server, failed: no reset
// comes, the socket stays open) is found dead within a few intervals, while the listener's pings
// go through; its subscriptions end with EVENTS_DROPPED, and the listener listens again.
func TestSilentConnectionIsFoundDead(t *testing.T) {
	ctx := context.Background()
	u := dbtest.URL(t)
	p, err := url.Parse(u)
	require.NoError(t, err)
	f := newFreezer(t, p.Host)
	direct := openPool(t, f.url(t, u), 2)
	b := runBroker(t, dbtest.DB(t), events.Options{Buffer: 64, PingInterval: interval, Direct: direct})
	subCtx, end := events.WithEndReason(ctx)
	created, err := b.UserCreated(subCtx)
	require.NoError(t, err)

	f.freeze()
	assert.ErrorIs(t, ended(t, created, end), events.ErrDropped)

	var again <-chan *events.ItemEvent
	for i := 0; ; i++ {
		require.Less(t, i, 100, "cannot subscribe again")
		if again, err = b.ItemChanged(ctx, nil); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	owner := newUser(t, "after_cut")
	var item int64
	require.NoError(t, dbtest.DB(t).NewRaw("INSERT INTO items (owner_id, title) VALUES (?, 'after the cut') RETURNING id", owner.ID).Scan(ctx, &item))
	select {
	case ev := <-again:
		assert.Equal(t, item, ev.Item.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the listener listened again")
	}
}

// A pinger starved between its ping's commit and telling the listener about it (at 10,000
// subscribers it was) learns of the commit after the ping itself was read: the connection
// answered, and is kept.
func TestLateKnownPingIsAnswered(t *testing.T) {
	ctx := context.Background()
	restore := events.SlowPingAcknowledgement(func() { time.Sleep(3 * interval) })
	t.Cleanup(restore) // after the broker stops (cleanups run last first)
	b := startBrokerWith(t, events.Options{Buffer: 64, PingInterval: interval})
	subCtx, end := events.WithEndReason(ctx)
	created, err := b.UserCreated(subCtx)
	require.NoError(t, err)

	time.Sleep(12 * interval) // quiet but for pings, each known late
	u := newUser(t, "after_late_pings")
	select {
	case got, ok := <-created:
		require.True(t, ok, "the subscription ended: %v", end())
		assert.Equal(t, u.ID, got.ID)
	case <-time.After(30 * time.Second):
		t.Fatal("no event after the quiet spell")
	}
}
