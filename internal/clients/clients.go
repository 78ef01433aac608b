// Package clients tells the clients of the API apart and keeps each one's budget, so that one
// client flooding costly operations cannot starve the others: how many of its operations execute
// at once (the rest wait their turn, as for the server-wide limit) and how much query cost it may
// spend per second (over it an operation is refused with RATE_LIMITED and when to come back).
//
// A client is the user a valid bearer token names, else the remote address.
package clients

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/wikigraph/wikigraph/internal/auth"
)

type addrKey struct{}

// WithAddr returns ctx knowing the request's remote address (host:port or host).
func WithAddr(ctx context.Context, remoteAddr string) context.Context {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	// One IPv6 host may have a whole /64 of addresses: they are one client.
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return context.WithValue(ctx, addrKey{}, host)
}

// Key names ctx's client: "user:ID" for a valid token, else "ip:ADDR", else "".
func Key(ctx context.Context) string {
	if id, ok, err := auth.Me(ctx); err == nil && ok {
		return fmt.Sprintf("user:%d", id)
	}
	if host, _ := ctx.Value(addrKey{}).(string); host != "" {
		return "ip:" + host
	}
	return ""
}

// Options are a client's budget; zero values mean no bound.
type Options struct {
	// Concurrent is how many of a client's operations execute at once.
	Concurrent int
	// CostPerSecond is the query cost (complexity) a client may spend per second, on average.
	CostPerSecond int
	// Burst is how much cost a client that has been idle may spend at once (default twice
	// CostPerSecond, and at least the largest cost one operation may have).
	Burst int
}

// Budgets are the budgets of every client.
type Budgets struct {
	opts   Options
	mu     sync.Mutex
	m      map[string]*client
	admits int
}

type client struct {
	slots  chan struct{} // nil: no bound on concurrency
	tokens float64
	last   time.Time
	users  int // operations holding or waiting for a slot, or admitted and not yet released
}

// New returns empty budgets.
func New(opts Options) *Budgets {
	if opts.Burst <= 0 {
		opts.Burst = 2 * opts.CostPerSecond
	}
	return &Budgets{opts: opts, m: make(map[string]*client)}
}

// RateLimitedError is an operation refused because its client spent its cost budget.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("this client spent its query cost budget; retry in %s", e.RetryAfter)
}

// Seconds is RetryAfter rounded up to whole seconds, at least 1 (the Retry-After header's unit).
func (e *RateLimitedError) Seconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Admit charges key's budget cost and waits for one of its slots (within ctx). It returns the
// function that gives the slot back, or a *RateLimitedError, or ctx's error. An empty key (no
// way to tell the client) is not bounded.
func (b *Budgets) Admit(ctx context.Context, key string, cost int) (release func(), err error) {
	if b == nil || key == "" || (b.opts.Concurrent <= 0 && b.opts.CostPerSecond <= 0) {
		return func() {}, nil
	}
	now := time.Now()
	b.mu.Lock()
	if b.admits++; b.admits%1024 == 0 {
		b.sweepLocked() // the map holds only clients that are busy or were lately
	}
	c := b.m[key]
	if c == nil {
		c = &client{tokens: float64(b.opts.Burst), last: now}
		if b.opts.Concurrent > 0 {
			c.slots = make(chan struct{}, b.opts.Concurrent)
		}
		b.m[key] = c
	}
	if rate := float64(b.opts.CostPerSecond); rate > 0 {
		c.tokens = min(float64(b.opts.Burst), c.tokens+now.Sub(c.last).Seconds()*rate)
		c.last = now
		if need := float64(min(cost, b.opts.Burst)); c.tokens < need {
			wait := time.Duration((need - c.tokens) / rate * float64(time.Second))
			b.forgetLocked(key, c)
			b.mu.Unlock()
			return nil, &RateLimitedError{RetryAfter: wait}
		}
		c.tokens -= float64(min(cost, b.opts.Burst))
	}
	c.users++
	b.mu.Unlock()

	done := func() {
		b.mu.Lock()
		c.users--
		b.forgetLocked(key, c)
		b.mu.Unlock()
	}
	if c.slots == nil {
		return done, nil
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-c.slots
			done()
		})
	}, nil
}

// forgetLocked drops a client that holds nothing and whose bucket is full again: the map holds
// only clients that are busy or were lately.
func (b *Budgets) forgetLocked(key string, c *client) {
	if c.users > 0 {
		return
	}
	if rate := float64(b.opts.CostPerSecond); rate > 0 {
		refilled := c.tokens + time.Since(c.last).Seconds()*rate
		if refilled < float64(b.opts.Burst) {
			return // still owes: keep its debt; swept once it has refilled
		}
	}
	delete(b.m, key)
}

// sweepLocked forgets every client whose bucket is full again and that holds nothing, so the
// map does not grow with every address ever seen.
func (b *Budgets) sweepLocked() {
	for key, c := range b.m {
		b.forgetLocked(key, c)
	}
}

// Len is how many clients are tracked (metrics).
func (b *Budgets) Len() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// Hint is what the HTTP layer of an answer says besides its body: a status and Retry-After.
type Hint struct {
	mu         sync.Mutex
	status     int
	retryAfter int
}

type hintKey struct{}

// WithHint returns ctx carrying a fresh hint for its answer.
func WithHint(ctx context.Context) (context.Context, *Hint) {
	h := &Hint{}
	return context.WithValue(ctx, hintKey{}, h), h
}

// SetHint asks ctx's answer, if it is an HTTP one not yet written, for status and Retry-After.
func SetHint(ctx context.Context, status, retryAfter int) {
	if h, ok := ctx.Value(hintKey{}).(*Hint); ok {
		h.mu.Lock()
		h.status, h.retryAfter = status, retryAfter
		h.mu.Unlock()
	}
}

// Get returns the hinted status (0: none) and Retry-After seconds.
func (h *Hint) Get() (status, retryAfter int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, h.retryAfter
}
