// Package events delivers committed changes to subscribers on every instance. PostgreSQL triggers
// NOTIFY each change from inside its transaction (see migrations); one pgdriver.Listener per
// process receives them, loads the changed rows once per batch, and fans them out to this
// process's subscribers.
//
// Delivery policy: a subscription gets every change committed after it started, in commit
// order, or it ends with an error matching ErrDropped (extensions.code EVENTS_DROPPED) once
// events it should have had are lost; it never misses events silently. Bursts lose nothing: the
// listener reads notifications as fast as they can be dispatched and PostgreSQL keeps the rest.
// Events are lost, and the subscriptions concerned end with that error, when a subscriber falls
// behind by its whole buffer, when changed rows cannot be loaded (after a few tries), when the
// LISTEN connection is lost (LISTEN/NOTIFY gives no replay; the listener connects again by
// itself), and when this instance's registration expires because renewals kept failing.
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
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wikigraph/wikigraph/internal/apperr"
	"github.com/wikigraph/wikigraph/internal/gqlscalar"
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
	// Direct is a pool of direct connections to the primary (DATABASE_DIRECT_URL), whose
	// settings the LISTEN connection is made with: LISTEN lives in its session, which a
	// transaction-mode pooler would hand to other clients between transactions. Its own
	// connections stay unused. Default: the broker's pool. Everything else (the hello and
	// ping notifications, loading changed rows, registrations) goes through the broker's pool.
	Direct *bun.DB
	Logger *slog.Logger
	// PingInterval is how long the LISTEN connection may be quiet before the listener checks it
	// (default 5s; see listen). Tests shorten it.
	PingInterval time.Duration
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
	registered time.Time  // when the last write of this instance's row began (zero: no row)

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	// live: the current LISTEN connection (number conn) is proven to listen; liveCh is closed
	// when it is. A subscription belongs to the connection it started on and ends with it.
	live   bool
	conn   uint64
	liveCh chan struct{}
	closed bool
}

type subscriber struct {
	wants   func(*notification) bool // whether a change is for it, before its row is loaded
	deliver func(*change) bool       // false: the buffer is full
	conn    uint64                   // the LISTEN connection it started on
	reason  *endReason               // nil: nobody asked why it ends
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
	if opts.Direct == nil {
		opts.Direct = db
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 5 * time.Second
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Broker{
		db: db, opts: opts, log: opts.Logger, subs: make(map[*subscriber]struct{}), listening: make(chan struct{}),
		liveCh: make(chan struct{}), instance: hex.EncodeToString(id[:]),
	}
}

// Listening is closed once the broker listens for changes.
func (b *Broker) Listening() <-chan struct{} { return b.listening }

// dropped is the error a subscription ends with when events it should have had are lost.
func dropped(why string) *apperr.Error {
	return &apperr.Error{Code: apperr.EventsDropped, Message: "events were dropped (" + why + "): subscribe again and refetch"}
}

var errNotListening = &apperr.Error{Code: apperr.Unavailable, Message: "change notifications are unavailable right now; try again shortly"}

// note is what the receiver passes to the dispatcher: a notification, or (lost != 0) the news
// that LISTEN connection number lost is gone, with whatever was sent to it meanwhile.
type note struct {
	pgdriver.Notification
	lost uint64
}

// silentPings is how many ping intervals the listener may hear nothing while no ping of its own
// could even be sent (the database, or the way to it, is gone too) before it takes its
// connection for dead.
const silentPings = 8

// maxStarvedReads bounds the last reads before a connection is taken for dead that may fail
// only because the process did not run the listener in time (then they prove nothing).
const maxStarvedReads = 3

// pingCommitted, when set (by tests), runs in the pinger between a ping's commit and its
// acknowledgement to the receive loop: a starved process is slow in between.
var pingCommitted func()

// Run listens until ctx ends, then ends every subscription. It returns nil after a clean stop.
func (b *Broker) Run(ctx context.Context) error {
	defer b.closeAll()
	notes := make(chan note, 1000)
	received := make(chan struct{})
	go func() {
		defer close(received)
		b.receive(ctx, notes)
	}()
	defer func() { <-received }()
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
				b.forgetExpired(renewCtx)
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
		case n := <-notes:
			batch := []note{n}
		drain: // take whatever else is waiting: one load for the lot
			for len(batch) < 500 {
				select {
				case n := <-notes:
					batch = append(batch, n)
				default:
					break drain
				}
			}
			b.dispatch(ctx, batch)
		}
	}
}

// receive owns the LISTEN connection. It passes every notification on, in order, and waits
// while the dispatcher is behind: PostgreSQL keeps the rest meanwhile, so a burst loses nothing
// (pgdriver's Listener.Channel drops what does not fit its buffer). What a lost connection
// misses cannot be had again: receive reports the loss, connects and listens again.
func (b *Broker) receive(ctx context.Context, out chan<- note) {
	for conn := uint64(1); ; conn++ {
		wasLive := b.listen(ctx, conn, out)
		if ctx.Err() != nil {
			return
		}
		if wasLive {
			b.mu.Lock()
			b.live = false
			b.liveCh = make(chan struct{})
			b.mu.Unlock()
			b.log.Warn("change listener lost its connection: its subscriptions end, events were dropped")
			select {
			case out <- note{lost: conn}:
			case <-ctx.Done():
				return
			}
			continue // at once: a failover or a killed backend is back already
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// listen receives on a new LISTEN connection until it fails, and reports whether it was live.
func (b *Broker) listen(ctx context.Context, conn uint64, out chan<- note) (wasLive bool) {
	ln := pgdriver.NewListener(b.opts.Direct)
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() }) // ends a Receive at shutdown
	defer func() {
		stop()
		_ = ln.Close()
	}()
	if err := ln.Listen(ctx, Channel); err != nil {
		if ctx.Err() == nil {
			b.log.Warn("listen for changes", "error", err.Error())
		}
		return false
	}
	// LISTEN takes effect asynchronously: a notification of our own coming back proves it.
	// Until then it is sent again, more and more slowly (one sent too early is lost).
	hello := fmt.Sprintf(`{"e":"hello","i":%q,"n":%d}`, b.instance, conn)
	ping := fmt.Sprintf(`{"e":"ping","i":%q,"n":%d}`, b.instance, conn)
	interval := b.opts.PingInterval
	notify := func(ctx context.Context, payload string) error {
		ctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		return pgdriver.Notify(ctx, b.db, Channel, payload)
	}
	_ = notify(ctx, hello)
	// Liveness. A quiet connection is checked with a ping: a notification to ourselves, sent
	// apart from this loop (through the pool, which may be slow to give a connection when the
	// process is busy; reading never waits for it). The connection is dead only when a ping was
	// committed and then a whole interval of reading brought nothing, not even what was already
	// there to read: whatever is read (a change, a ping, another instance's hello) is liveness,
	// and a busy process that reads late finds it waiting. A ping that cannot be sent proves
	// nothing about this connection; only silentPings intervals of hearing nothing, pings
	// failing meanwhile, count as dead (a database gone altogether). Time spent handing
	// notifications to a dispatcher that is behind is not silence. A connection cut off while
	// the pool works is found within about three intervals (15 s), one that took the database
	// with it within silentPings (40 s; the registration lapses after a minute anyway).
	pingCtx, stopPinging := context.WithCancel(ctx)
	pings := make(chan struct{}, 1)  // asks for a ping
	acked := make(chan time.Time, 1) // when the ping asked for was committed
	pinger := make(chan struct{})
	defer func() {
		stopPinging()
		<-pinger
	}()
	go func() {
		defer close(pinger)
		for {
			select {
			case <-pingCtx.Done():
				return
			case <-pings:
			}
			if notify(pingCtx, ping) == nil {
				if pingCommitted != nil {
					pingCommitted()
				}
				acked <- time.Now() // read by the loop before it asks again
			} else {
				acked <- time.Time{}
			}
		}
	}()
	var (
		lastRead  = time.Now() // the last notification read (or when listening began)
		asked     time.Time    // when the last ping was asked for
		starved   int          // last reads in a row that the process starved (see maxStarvedReads)
		committed time.Time    // when that ping was known committed (zero: not, or not yet)
		pinging   bool         // a ping is asked for and not acknowledged yet
	)
	wait := 50 * time.Millisecond
	for {
		channel, payload, err := ln.ReceiveTimeout(ctx, wait)
		if err != nil {
			if ctx.Err() != nil || !timedOut(err) {
				if ctx.Err() == nil && wasLive {
					b.log.Warn("change listener connection failed", "error", err.Error())
				}
				return wasLive
			}
			if !wasLive {
				wait = min(2*wait, time.Second)
				_ = notify(ctx, hello)
				continue
			}
			select {
			case committed = <-acked:
				pinging = false
			default:
			}
			now := time.Now()
			// Unanswered: committed, and nothing read since it was asked for. (Not "since it was
			// committed": the pinger, as starved as the rest, may learn of the commit after the
			// ping itself was read.)
			unanswered := !committed.IsZero() && lastRead.Before(asked)
			dead := unanswered && now.Sub(committed) >= interval || now.Sub(lastRead) >= silentPings*interval
			if dead {
				// What came while this goroutine waited to run is no silence: read it first.
				began := time.Now()
				if channel, payload, err = ln.ReceiveTimeout(ctx, interval/10); err != nil {
					if ctx.Err() != nil || !timedOut(err) {
						if ctx.Err() == nil {
							b.log.Warn("change listener connection failed", "error", err.Error())
						}
						return wasLive
					}
					// A read whose deadline passed before this goroutine ran again fails
					// without looking at the socket: a process that starved it that long has
					// proved nothing of the connection. A few times over, then it counts.
					if time.Since(began) > interval/2 && starved < maxStarvedReads {
						starved++
						continue
					}
					b.log.Warn("change listener connection is silent: reconnecting",
						"silent_ms", now.Sub(lastRead).Milliseconds(), "ping_unanswered", unanswered)
					return wasLive
				}
			} else {
				if !pinging && !unanswered {
					pinging, asked, committed = true, now, time.Time{}
					pings <- struct{}{}
				}
				continue
			}
		}
		lastRead, starved = time.Now(), 0
		if payload == hello && !wasLive {
			wasLive, wait = true, interval
			b.mu.Lock()
			b.live, b.conn = true, conn
			close(b.liveCh)
			b.mu.Unlock()
			select {
			case <-b.listening:
			default:
				close(b.listening)
			}
			continue
		}
		if payload == ping || payload == hello {
			continue
		}
		select {
		case out <- note{Notification: pgdriver.Notification{Channel: channel, Payload: payload}}:
		case <-ctx.Done():
			return wasLive
		}
		// Handing it over may have waited for the dispatcher: reading starts again from here.
		lastRead = time.Now()
	}
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dispatch delivers a batch in order; a lost connection in it ends the subscriptions that
// relied on it, after what came before it is delivered.
func (b *Broker) dispatch(ctx context.Context, batch []note) {
	changes := make([]*change, 0, len(batch))
	for _, n := range batch {
		if n.lost != 0 {
			b.deliver(ctx, changes)
			changes = changes[:0:0]
			b.lostConnection(n.lost)
			continue
		}
		var c change
		if n.Channel != Channel || json.Unmarshal([]byte(n.Payload), &c.notification) != nil ||
			(c.Entity != "user" && c.Entity != "item") {
			continue // another instance's hello or ping, or not ours
		}
		changes = append(changes, &c)
	}
	b.deliver(ctx, changes)
}

func (b *Broker) lostConnection(conn uint64) {
	why := dropped("the change listener lost its connection to the database")
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.conn <= conn {
			b.remove(s, why)
		}
	}
}

func (b *Broker) deliver(ctx context.Context, changes []*change) {
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: every subscription ends anyway
		}
		// Only the subscriptions these changes were for lost events.
		ended := 0
		why := dropped("the changed rows could not be loaded")
		for s := range b.subs {
			for _, c := range changes {
				if s.wants(&c.notification) {
					b.remove(s, why)
					ended++
					break
				}
			}
		}
		b.log.Error("load changed rows: the subscriptions they were for end", "error", err.Error(),
			"changes", len(changes), "subscriptions", ended)
		return
	}
	why := dropped(fmt.Sprintf("the subscriber fell %d events behind", b.opts.Buffer))
	for _, c := range changes {
		for s := range b.subs {
			if s.wants(&c.notification) && !s.deliver(c) {
				b.log.Warn("subscriber too slow: disconnected", "buffer", b.opts.Buffer)
				b.remove(s, why)
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
// quarter of its lifetime ago), so that writes committed from now on are announced. Found
// missing or expired, it ends the subscriptions there are: writes went unannounced meanwhile.
// b.regMu is held.
func (b *Broker) register(ctx context.Context) error {
	if !b.registered.IsZero() && time.Since(b.registered) < b.opts.RegistrationTTL/4 {
		return nil
	}
	lapsed, err := b.writeRegistration(ctx)
	if err != nil {
		return fmt.Errorf("register for change notifications: %w", err)
	}
	if lapsed {
		b.lapsed()
	}
	return nil
}

// writeRegistration writes this instance's row and reports whether the row it replaces (if
// any) had expired, or was about to, so that some write may have found none. b.regMu is held.
func (b *Broker) writeRegistration(ctx context.Context) (lapsed bool, err error) {
	ttl := b.opts.RegistrationTTL
	ctx, cancel := context.WithTimeout(ctx, min(5*time.Second, ttl/4)) // a late renewal is a failed one
	defer cancel()
	start := time.Now()
	var valid bool
	err = b.db.NewRaw(`WITH old AS (SELECT expires_at FROM event_listeners WHERE instance = ?0)
		INSERT INTO event_listeners (instance, expires_at) VALUES (?0, now() + ?1::interval)
		ON CONFLICT (instance) DO UPDATE SET expires_at = EXCLUDED.expires_at
		RETURNING coalesce((SELECT expires_at > clock_timestamp() + ?2::interval FROM old), false)`,
		b.instance, fmt.Sprintf("%d milliseconds", ttl.Milliseconds()),
		fmt.Sprintf("%d milliseconds", (ttl/10).Milliseconds())).Scan(ctx, &valid)
	if err != nil {
		return false, err
	}
	// The row counts until at least ttl after start (the database wrote it later).
	b.registered = start
	return !valid, nil
}

// lapsed ends every subscription: this instance's registration expired, so writes made since
// were not announced. b.regMu is held.
func (b *Broker) lapsed() {
	why := dropped("this instance's registration for change notifications expired")
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) > 0 {
		b.log.Warn("registration for change notifications expired: subscriptions end", "subscriptions", len(b.subs))
	}
	for s := range b.subs {
		b.remove(s, why)
	}
}

// renew keeps the row while there are subscribers and removes it when there are none.
func (b *Broker) renew(ctx context.Context) {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	if b.Subscribers() == 0 {
		b.unregisterLocked(ctx)
		return
	}
	lapsed, err := b.writeRegistration(ctx)
	switch {
	case err == nil && lapsed:
		b.lapsed()
	case err != nil && ctx.Err() == nil:
		b.log.Warn("renew change notifications", "error", err.Error())
		if !b.registered.IsZero() && time.Since(b.registered) >= b.opts.RegistrationTTL {
			b.lapsed() // it has expired by now
			b.registered = time.Time{}
		}
	}
}

// forgetExpired removes the rows of instances that stopped without unregistering (they
// crashed, or lost the database) once they have been expired for a lifetime.
func (b *Broker) forgetExpired(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(5*time.Second, b.opts.RegistrationTTL/4))
	defer cancel()
	_, err := b.db.NewRaw("DELETE FROM event_listeners WHERE expires_at < now() - ?::interval",
		fmt.Sprintf("%d milliseconds", b.opts.RegistrationTTL.Milliseconds())).Exec(ctx)
	if err != nil && ctx.Err() == nil {
		b.log.Warn("remove expired registrations", "error", err.Error())
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

// subscribe registers a subscriber whose stream ends with ctx (or at shutdown), or with an
// error matching ErrDropped, recorded for WithEndReason, when events it should have had were
// lost (it fell behind, its rows could not be loaded, the listener lost its connection, the
// registration expired). wants tells whether a change is for it; pick turns a loaded change
// into the value to send, or reports that there is none (the row is gone).
func subscribe[T any](b *Broker, ctx context.Context, wants func(*notification) bool, pick func(*change) (T, bool)) (<-chan T, error) {
	ch := make(chan T, b.opts.Buffer)
	s := &subscriber{wants: wants}
	s.reason, _ = ctx.Value(reasonKey{}).(*endReason)
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
	// Until the listener listens, changes would go unheard: wait for it a while.
	if err := b.awaitListening(ctx); err != nil {
		return nil, err
	}
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
	if !b.live {
		return nil, errNotListening // lost since: the subscription would hear nothing
	}
	s.conn = b.conn
	b.subs[s] = struct{}{}
	s.stop = context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.remove(s, nil)
	})
	return ch, nil
}

// awaitListening waits (five seconds at most) until the listener listens.
func (b *Broker) awaitListening(ctx context.Context) error {
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		ready, live := b.live || b.closed, b.liveCh
		b.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-live:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return errNotListening
		}
	}
}

// remove ends a subscription, with why (nil: a normal end); b.mu is held.
func (b *Broker) remove(s *subscriber, why error) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.stop()
	if why != nil && s.reason != nil {
		s.reason.set(why) // before the close: whoever sees the stream end sees why
	}
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
		b.remove(s, nil)
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
	return subscribe(b, ctx, func(n *notification) bool {
		return n.Entity == "user" && n.Kind == Created
	}, func(c *change) (*users.User, bool) { return c.user, c.user != nil })
}

// UserUpdated streams users as they are updated: every user, or the one with id.
func (b *Broker) UserUpdated(ctx context.Context, id *int64) (<-chan *users.User, error) {
	return subscribe(b, ctx, func(n *notification) bool {
		return n.Entity == "user" && n.Kind == Updated && (id == nil || *id == n.ID)
	}, func(c *change) (*users.User, bool) { return c.user, c.user != nil })
}

// UserDeleted streams the global ids of users as they are deleted.
func (b *Broker) UserDeleted(ctx context.Context) (<-chan *gqlscalar.ID, error) {
	return subscribe(b, ctx, func(n *notification) bool {
		return n.Entity == "user" && n.Kind == Deleted
	}, func(c *change) (*gqlscalar.ID, bool) { return &gqlscalar.ID{Type: gqlscalar.TypeUser, Row: c.ID}, true })
}

// ItemChanged streams changes to items: every item, or those of one owner.
func (b *Broker) ItemChanged(ctx context.Context, ownerID *int64) (<-chan *ItemEvent, error) {
	return subscribe(b, ctx, func(n *notification) bool {
		return n.Entity == "item" && (ownerID == nil || *ownerID == n.OwnerID)
	}, func(c *change) (*ItemEvent, bool) {
		return &ItemEvent{Kind: c.Kind, Item: c.item}, c.item != nil
	})
}

// Dropped is the error of a subscription that lost events, for why (EVENTS_DROPPED).
func Dropped(why string) error { return dropped(why) }
