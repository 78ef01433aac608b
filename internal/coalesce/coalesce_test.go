package coalesce_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/coalesce"
)

// recorder is a fetch that records the batches it gets and can be held until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	started chan []int    // each batch, when its fetch starts
	release chan struct{} // closed (or sent to) to let fetches finish
}

func newRecorder() *recorder {
	return &recorder{started: make(chan []int, 100), release: make(chan struct{})}
}

func (r *recorder) fetch(ctx context.Context, keys []int) (map[int]string, error) {
	keys = slices.Clone(keys)
	r.mu.Lock()
	r.batches = append(r.batches, keys)
	r.mu.Unlock()
	r.started <- keys
	<-r.release
	out := map[int]string{}
	for _, k := range keys {
		if k >= 0 { // negative keys have no value
			out[k] = string(rune('a' + k%26))
		}
	}
	return out, nil
}

func TestLoneLookupRunsAtOnce(t *testing.T) {
	r := newRecorder()
	close(r.release)
	g := coalesce.New(r.fetch, coalesce.Options{Slots: 1})
	v, ok, err := g.Get(context.Background(), 1)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "b", v)
	_, ok, err = g.Get(context.Background(), -1)
	require.NoError(t, err)
	assert.False(t, ok, "a key with no value")
	assert.Equal(t, [][]int{{1}, {-1}}, r.batches)
}

// While the only slot is busy, lookups gather in one batch, which starts only when the slot
// frees, and takes no keys once started.
func TestLookupsWaitingForASlotShareOneStatement(t *testing.T) {
	r := newRecorder()
	g := coalesce.New(r.fetch, coalesce.Options{Slots: 1})
	ctx := context.Background()

	first := make(chan string)
	go func() { v, _, _ := g.Get(ctx, 0); first <- v }()
	assert.Equal(t, []int{0}, <-r.started, "a lone lookup starts at once")

	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, ok, err := g.Get(ctx, i)
			assert.NoError(t, err)
			assert.True(t, ok)
			got[i-1] = v
		}()
	}
	// All 20 have joined the pending batch once it holds 20 keys; it cannot start yet.
	require.Eventually(t, func() bool { return g.Waiting() == 20 }, 5*time.Second, time.Millisecond)
	select {
	case b := <-r.started:
		t.Fatalf("a batch started while the slot was busy: %v", b)
	case <-time.After(20 * time.Millisecond):
	}
	r.release <- struct{}{} // the first statement ends
	assert.Equal(t, "a", <-first)
	second := <-r.started
	assert.Len(t, second, 20, "the 20 waiting lookups share one statement")

	// A lookup arriving while that statement runs goes to the next one.
	late := make(chan string)
	go func() { v, _, _ := g.Get(ctx, 25); late <- v }()
	close(r.release)
	wg.Wait()
	assert.Equal(t, []int{25}, <-r.started)
	assert.Equal(t, "z", <-late)
	for i, v := range got {
		assert.Equal(t, string(rune('a'+(i+1)%26)), v)
	}
}

func TestMaxKeysStartsANewBatch(t *testing.T) {
	r := newRecorder()
	g := coalesce.New(r.fetch, coalesce.Options{Slots: 1, MaxKeys: 5})
	ctx := context.Background()
	go func() { _, _, _ = g.Get(ctx, 100) }()
	<-r.started
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _, _ = g.Get(ctx, i) }()
	}
	require.Eventually(t, func() bool { return g.Waiting() == 2 }, 5*time.Second, time.Millisecond,
		"12 keys in batches of at most 5: two full batches wait for the slot, and one of 2 still takes keys")
	close(r.release)
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	for _, b := range r.batches[1:] {
		assert.LessOrEqual(t, len(b), 5, "no batch over MaxKeys")
		total += len(b)
	}
	assert.Equal(t, 12, total, "every key was fetched once")
}

func TestGetManyAndDuplicates(t *testing.T) {
	r := newRecorder()
	close(r.release)
	g := coalesce.New(r.fetch, coalesce.Options{})
	vals, err := g.GetMany(context.Background(), []int{3, 3, -4, 5})
	require.NoError(t, err)
	assert.Equal(t, map[int]string{3: "d", 5: "f"}, vals)
	assert.Equal(t, [][]int{{3, -4, 5}}, r.batches, "a key is fetched once")
}

func TestAGivenUpLookupDoesNotFailTheOthers(t *testing.T) {
	r := newRecorder()
	g := coalesce.New(r.fetch, coalesce.Options{Slots: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, _, err := g.Get(ctx, 1); errc <- err }() // starts the statement
	<-r.started
	other := make(chan string)
	go func() { v, _, _ := g.Get(context.Background(), 2); other <- v }()
	require.Eventually(t, func() bool { return g.Waiting() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled, "the caller that gave up returns at once")
	close(r.release)
	assert.Equal(t, "c", <-other, "the statement it started still serves the others")
}

func TestFetchErrorsAndPanicsReachEveryWaiter(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	g := coalesce.New(func(ctx context.Context, keys []int) (map[int]string, error) {
		if calls.Add(1) == 1 {
			return nil, boom
		}
		panic("bad fetch")
	}, coalesce.Options{})
	_, _, err := g.Get(context.Background(), 1)
	assert.ErrorIs(t, err, boom)
	_, err = g.GetMany(context.Background(), []int{1, 2})
	assert.ErrorContains(t, err, "panic in fetch", "a panic becomes an error, not a crash")
}

func TestStatementDeadline(t *testing.T) {
	g := coalesce.New(func(ctx context.Context, keys []int) (map[int]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, coalesce.Options{Timeout: 20 * time.Millisecond})
	_, _, err := g.Get(context.Background(), 1)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a statement ends by its own deadline")
}

// With SameKey, only lookups of one key share a statement: each distinct key has its own.
func TestSameKeySharesOnlyIdenticalLookups(t *testing.T) {
	r := newRecorder()
	g := coalesce.New(r.fetch, coalesce.Options{Slots: 1, SameKey: true})
	ctx := context.Background()
	go func() { _, _, _ = g.Get(ctx, 100) }()
	<-r.started // holds the only slot
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _, _ = g.Get(ctx, i%3) }()
	}
	require.Eventually(t, func() bool { return g.Waiting() == 12 }, 5*time.Second, time.Millisecond)
	close(r.release)
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.batches, 4, "one statement for key 100, then one per distinct key")
	for _, b := range r.batches[1:] {
		assert.Len(t, b, 1, "a statement per key: %v", b)
	}
}

// PerKey: distinct keys run at once; a key's lookups arriving while its statement runs share the
// next one, which starts only when that one ends.
func TestPerKeyQueuesOnlyBehindTheSameKey(t *testing.T) {
	r := newRecorder()
	var asked []int // keys asked per statement
	var mu sync.Mutex
	g := coalesce.New(r.fetch, coalesce.Options{PerKey: true, Observe: func(_ string, keys int) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, keys)
	}})
	ctx := context.Background()

	first := make(chan string)
	go func() { v, _, _ := g.Get(ctx, 1); first <- v }()
	assert.Equal(t, []int{1}, <-r.started, "a lone lookup starts at once")
	other := make(chan string)
	go func() { v, _, _ := g.Get(ctx, 2); other <- v }()
	assert.Equal(t, []int{2}, <-r.started, "another key does not wait for key 1")

	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, ok, err := g.Get(ctx, 1)
			assert.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, "b", v)
		}()
	}
	require.Eventually(t, func() bool { return g.Waiting() == 10 }, 5*time.Second, time.Millisecond)
	select {
	case b := <-r.started:
		t.Fatalf("a statement of key 1 started while one ran: %v", b)
	case <-time.After(20 * time.Millisecond):
	}
	r.release <- struct{}{} // one of the two running statements ends
	r.release <- struct{}{} // and the other
	got := []string{<-first, <-other}
	assert.ElementsMatch(t, []string{"b", "c"}, got)
	assert.Equal(t, []int{1}, <-r.started)
	close(r.release)
	wg.Wait()
	mu.Lock()
	assert.Equal(t, []int{1, 1, 10}, asked, "the 10 waiting lookups share one statement")
	mu.Unlock()

	// The key's turn is over: the next lookup starts at once.
	v, _, err := g.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "b", v)
	assert.Equal(t, []int{1}, <-r.started)
	assert.Zero(t, g.Waiting())
}
