// Package coalesce merges lookups by key that different requests make at the same time into one
// statement: group commit, for reads. At most Slots statements of a Group run at once; while
// they do, the keys asked for gather in one pending batch, which runs as one statement as soon
// as a slot frees. So a lone request never waits for a timer, and under load many requests share
// one round trip to PostgreSQL and one parse and plan there.
//
// A batch starts only after every request in it has joined (a batch that has started takes no
// more keys), so each request still sees every write committed before it arrived.
package coalesce

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/wikigraph/wikigraph/internal/database"
)

// Options configure a Group; zero values take the defaults.
type Options struct {
	// Slots is how many statements may run at once (default 2). Fewer make bigger batches.
	Slots int
	// MaxKeys is the batch size at which a new batch starts (default 100).
	MaxKeys int
	// Timeout bounds one statement (default 10s). A statement serves many requests, so it does
	// not end when the request that started it gives up; each request still waits only as long
	// as its own context allows.
	Timeout time.Duration
	// SameKey makes only lookups of the same key share a statement (a statement per distinct
	// key, as for pages of a list: one slow page must not hold up the others).
	SameKey bool
	// PerKey is SameKey without the slots: statements of different keys run at once (the
	// database's pool bounds them), and each key has at most one running; the lookups of a key
	// arriving while its statement runs share the next one, which starts when it ends. For
	// lookups that are each a whole statement (a nested page), where a slot per group would
	// queue distinct ones behind each other.
	PerKey bool
	// Name names the group to Observe.
	Name string
	// Observe, when set, is told how many keys callers asked for in each statement the group
	// runs (a key asked by two callers counts twice), for metrics.
	Observe func(name string, keys int)
}

// Group coalesces the lookups of one kind (say, users by id).
type Group[K comparable, V any] struct {
	fetch   func(ctx context.Context, keys []K) (map[K]V, error)
	slots   chan struct{}
	maxKeys int
	timeout time.Duration
	name    string
	observe func(name string, keys int)

	sameKey, perKey bool

	mu      sync.Mutex
	pending *batch[K, V]       // the batch taking keys (not SameKey)
	byKey   map[K]*batch[K, V] // the batch taking each key (SameKey)
	running map[K]bool         // the keys with a statement running (PerKey)
}

type batch[K comparable, V any] struct {
	ctx  context.Context // of its statement (PerKey: kept while it waits for the key's turn)
	keys []K
	done chan struct{}
	vals map[K]V
	err  error
}

// New returns a Group that loads keys with fetch; fetch returns the values found, by key (a
// missing key has no value).
func New[K comparable, V any](fetch func(ctx context.Context, keys []K) (map[K]V, error), opts Options) *Group[K, V] {
	if opts.Slots <= 0 {
		opts.Slots = 2
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 100
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &Group[K, V]{
		fetch: fetch, slots: make(chan struct{}, opts.Slots), maxKeys: opts.MaxKeys, timeout: opts.Timeout,
		name: opts.Name, observe: opts.Observe, sameKey: opts.SameKey || opts.PerKey, perKey: opts.PerKey,
		byKey: map[K]*batch[K, V]{}, running: map[K]bool{},
	}
}

// Get returns the value of key and whether there is one.
func (g *Group[K, V]) Get(ctx context.Context, key K) (V, bool, error) {
	if err := ctx.Err(); err != nil {
		var zero V
		return zero, false, err // a caller that gave up starts nothing
	}
	b := g.join(ctx, []K{key})
	select {
	case <-b.done:
		v, ok := b.vals[key]
		return v, ok, b.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// GetMany returns the values of keys that have one, by key.
func (g *Group[K, V]) GetMany(ctx context.Context, keys []K) (map[K]V, error) {
	if len(keys) == 0 {
		return map[K]V{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := g.join(ctx, keys)
	select {
	case <-b.done:
		if b.err != nil {
			return nil, b.err
		}
		out := make(map[K]V, len(keys))
		for _, k := range keys {
			if v, ok := b.vals[k]; ok {
				out[k] = v
			}
		}
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Waiting returns how many keys the pending batch holds (waiting for a slot, still open).
func (g *Group[K, V]) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	if g.pending != nil {
		n = len(g.pending.keys)
	}
	for _, b := range g.byKey {
		n += len(b.keys)
	}
	return n
}

// join adds keys to the pending batch, or starts one; ctx gives the new batch its values (the
// request id in logs, the trace of its SQL), not its deadline.
func (g *Group[K, V]) join(ctx context.Context, keys []K) *batch[K, V] {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perKey && len(keys) == 1 {
		key := keys[0]
		if b := g.byKey[key]; b != nil {
			b.keys = append(b.keys, key)
			return b
		}
		b := &batch[K, V]{ctx: detach(ctx), keys: append(make([]K, 0, 16), key), done: make(chan struct{})}
		if g.running[key] {
			g.byKey[key] = b // the next statement of the key, when the running one ends
			return b
		}
		g.running[key] = true
		go g.runKey(key, b)
		return b
	}
	if g.sameKey && len(keys) == 1 {
		if b := g.byKey[keys[0]]; b != nil {
			b.keys = append(b.keys, keys[0])
			return b
		}
		b := &batch[K, V]{keys: append(make([]K, 0, 16), keys[0]), done: make(chan struct{})}
		g.byKey[keys[0]] = b
		go g.run(detach(ctx), b)
		return b
	}
	if b := g.pending; b != nil && len(b.keys) < g.maxKeys && !g.sameKey {
		b.keys = append(b.keys, keys...)
		return b
	}
	b := &batch[K, V]{keys: append(make([]K, 0, max(len(keys), 16)), keys...), done: make(chan struct{})}
	if !g.sameKey { // several keys in SameKey mode: a statement of their own, shared with nobody
		g.pending = b
	}
	go g.run(detach(ctx), b)
	return b
}

// detach is the context of a batch's statement: the values of the request that started it, but
// neither its end nor its stopper (database.WithStopper), since other requests share it.
func detach(ctx context.Context) context.Context {
	return database.WithoutStopper(context.WithoutCancel(ctx))
}

// run waits for a slot, closes the batch to new keys and runs its statement.
func (g *Group[K, V]) run(ctx context.Context, b *batch[K, V]) {
	g.slots <- struct{}{}
	defer func() { <-g.slots }()
	g.mu.Lock()
	if g.pending == b {
		g.pending = nil
	}
	if g.sameKey && g.byKey[b.keys[0]] == b {
		delete(g.byKey, b.keys[0])
	}
	keys := b.keys
	g.mu.Unlock()
	g.exec(ctx, b, keys)
}

// runKey runs b, a statement of key, then the next one of the key while lookups keep arriving
// during each (PerKey).
func (g *Group[K, V]) runKey(key K, b *batch[K, V]) {
	for b != nil {
		g.mu.Lock()
		keys := b.keys // closed: b is no longer in byKey
		g.mu.Unlock()
		g.exec(b.ctx, b, keys)
		g.mu.Lock()
		next := g.byKey[key]
		if next == nil {
			delete(g.running, key)
		} else {
			delete(g.byKey, key)
		}
		g.mu.Unlock()
		b = next
	}
}

// exec runs the statement of b for keys and ends b.
func (g *Group[K, V]) exec(ctx context.Context, b *batch[K, V], keys []K) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	defer close(b.done)
	defer func() { // a panic here would take the process down: its waiters get an error
		if p := recover(); p != nil {
			b.vals, b.err = nil, fmt.Errorf("coalesce: panic in fetch: %v\n%s", p, debug.Stack())
		}
	}()
	if g.observe != nil {
		g.observe(g.name, len(keys)) // as asked: a key asked twice serves two callers
	}
	b.vals, b.err = g.fetch(ctx, dedupe(keys))
}

func dedupe[K comparable](keys []K) []K {
	if len(keys) < 2 {
		return keys
	}
	seen := make(map[K]struct{}, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}
