package events_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/events"
	"github.com/wikigraph/wikigraph/internal/users"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func startBroker(t *testing.T, buffer int) *events.Broker {
	t.Helper()
	return startBrokerWith(t, events.Options{Buffer: buffer})
}

func startBrokerWith(t *testing.T, opts events.Options) *events.Broker {
	t.Helper()
	return runBroker(t, dbtest.DB(t), opts)
}

// A subscriber that stops reading is disconnected once its buffer is full, with an error that
// says events were dropped; the others get every event, unslowed.
func TestSlowSubscriberIsDisconnected(t *testing.T) {
	const buffer = 64
	b := startBroker(t, buffer)
	ctx := context.Background()
	slowCtx, slowEnd := events.WithEndReason(ctx)
	slow, err := b.UserCreated(slowCtx)
	require.NoError(t, err)
	fast, err := b.UserCreated(ctx)
	require.NoError(t, err)

	const n = 150
	got := make(chan string, n)
	go func() {
		for u := range fast {
			got <- u.Username
		}
		close(got)
	}()
	run := time.Now().UnixNano() % 1e9
	for i := range n {
		_, err := users.Create(ctx, dbtest.DB(t), users.NewUser{Username: fmt.Sprintf("slow%d_%d", run, i), Email: fmt.Sprintf("slow%d_%d@example.com", run, i)})
		require.NoError(t, err)
	}
	for i := range n {
		select {
		case name := <-got:
			assert.Equal(t, fmt.Sprintf("slow%d_%d", run, i), name, "in commit order")
		case <-time.After(5 * time.Second):
			t.Fatalf("fast subscriber got %d of %d", i, n)
		}
	}
	// The slow one holds what fit in its buffer, then its stream ends.
	var kept int
	for range slow {
		kept++
	}
	assert.Equal(t, buffer, kept)
	assert.ErrorIs(t, slowEnd(), events.ErrDropped, "not a plain end")
	assert.Equal(t, 1, b.Subscribers(), "only the fast subscriber is left")
}

func TestSubscriptionEndsWithItsContext(t *testing.T) {
	b := startBroker(t, 8)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.UserDeleted(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, b.Subscribers())
	cancel()
	select {
	case _, ok := <-ch:
		assert.False(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end")
	}
	assert.Zero(t, b.Subscribers())
}

func TestDeletedRowsArePruned(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	_, err := startBroker(t, 8).UserDeleted(ctx) // deleted rows are kept while someone subscribes
	require.NoError(t, err)
	name := fmt.Sprintf("pruned%d", time.Now().UnixNano()%1e9)
	u, err := users.Create(ctx, db, users.NewUser{Username: name, Email: name + "@example.com"})
	require.NoError(t, err)
	_, err = users.Delete(ctx, db, u.ID)
	require.NoError(t, err)
	gone, err := events.DeletedUsers(ctx, db, []int64{u.ID})
	require.NoError(t, err)
	require.Contains(t, gone, u.ID)
	assert.Equal(t, name, gone[u.ID].Username, "kept as it was")
	assert.Equal(t, u.CreatedAt.UTC(), gone[u.ID].CreatedAt.UTC())

	_, err = db.ExecContext(ctx, "UPDATE deleted_rows SET deleted_at = now() - interval '1 day' WHERE entity = 'user' AND id = ?", u.ID)
	require.NoError(t, err)
	require.NoError(t, events.Prune(ctx, db, time.Hour))
	gone, err = events.DeletedUsers(ctx, db, []int64{u.ID})
	require.NoError(t, err)
	assert.Empty(t, gone)
}

// Changes are announced (and deleted rows kept) only while some instance has subscribers: the
// notification costs every write (see the migration), so nobody listening means no cost.
func TestAnnouncedOnlyWhileSubscribed(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	listeners := func() int {
		n, err := db.NewSelect().Table("event_listeners").Where("expires_at > now()").Count(ctx)
		require.NoError(t, err)
		return n
	}
	b := startBroker(t, 8)
	require.Zero(t, listeners(), "no subscriber, no registration")
	name := fmt.Sprintf("unheard%d", time.Now().UnixNano()%1e9)
	u, err := users.Create(ctx, db, users.NewUser{Username: name, Email: name + "@example.com"})
	require.NoError(t, err)
	_, err = users.Delete(ctx, db, u.ID)
	require.NoError(t, err)
	gone, err := events.DeletedUsers(ctx, db, []int64{u.ID})
	require.NoError(t, err)
	assert.Empty(t, gone, "nothing kept when nobody subscribes")

	subCtx, cancel := context.WithCancel(ctx)
	created, err := b.UserCreated(subCtx)
	require.NoError(t, err)
	assert.Equal(t, 1, listeners(), "registered by the time the subscription exists")
	name += "_heard"
	_, err = users.Create(ctx, db, users.NewUser{Username: name, Email: name + "@example.com"})
	require.NoError(t, err)
	select {
	case got := <-created:
		assert.Equal(t, name, got.Username, "the first write after subscribing is announced")
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	require.Eventually(t, func() bool { return b.Subscribers() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func newUser(t *testing.T, prefix string) *users.User {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e9)
	u, err := users.Create(context.Background(), dbtest.DB(t), users.NewUser{Username: name, Email: name + "@example.com"})
	require.NoError(t, err)
	return u
}

// ended waits (boundedly) for a stream to be closed, discarding what it still holds, and returns
// why it ended.
func ended[T any](t *testing.T, ch <-chan T, reason func() error) error {
	t.Helper()
	for range 100_000 {
		select {
		case _, ok := <-ch:
			if !ok {
				return reason()
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the stream did not end")
		}
	}
	t.Fatal("the stream did not end")
	return nil
}

// terminateListeners ends the LISTEN connections of this database's brokers, as a failover or a
// network fault would.
func terminateListeners(t *testing.T) {
	t.Helper()
	var n int
	require.NoError(t, dbtest.DB(t).NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(context.Background(), &n))
	require.Positive(t, n, "no listener connection found")
}

// A burst far larger than the listener's buffer (deleting a user with 20,000 items announces each
// item) reaches a subscriber whose own buffer holds it whole: every event, or an error saying
// events were dropped, never a silent gap. A write after the burst marks its end.
func TestBurstIsDeliveredWholeOrReported(t *testing.T) {
	const n = 20_000
	ctx := context.Background()
	db := dbtest.DB(t)
	b := startBroker(t, 2*n)
	owner := newUser(t, "burst")
	// Made while nobody subscribes: not announced.
	_, err := db.ExecContext(ctx, "INSERT INTO items (owner_id, title) SELECT ?, 'burst ' || i FROM generate_series(1, ?) i", owner.ID, n)
	require.NoError(t, err)

	subCtx, end := events.WithEndReason(ctx)
	changes, err := b.ItemChanged(subCtx, nil)
	require.NoError(t, err)
	_, err = users.Delete(ctx, db, owner.ID)
	require.NoError(t, err)
	marker := newUser(t, "after_burst")
	var markerItem int64
	require.NoError(t, db.NewRaw("INSERT INTO items (owner_id, title) VALUES (?, 'marker') RETURNING id", marker.ID).Scan(ctx, &markerItem))

	deleted := 0
	for range n + 1 {
		select {
		case ev, ok := <-changes:
			if !ok {
				require.ErrorIs(t, end(), events.ErrDropped, "the stream ended after %d of %d events", deleted, n)
				return
			}
			if ev.Item.ID == markerItem {
				require.Equal(t, n, deleted, "every event of the burst came before the write after it (or the stream ends with an error)")
				return
			}
			assert.Equal(t, events.Deleted, ev.Kind)
			deleted++
		case <-time.After(30 * time.Second):
			t.Fatalf("stalled after %d of %d events", deleted, n)
		}
	}
	t.Fatal("no marker")
}

// Notifications sent while the listener reconnects are lost: every subscription ends with an
// error saying so, and new ones work once the listener listens again.
func TestListenerReconnectEndsSubscriptions(t *testing.T) {
	ctx := context.Background()
	b := startBroker(t, 64)
	createdCtx, createdEnd := events.WithEndReason(ctx)
	created, err := b.UserCreated(createdCtx)
	require.NoError(t, err)
	itemsCtx, itemsEnd := events.WithEndReason(ctx)
	changes, err := b.ItemChanged(itemsCtx, nil)
	require.NoError(t, err)

	terminateListeners(t)
	assert.ErrorIs(t, ended(t, created, createdEnd), events.ErrDropped)
	assert.ErrorIs(t, ended(t, changes, itemsEnd), events.ErrDropped)

	// Subscribing again works (once the listener is back, which subscribing waits for).
	var again <-chan *users.User
	for i := 0; ; i++ {
		require.Less(t, i, 100, "cannot subscribe again")
		if again, err = b.UserCreated(ctx); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	u := newUser(t, "after_reconnect")
	select {
	case got := <-again:
		assert.Equal(t, u.Username, got.Username)
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the reconnect")
	}
}

// When the changed rows cannot be loaded (here a deleted item's kept snapshot is unreadable),
// the subscriptions that would have had an event from them end with an error saying events were
// dropped; the others go on.
func TestFailedLoadEndsAffectedSubscriptions(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	b := startBroker(t, 64)
	owner := newUser(t, "unloadable")
	var item int64
	require.NoError(t, db.NewRaw("INSERT INTO items (owner_id, title) VALUES (?, 'doomed') RETURNING id", owner.ID).Scan(ctx, &item))

	itemsCtx, itemsEnd := events.WithEndReason(ctx)
	changes, err := b.ItemChanged(itemsCtx, nil)
	require.NoError(t, err)
	createdCtx, createdEnd := events.WithEndReason(ctx)
	created, err := b.UserCreated(createdCtx)
	require.NoError(t, err)

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "DELETE FROM items WHERE id = ?", item)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `UPDATE deleted_rows SET snapshot = '{"id": "not a number"}' WHERE entity = 'item' AND id = ?`, item)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	assert.ErrorIs(t, ended(t, changes, itemsEnd), events.ErrDropped)
	u := newUser(t, "unaffected")
	select {
	case got, ok := <-created:
		require.True(t, ok, "ended: %v", createdEnd())
		assert.Equal(t, u.Username, got.Username)
	case <-time.After(10 * time.Second):
		t.Fatal("the unaffected subscription heard nothing")
	}
}

// While this instance's event_listeners row is expired, writes are not announced: its
// subscriptions end with an error saying events were dropped, whether the row expired because
// renewals kept failing or is found expired when a renewal succeeds.
func TestLapsedRegistrationEndsSubscriptions(t *testing.T) {
	for name, lapse := range map[string]func(t *testing.T){
		"found expired": func(t *testing.T) {
			_, err := dbtest.DB(t).ExecContext(context.Background(), "UPDATE event_listeners SET expires_at = now() - interval '1 second'")
			require.NoError(t, err)
			newUser(t, "unannounced") // made while no row counts: never announced
		},
		"renewals fail": func(t *testing.T) {
			tx, err := dbtest.DB(t).BeginTx(context.Background(), nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx.Rollback() }) // before the broker stops: it unregisters
			_, err = tx.ExecContext(context.Background(), "LOCK TABLE event_listeners IN ACCESS EXCLUSIVE MODE")
			require.NoError(t, err)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := startBrokerWith(t, events.Options{Buffer: 64, RegistrationTTL: 2 * time.Second})
			subCtx, end := events.WithEndReason(ctx)
			created, err := b.UserCreated(subCtx)
			require.NoError(t, err)
			lapse(t)
			assert.ErrorIs(t, ended(t, created, end), events.ErrDropped)
		})
	}
}

// Rows of instances that died without unregistering are removed once expired for a while; live
// ones stay.
func TestExpiredRegistrationsAreRemoved(t *testing.T) {
	ctx := context.Background()
	db := dbtest.DB(t)
	_, err := db.ExecContext(ctx, `INSERT INTO event_listeners (instance, expires_at) VALUES
		('crashed', now() - interval '1 day'), ('alive', now() + interval '1 hour')`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.ExecContext(ctx, "DELETE FROM event_listeners WHERE instance IN ('crashed', 'alive')")
	})
	startBrokerWith(t, events.Options{Buffer: 8, RegistrationTTL: time.Second})
	rows := func() []string {
		var names []string
		require.NoError(t, db.NewRaw("SELECT instance FROM event_listeners WHERE instance IN ('crashed', 'alive') ORDER BY instance").Scan(ctx, &names))
		return names
	}
	for i := 0; ; i++ {
		require.Less(t, i, 100, "the expired row is still there")
		if len(rows()) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, []string{"alive"}, rows())
}
