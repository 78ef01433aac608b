package api

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testScheduler is the scheduler api.New makes for limits (no budgets, no metrics).
func testScheduler(concurrency int, timeout time.Duration) *scheduler {
	return newScheduler(Limits{Concurrency: concurrency, CheapCost: 100, Timeout: timeout}, nil,
		noObserver{}, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
}

// eventFlood starts n subscription events that each take a turn and hold it until release is
// closed; held counts those holding one. It returns a wait for them all to end.
func eventFlood(t *testing.T, s *scheduler, n int, held *atomic.Int32, release <-chan struct{}) func() {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			give, ok := s.takeEvent(context.Background())
			if !ok {
				return
			}
			held.Add(1)
			<-release
			held.Add(-1)
			give()
		}()
	}
	return wg.Wait
}

// Subscription events (fan-out: one per subscriber and event) hold at most their share of the
// turns, however many wait: queries and mutations, cheap or costly, still find turns while events
// hold all theirs and thousands more wait. The waits are bounded only so that a failure ends.
func TestEventsCannotTakeEveryTurn(t *testing.T) {
	const concurrency = 16
	s := testScheduler(concurrency, time.Minute)
	share := concurrency / 4
	var held atomic.Int32
	release := make(chan struct{})
	wait := eventFlood(t, s, 10*concurrency, &held, release)
	defer wait()
	defer close(release)
	require.Eventually(t, func() bool { return held.Load() == int32(share) }, 10*time.Second, time.Millisecond,
		"the events hold their share of the turns")

	// No event gives its turn back while these run: every turn they take is one events cannot.
	var ops []func()
	for i, costly := range []bool{false, false, true, true} {
		got := make(chan func(), 1)
		go func() {
			give, ok := s.take(context.Background(), costly)
			if ok {
				got <- give
			}
		}()
		select {
		case give := <-got:
			ops = append(ops, give)
		case <-time.After(30 * time.Second):
			t.Fatalf("operation %d (costly %v) got no turn while events held %d of %d", i, costly, held.Load(), concurrency)
		}
	}
	assert.Equal(t, int32(share), held.Load(), "no event took a turn beyond its share meanwhile")
	for _, give := range ops {
		give()
	}
	assert.Equal(t, int32(share), held.Load(), "the turns the operations gave back went to no event")
}

// An event that cannot have a turn before its deadline fails with it, as before events had a
// share: the subscriber gets the event as an error (TIMEOUT), never nothing.
func TestEventPastItsDeadlineWaitingForAShare(t *testing.T) {
	const concurrency = 4
	s := testScheduler(concurrency, 50*time.Millisecond)
	var held atomic.Int32
	release := make(chan struct{})
	wait := eventFlood(t, s, concurrency, &held, release) // the share, and more waiting
	defer wait()
	defer close(release)
	require.Eventually(t, func() bool { return held.Load() >= 1 }, 10*time.Second, time.Millisecond)

	_, ev := newEvent(context.Background(), s)
	defer ev.release()
	err := ev.enter(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded, "the event's deadline passed waiting for a turn")
	assert.Equal(t, "TIMEOUT", errorCode(Presenter(slog.New(slog.NewTextHandler(io.Discard, nil)))(context.Background(), err)))
}

// Costly queries holding every turn they may hold leave events their share: events do not wait
// for the costly operations' slots, from a review (a flood of costly queries left events no turn
// with half the turns idle, where they used to draw on the cheap half). And with two turns, an
// event and a costly query each have one.
func TestEventsDoNotWaitForCostlyQueries(t *testing.T) {
	for _, concurrency := range []int{16, 2} {
		s := testScheduler(concurrency, time.Minute)
		var gives []func()
		for range cap(s.costly) {
			give, ok := s.take(context.Background(), true)
			require.True(t, ok)
			gives = append(gives, give)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		give, ok := s.takeEvent(ctx)
		cancel()
		require.True(t, ok, "concurrency %d: an event got no turn while costly queries held theirs", concurrency)
		give()
		for _, give := range gives {
			give()
		}
	}
}
