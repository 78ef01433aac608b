package database_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

func TestConsistencyTokens(t *testing.T) {
	lsn, err := database.ParseLSN("16/B374D848")
	require.NoError(t, err)
	assert.Equal(t, database.LSN(0x16B374D848), lsn)
	assert.Equal(t, "v1.00000016b374d848", lsn.Token())
	back, ok := database.ParseToken(lsn.Token())
	assert.True(t, ok)
	assert.Equal(t, lsn, back)
	for _, bad := range []string{"", "v1.", "16/B374D848", "v2.00000016b374d848", "v1.00000016b374d84", "v1.zz000016b374d848"} {
		_, ok := database.ParseToken(bad)
		assert.False(t, ok, bad)
	}
	for _, bad := range []string{"", "16", "x/1", "1/x", "1/100000000"} {
		_, err := database.ParseLSN(bad)
		assert.Error(t, err, bad)
	}
}

// TestRouterRotation runs a router over a real replica: in rotation once Ready and caught up;
// out while its replay is paused and it falls behind by more than MaxLag, in again once it
// replays; out while it is stopped. A token it has not replayed reads the primary, at once when
// no replica is in rotation to wait for.
func TestRouterRotation(t *testing.T) {
	ctx := context.Background()
	primary := dbtest.NewServer(t)
	replica := dbtest.NewReplica(t, primary, 0)
	pdb, err := dbtest.Open(primary.URL)
	require.NoError(t, err)
	defer pdb.Close()
	rdb, err := dbtest.Open(replica.URL)
	require.NoError(t, err)
	defer rdb.Close()
	r := &database.Replica{Name: "replica", DB: rdb}
	rt := database.NewRouter(pdb, []*database.Replica{r}, database.RouterOptions{MaxLag: 300 * time.Millisecond, Interval: 50 * time.Millisecond})

	rt.Check(ctx)
	assert.False(t, r.InRotation(), "out until Ready")
	assert.Equal(t, -1, rt.Pick(ctx, 0))
	// A read with a token waits for a replica to replay it, but not while none is in rotation.
	waiting := database.NewRouter(pdb, []*database.Replica{{Name: "replica", DB: rdb}}, database.RouterOptions{Wait: time.Hour})
	picked := make(chan int)
	go func() { picked <- waiting.Pick(ctx, 1) }()
	select {
	case k := <-picked:
		assert.Equal(t, -1, k)
	case <-time.After(30 * time.Second):
		t.Fatal("a read with a token waited with no replica in rotation")
	}
	require.NoError(t, rt.Ready(ctx))
	require.Eventually(t, func() bool { rt.Check(ctx); return r.InRotation() }, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, 0, rt.Pick(ctx, 0))

	_, err = rdb.ExecContext(ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	_, err = pdb.ExecContext(ctx, "CREATE TABLE lag_probe (id int)")
	require.NoError(t, err)
	written, err := rt.WrittenLSN(ctx)
	require.NoError(t, err)
	assert.Equal(t, -1, rt.Pick(ctx, written), "a token the replica has not replayed reads the primary")
	assert.Equal(t, 0, rt.Pick(ctx, 0), "without a token, a replica within MaxLag serves")
	require.Eventually(t, func() bool { rt.Check(ctx); return !r.InRotation() }, 5*time.Second, 20*time.Millisecond)
	assert.Greater(t, r.Lag(), 300*time.Millisecond)
	assert.Equal(t, -1, rt.Pick(ctx, 0))

	_, err = rdb.ExecContext(ctx, "SELECT pg_wal_replay_resume()")
	require.NoError(t, err)
	require.Eventually(t, func() bool { rt.Check(ctx); return r.InRotation() }, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, 0, rt.Pick(ctx, written), "the token once replayed")

	replica.Stop(t)
	rt.Check(ctx)
	assert.False(t, r.InRotation(), "out while down")
	assert.Equal(t, -1, rt.Pick(ctx, 0))
	replica.Start(t)
	require.Eventually(t, func() bool { rt.Check(ctx); return r.InRotation() }, 10*time.Second, 50*time.Millisecond)
}

// TestReplicaPoolFallsBackFromAHungServer reads through a replica's pool whose server is frozen
// (SIGSTOP: it accepts connections and never answers) and which the router never takes out
// (Down is false): each read connects to the frozen server, gives up after the answer timeout
// and reads the primary, without an error, every time (the connection's deadline and its
// context's timer end at the same instant, in either order).
func TestReplicaPoolFallsBackFromAHungServer(t *testing.T) {
	hung := dbtest.NewServer(t)
	var lost atomic.Int64
	db, err := database.Open(database.Options{
		URL: hung.URL, AppName: "hung-replica", MaxConns: 2, StatementTimeout: 5 * time.Second,
		Fallback: dbtest.URL(t), AnswerTimeout: 50 * time.Millisecond,
		Lost: func(error) { lost.Add(1) }, Down: func() bool { return false },
	})
	require.NoError(t, err)
	defer db.Close()
	hung.Freeze(t)
	for i := range 40 {
		var n int
		require.NoError(t, db.DB.QueryRowContext(context.Background(), "SELECT $1::int", i).Scan(&n), "read %d", i)
		require.Equal(t, i, n)
	}
	assert.EqualValues(t, 40, lost.Load(), "each read found the replica hung")
}

// TestSlowStatementOnAHealthyReplicaIsNotAFault runs a statement that takes longer than the
// answer timeout to begin its answer (PostgreSQL sends a small result once it is complete) on
// a replica that answers other connections: it runs to its end, and the replica is not
// reported lost (in the server, that would take it out of the rotation). From a review:
// every late statement was taken for a hung replica, run again on the primary, and the replica
// taken out.
func TestSlowStatementOnAHealthyReplicaIsNotAFault(t *testing.T) {
	replica := dbtest.URL(t)
	probe, err := dbtest.Open(replica)
	require.NoError(t, err)
	defer probe.Close()
	var lost atomic.Int64
	db, err := database.Open(database.Options{
		URL: replica, AppName: "slow-replica", MaxConns: 2, StatementTimeout: 5 * time.Second,
		Fallback: dbtest.URL(t), AnswerTimeout: 100 * time.Millisecond,
		Alive: probe.PingContext, Lost: func(error) { lost.Add(1) }, Down: func() bool { return lost.Load() > 0 },
	})
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.DB.QueryRowContext(context.Background(), "SELECT 1 FROM pg_sleep(0.4)").Scan(&n))
	assert.Zero(t, lost.Load(), "a replica that answers is not lost for one slow statement")
}
