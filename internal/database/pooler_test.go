package database_test

import (
	"context"
	"database/sql"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"
	"golang.org/x/sync/errgroup"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// Behind pgbouncer in transaction mode, with prepared statements off, every statement runs
// with the pool's statement timeout, time zone and application name, whichever server
// connection it lands on, even while another client of the pooler keeps changing them (with
// session-level SETs) on the server connections they share; and Prepared statements work.
func TestSessionSettingsThroughTransactionPooler(t *testing.T) {
	pooled := dbtest.NewPooler(t).URL(dbtest.URL(t))
	ctx := context.Background()

	// Another client of the pooler, without our settings, sets its own on every server
	// connection: a SET outlives the transaction in which it was sent.
	other := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(pooled)))
	defer other.Close()
	spoil := func() error {
		var g errgroup.Group
		for range dbtest.PoolerServerConns {
			g.Go(func() error {
				tx, err := other.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer func() { _ = tx.Rollback() }()
				for _, q := range []string{"SET statement_timeout = 0", "SET TimeZone = 'Asia/Tokyo'",
					"SET application_name = 'other'", "SELECT pg_sleep(0.05)"} { // all server connections at once
					if _, err := tx.ExecContext(ctx, q); err != nil {
						return err
					}
				}
				return tx.Commit()
			})
		}
		return g.Wait()
	}
	require.NoError(t, spoil())

	const app = "pooled-settings"
	db, err := database.Open(database.Options{URL: pooled, AppName: app, MaxConns: 8,
		StatementTimeout: 300 * time.Millisecond, Unprepared: true})
	require.NoError(t, err)
	defer db.Close()

	check := func(t *testing.T, q bun.IDB) {
		t.Helper()
		var timeout, zone, name, shown string
		require.NoError(t, q.NewRaw(`SELECT current_setting('statement_timeout'), current_setting('TimeZone'),
			current_setting('application_name'), (SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid())`).
			Scan(ctx, &timeout, &zone, &name, &shown))
		assert.Equal(t, []string{"300ms", "UTC", app, app}, []string{timeout, zone, name, shown})
	}
	slow := func(t *testing.T, q bun.IDB) {
		t.Helper()
		start := time.Now()
		_, err := q.ExecContext(ctx, "SELECT pg_sleep(3)")
		require.Error(t, err)
		assert.True(t, database.StatementTimeout(err), "cancelled by statement_timeout: %v", err)
		assert.Less(t, time.Since(start), 2*time.Second)
	}

	stop := make(chan struct{})
	spoiling := make(chan error, 1)
	go func() { // keep spoiling while we read
		for {
			select {
			case <-stop:
				spoiling <- nil
				return
			default:
			}
			if err := spoil(); err != nil {
				spoiling <- err
				return
			}
		}
	}()
	lookup := database.Prepare(db, "SELECT current_setting('statement_timeout') || ' ' || $1::text")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				check(t, db)
				var got string
				if assert.NoError(t, lookup.Scan(ctx, &got, i*100+j)) {
					assert.Equal(t, "300ms "+strconv.Itoa(i*100+j), got, "a Prepared statement runs as text")
				}
			}
		})
	}
	wg.Wait()
	slow(t, db)
	require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		check(t, tx)
		return nil
	}))
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		slow(t, tx)
		return nil
	})
	assert.Error(t, err, "the transaction was aborted by the timeout")
	close(stop)
	require.NoError(t, <-spoiling)
}
