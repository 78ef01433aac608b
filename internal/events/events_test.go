package events_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	db := dbtest.DB(t)
	b := events.New(db, events.Options{Buffer: buffer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

// A subscriber that stops reading is disconnected once its buffer is full; the others get
// every event, unslowed.
func TestSlowSubscriberIsDisconnected(t *testing.T) {
	const buffer = 64
	b := startBroker(t, buffer)
	ctx := context.Background()
	slow, err := b.UserCreated(ctx)
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
