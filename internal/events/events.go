// Package events delivers committed changes to subscribers on every instance. PostgreSQL triggers
// NOTIFY each change from inside its transaction (see migrations); one pgdriver.Listener per
// process receives them, loads the changed rows once per batch, and fans them out to this
// process's subscribers.
//
// Delivery policy: each subscriber has a bounded buffer. A subscriber that falls behind so far
// that its buffer is full is disconnected (its stream ends; the client may subscribe again) rather
// than silently missing events or slowing everyone else down. Notifications sent while this
// process is not connected to PostgreSQL (a database restart) are lost, as LISTEN/NOTIFY gives no
// replay; the listener reconnects and listens again by itself.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/users"
)

// Channel is the PostgreSQL notification channel the triggers use.
const Channel = "wikigraph_events"

// ChangeKind is the GraphQL enum ChangeKind.
type ChangeKind string

// The kinds of change.
const (
	Created ChangeKind = "CREATED"
	Updated ChangeKind = "UPDATED"
	Deleted ChangeKind = "DELETED"
)

// UnmarshalGQL implements graphql.Unmarshaler.
func (k *ChangeKind) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	switch ChangeKind(s) {
	case Created, Updated, Deleted:
		*k = ChangeKind(s)
		return nil
	}
	return apperr.Invalid("kind", "must be CREATED, UPDATED or DELETED")
}

// MarshalGQL implements graphql.Marshaler.
func (k ChangeKind) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(k))) }

// ItemEvent is a change to an item, with the item as it is now (as it was, when deleted).
type ItemEvent struct {
	Kind ChangeKind  `json:"kind"`
	Item *items.Item `json:"item"`
}

// notification is a trigger's payload.
type notification struct {
	Entity  string     `json:"e"`
	Kind    ChangeKind `json:"k"`
	ID      int64      `json:"id"`
	OwnerID int64      `json:"o"`
}

// change is a notification with its row loaded.
type change struct {
	notification
	user *users.User
	item *items.Item
}

// Options configure a Broker.
type Options struct {
	// Buffer is how many undelivered events a subscriber may have before it is disconnected.
	Buffer int
	// KeepDeleted is how long deleted rows stay loadable for DELETED events.
	KeepDeleted time.Duration
	// RegistrationTTL is how long this instance's event_listeners row counts without renewal
	// (default a minute); it is renewed every quarter of that while there are subscribers.
	RegistrationTTL time.Duration
	Logger          *slog.Logger
}

// ErrDropped matches the error a subscription ends with when events it should have had were
// lost: the client should subscribe again and refetch what it shows.
var ErrDropped = &apperr.Error{Code: apperr.EventsDropped}

type reasonKey struct{}

type endReason struct {
	mu  sync.Mutex
	err error
}

func (r *endReason) set(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *endReason) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// WithEndReason returns a context to subscribe with and a function that tells, once the
// subscription's stream is closed, why it ended: nil for a normal end (its context ended, or
// the server is shutting down), or an error matching ErrDropped when events were lost.
func WithEndReason(ctx context.Context) (context.Context, func() error) {
	r := &endReason{}
	return context.WithValue(ctx, reasonKey{}, r), r.get
}

// Broker receives this database's change notifications and delivers them to subscribers.
type Broker struct {
	db   *bun.DB
	opts Options
	log  *slog.Logger

	listening chan struct{} // closed once LISTEN first succeeded

	// The triggers announce changes only while some instance has a row in event_listeners:
	// this one keeps its row while it has subscribers (see register).
	instance   string
	regMu      sync.Mutex // held across a registration and the subscription it is for
	registered time.Time  // when this instance's row was last written (zero: no row)

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	deliver func(*change) bool // false: the buffer is full
	close   func()
	stop    func() bool // unregisters the context watch
}

// New returns a broker; Run makes it deliver.
func New(db *bun.DB, opts Options) *Broker {
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	if opts.KeepDeleted <= 0 {
		opts.KeepDeleted = 10 * time.Minute
	}
	if opts.RegistrationTTL <= 0 {
		opts.RegistrationTTL = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Broker{
		db: db, opts: opts, log: opts.Logger, subs: make(map[*subscriber]struct{}), listening: make(chan struct{}),
		instance: hex.EncodeToString(id[:]),
	}
}

// Listening is closed once the broker listens for changes.
func (b *Broker) Listening() <-chan struct{} { return b.listening }

// Run listens until ctx ends, then ends every subscription. It returns nil after a clean stop.
func (b *Broker) Run(ctx context.Context) error {
	defer b.closeAll()
	ln := pgdriver.NewListener(b.db)
	defer func() { _ = ln.Close() }()
	if err := ln.Listen(ctx, Channel); err != nil {
		// Not fatal: the listener connects (and listens) again on its own once the database is back.
		if ctx.Err() == nil {
			b.log.Warn("listen for changes", "error", err.Error())
		}
	}
	// LISTEN takes effect asynchronously: a notification of our own coming back proves it.
	hello := fmt.Sprintf(`{"e":"hello","id":%d}`, time.Now().UnixNano())
	heard := sync.OnceFunc(func() { close(b.listening) })
	go func() { // until it comes back: a hello sent before LISTEN took effect is lost
		for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			_ = pgdriver.Notify(ctx, b.db, Channel, hello)
			select {
			case <-b.listening:
				return
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	notes := ln.Channel(pgdriver.WithChannelSize(10000), pgdriver.WithChannelOverflowHandler(func(pgdriver.Notification) {
		b.log.Error("change notifications overflowed the listener buffer; events were lost")
	}))
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	renewed := make(chan struct{})
	renewCtx, stopRenewing := context.WithCancel(ctx)
	go func() { // apart from this loop: a slow database must not hold up the dispatch
		defer close(renewed)
		renew := time.NewTicker(b.opts.RegistrationTTL / 4)
		defer renew.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-renew.C:
				b.renew(renewCtx)
			}
		}
	}()
	defer func() {
		stopRenewing()
		<-renewed
		b.closing() // no new registration from here on
		b.unregister(context.WithoutCancel(ctx))
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-prune.C:
			b.prune(ctx)
		case n, ok := <-notes:
			if !ok {
				return errors.New("change listener closed")
			}
			batch := []pgdriver.Notification{n}
		drain: // take whatever else is waiting: one load for the lot
			for len(batch) < 500 {
				select {
				case n, ok := <-notes:
					if !ok {
						break drain
					}
					batch = append(batch, n)
				default:
					break drain
				}
			}
			for _, n := range batch {
				if n.Payload == hello {
					heard()
				}
			}
			b.dispatch(ctx, batch)
		}
	}
}

func (b *Broker) dispatch(ctx context.Context, batch []pgdriver.Notification) {
	changes := make([]*change, 0, len(batch))
	for _, n := range batch {
		var c change
		if n.Channel != Channel || json.Unmarshal([]byte(n.Payload), &c.notification) != nil ||
			(c.Entity != "user" && c.Entity != "item") {
			continue // another instance's hello, or not ours
		}
		changes = append(changes, &c)
	}
	if len(changes) == 0 || b.Subscribers() == 0 {
		return // nobody to tell: do not load the rows (every write would cost a query)
	}
	// A short database fault should not lose what was already received: try a few times.
	var err error
	for wait := 100 * time.Millisecond; ; wait *= 4 {
		if err = load(ctx, b.db, changes); err == nil || wait > 2*time.Second || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if err != nil {
		b.log.Error("load changed rows: events lost", "error", err.Error(), "lost", len(changes))
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range changes {
		for s := range b.subs {
			if !s.deliver(c) {
				b.log.Warn("subscriber too slow: disconnected", "buffer", b.opts.Buffer)
				b.remove(s)
			}
		}
	}
}

// load fetches the rows of a batch of changes: one query per kind of row.
func load(ctx context.Context, db bun.IDB, changes []*change) error {
	var userIDs, itemIDs, goneUsers, goneItems []int64
	for _, c := range changes {
		switch {
		case c.Entity == "user" && c.Kind == Deleted:
			goneUsers = append(goneUsers, c.ID)
		case c.Entity == "user":
			userIDs = append(userIDs, c.ID)
		case c.Kind == Deleted:
			goneItems = append(goneItems, c.ID)
		default:
			itemIDs = append(itemIDs, c.ID)
		}
	}
	var (
		us, gus map[int64]*users.User
		is, gis map[int64]*items.Item
		err     error
	)
	if len(userIDs) > 0 {
		if us, err = users.FindMany(ctx, db, userIDs); err != nil {
			return err
		}
	}
	if len(itemIDs) > 0 {
		if is, err = items.FindMany(ctx, db, itemIDs); err != nil {
			return err
		}
	}
	if len(goneUsers) > 0 {
		if gus, err = DeletedUsers(ctx, db, goneUsers); err != nil {
			return err
		}
	}
	if len(goneItems) > 0 {
		if gis, err = deletedItems(ctx, db, goneItems); err != nil {
			return err
		}
	}
	for _, c := range changes {
		switch {
		case c.Entity == "user" && c.Kind == Deleted:
			c.user = gus[c.ID]
		case c.Entity == "user":
			c.user = us[c.ID] // nil when deleted since: nothing to send
		case c.Kind == Deleted:
			c.item = gis[c.ID]
		default:
			c.item = is[c.ID]
		}
	}
	return nil
}

// DeletedUsers returns users deleted lately, as they were, by id.
func DeletedUsers(ctx context.Context, db bun.IDB, ids []int64) (map[int64]*users.User, error) {
	return deletedRows[users.User](ctx, db, "user", ids, func(u *users.User) int64 { return u.ID })
}

func deletedItems(ctx context.Context, db bun.IDB, ids []int64) (map[int64]*items.Item, error) {
	return deletedRows[items.Item](ctx, db, "item", ids, func(it *items.Item) int64 { return it.ID })
}

func deletedRows[T any](ctx context.Context, db bun.IDB, entity string, ids []int64, id func(*T) int64) (map[int64]*T, error) {
	var rows []json.RawMessage
	err := db.NewRaw("SELECT snapshot FROM deleted_rows WHERE entity = ? AND id = ANY(?::bigint[])", entity, pgdialect.Array(ids)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("load deleted %ss: %w", entity, err)
	}
	out := make(map[int64]*T, len(rows))
	for _, raw := range rows {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("decode deleted %s: %w", entity, err)
		}
		out[id(v)] = v
	}
	return out, nil
}

func (b *Broker) prune(ctx context.Context) {
	if err := Prune(ctx, b.db, b.opts.KeepDeleted); err != nil && ctx.Err() == nil {
		b.log.Warn("prune deleted rows", "error", err.Error())
	}
}

// Prune forgets rows deleted longer ago than keep.
func Prune(ctx context.Context, db bun.IDB, keep time.Duration) error {
	_, err := db.NewRaw("DELETE FROM deleted_rows WHERE deleted_at < now() - ?::interval",
		fmt.Sprintf("%d seconds", int(keep.Seconds()))).Exec(ctx)
	return err
}

// register makes sure this instance's row in event_listeners is there (written less than a
// quarter of its lifetime ago), so that writes committed from now on are announced. b.regMu is
// held.
func (b *Broker) register(ctx context.Context) error {
	if !b.registered.IsZero() && time.Since(b.registered) < b.opts.RegistrationTTL/4 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := b.db.NewRaw(`INSERT INTO event_listeners (instance, expires_at) VALUES (?, now() + ?::interval)
		ON CONFLICT (instance) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
		b.instance, fmt.Sprintf("%d milliseconds", b.opts.RegistrationTTL.Milliseconds())).Exec(ctx)
	if err != nil {
		return fmt.Errorf("register for change notifications: %w", err)
	}
	b.registered = time.Now()
	return nil
}

// renew keeps the row while there are subscribers and removes it when there are none.
func (b *Broker) renew(ctx context.Context) {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	if b.Subscribers() == 0 {
		b.unregisterLocked(ctx)
		return
	}
	b.registered = time.Time{} // write it again now
	if err := b.register(ctx); err != nil && ctx.Err() == nil {
		b.log.Warn("renew change notifications", "error", err.Error())
	}
}

func (b *Broker) unregister(ctx context.Context) {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	b.unregisterLocked(ctx)
}

func (b *Broker) unregisterLocked(ctx context.Context) {
	if b.registered.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.db.NewRaw("DELETE FROM event_listeners WHERE instance = ?", b.instance).Exec(ctx); err != nil {
		b.log.Warn("unregister from change notifications (the row expires by itself)", "error", err.Error())
	}
	b.registered = time.Time{}
}

// subscribe registers a subscriber whose stream ends with ctx (or when it falls behind, or at
// shutdown). pick turns a change into the value to send, or reports that it is not wanted.
func subscribe[T any](b *Broker, ctx context.Context, pick func(*change) (T, bool)) (<-chan T, error) {
	ch := make(chan T, b.opts.Buffer)
	s := &subscriber{}
	s.deliver = func(c *change) bool {
		v, ok := pick(c)
		if !ok {
			return true
		}
		select {
		case ch <- v:
			return true
		default:
			return false
		}
	}
	s.close = func() { close(ch) }
	// Registered before the subscription counts, so every write made after it returns is
	// announced (the trigger looks when the row is written: a transaction that wrote before and
	// commits after may go unannounced, like any change racing a new subscription); renew cannot
	// remove the row in between (it holds regMu too). With the database down, subscribing fails.
	b.regMu.Lock()
	defer b.regMu.Unlock()
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("shutting down")
	}
	if err := b.register(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("shutting down")
	}
	b.subs[s] = struct{}{}
	s.stop = context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.remove(s)
	})
	return ch, nil
}

// remove ends a subscription; b.mu is held.
func (b *Broker) remove(s *subscriber) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.stop()
	s.close()
}

// closing refuses new subscriptions (and so new registrations); closeAll ends the others.
func (b *Broker) closing() {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
}

func (b *Broker) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.remove(s)
	}
}

// Subscribers counts the live subscriptions.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// UserCreated streams users as they are created.
func (b *Broker) UserCreated(ctx context.Context) (<-chan *users.User, error) {
	return subscribe(b, ctx, func(c *change) (*users.User, bool) {
		return c.user, c.Entity == "user" && c.Kind == Created && c.user != nil
	})
}

// UserUpdated streams users as they are updated: every user, or the one with id.
func (b *Broker) UserUpdated(ctx context.Context, id *int64) (<-chan *users.User, error) {
	return subscribe(b, ctx, func(c *change) (*users.User, bool) {
		return c.user, c.Entity == "user" && c.Kind == Updated && c.user != nil && (id == nil || *id == c.ID)
	})
}

// UserDeleted streams the ids of users as they are deleted.
func (b *Broker) UserDeleted(ctx context.Context) (<-chan int64, error) {
	return subscribe(b, ctx, func(c *change) (int64, bool) {
		return c.ID, c.Entity == "user" && c.Kind == Deleted
	})
}

// ItemChanged streams changes to items: every item, or those of one owner.
func (b *Broker) ItemChanged(ctx context.Context, ownerID *int64) (<-chan *ItemEvent, error) {
	return subscribe(b, ctx, func(c *change) (*ItemEvent, bool) {
		if c.Entity != "item" || c.item == nil || (ownerID != nil && *ownerID != c.OwnerID) {
			return nil, false
		}
		return &ItemEvent{Kind: c.Kind, Item: c.item}, true
	})
}
