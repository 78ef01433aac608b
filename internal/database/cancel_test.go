package database_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// A context that ends just as its statement completes must not cost the next statement its
// connection: the watch's close, run late by the context, used to land on the connection after
// database/sql had found it valid and handed it to the next statement ("use of closed network
// connection").
func TestCancelAsAStatementCompletesSparesTheNextStatement(t *testing.T) {
	// More Ps than cores: the goroutine that closes the socket may wait for a turn, as on a
	// busy server.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(8, runtime.GOMAXPROCS(0))))

	u, err := url.Parse(dbtest.URL(t))
	require.NoError(t, err)
	proxy := startReplyProxy(t, u.Host)
	u.Host = proxy.addr
	db, err := database.Open(database.Options{URL: u.String(), AppName: "cancel-race", MaxConns: 2, StatementTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer db.Close()
	// One connection: the statement after a cancelled one gets its connection unless it was
	// dropped.
	db.DB.SetMaxOpenConns(1)
	db.DB.SetMaxIdleConns(1)
	bg := context.Background()
	stmt, err := db.DB.PrepareContext(bg, "SELECT $1::int")
	require.NoError(t, err)
	defer stmt.Close()
	prepared := database.Prepare(db, "SELECT $1::int")

	readAll := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		return errors.Join(rows.Err(), rows.Close())
	}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"exec", func(ctx context.Context) error { _, err := db.ExecContext(ctx, "SELECT 1"); return err }},
		{"query", func(ctx context.Context) error { return readAll(db.QueryContext(ctx, "SELECT 1")) }},
		{"prepare", func(ctx context.Context) error {
			s, err := db.DB.PrepareContext(ctx, "SELECT 2")
			if err != nil {
				return err
			}
			return s.Close()
		}},
		{"prepared exec", func(ctx context.Context) error { _, err := stmt.ExecContext(ctx, 1); return err }},
		{"prepared query", func(ctx context.Context) error { return readAll(stmt.QueryContext(ctx, 1)) }},
		{"prepared scan", func(ctx context.Context) error { var n int; return prepared.Scan(ctx, &n, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 40 {
				// On a connection where the statement is prepared already (the last was
				// dropped if cancelled), so that the end of the reply is the statement's.
				require.NoError(t, tc.run(bg))
				ctx, cancel := context.WithCancel(bg)
				// The context ends around the time the statement's reply reaches the client,
				// from another goroutine that goes on working, so that the watch's callback,
				// started by cancel, may wait a while for a P.
				const spread = 50 * time.Microsecond
				done := make(chan struct{})
				proxy.afterReply(func() {
					defer close(done)
					busy(rand.N(spread))
					cancel()
					busy(rand.N(4 * spread))
				})
				err := tc.run(ctx)
				if err != nil {
					require.ErrorIs(t, err, context.Canceled, "iteration %d: the cancelled statement", i)
				}
				var n int
				require.NoError(t, db.QueryRowContext(bg, "SELECT 1").Scan(&n),
					"iteration %d: the statement after a cancelled one", i)
				if !proxy.disarm() {
					<-done
				}
				cancel()
			}
		})
	}
}

// busy works for d without yielding on purpose.
func busy(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// replyProxy forwards connections on 127.0.0.1 to a PostgreSQL server; armed with afterReply,
// it calls a function once, just after forwarding the end of a reply (ReadyForQuery).
type replyProxy struct {
	addr  string
	armed atomic.Pointer[func()]
}

func startReplyProxy(t *testing.T, target string) *replyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &replyProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait() // the pool is closed first: its connections end, and so do their copies
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			wg.Go(func() {
				_, _ = io.Copy(server, client)
				_ = server.Close()
			})
			wg.Go(func() {
				p.forwardReplies(client, server)
				_ = client.Close()
			})
		}
	})
	return p
}

func (p *replyProxy) forwardReplies(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
			if endsWithReadyForQuery(buf[:n]) {
				if f := p.armed.Swap(nil); f != nil {
					(*f)()
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func endsWithReadyForQuery(b []byte) bool {
	// 'Z', length 5, transaction status.
	return len(b) >= 6 && bytes.Equal(b[len(b)-6:len(b)-1], []byte{'Z', 0, 0, 0, 5})
}

func (p *replyProxy) afterReply(f func()) { p.armed.Store(&f) }

// disarm reports whether the function was still waiting for a reply (and now never runs).
func (p *replyProxy) disarm() bool { return p.armed.Swap(nil) != nil }
