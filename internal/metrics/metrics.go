// Package metrics exposes the server's Prometheus metrics: GraphQL operations by type, name and
// outcome with their latency, errors by code, in-flight HTTP requests, live subscriptions, the
// connection pool, the Go runtime and the build.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/database"
)

// maxNames bounds the operation-name label: names are chosen by clients.
const maxNames = 200

// Metrics holds the collectors; its methods are safe for concurrent use.
type Metrics struct {
	registry   *prometheus.Registry
	operations *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	inFlight   prometheus.Gauge
	statements prometheus.Counter
	lookups    *prometheus.CounterVec
	lookupKeys *prometheus.CounterVec
	tokenWait  *prometheus.HistogramVec
	// Subscriptions by transport, and the websockets the server closed by reason.
	subscribers   *prometheus.GaugeVec
	eventsSent    *prometheus.CounterVec
	eventsDropped *prometheus.CounterVec
	socketsClosed *prometheus.CounterVec
	// The series of each transport, bound once (an event sent is counted per subscriber).
	sentBy        map[string]prometheus.Counter
	subscribersBy map[string]prometheus.Gauge

	mu    sync.Mutex
	names map[string]bool
}

// New registers the collectors. db is the pool whose statistics are exported; subscriptions
// counts the live subscriptions.
func New(db *sql.DB, subscriptions func() int) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_graphql_operations_total",
			Help: "GraphQL operations by type, name and outcome (ok or the first error's code).",
		}, []string{"type", "name", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wikigraph_graphql_operation_duration_seconds",
			Help:    "Time to answer a GraphQL query or mutation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"type", "name"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_graphql_errors_total",
			Help: "GraphQL errors sent to clients, by extensions.code.",
		}, []string{"code"}),
		tokenWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wikigraph_db_token_wait_seconds",
			Help: "Time a query with a Consistency-Token no replica was known to have replayed spent finding where to read " +
				"(asking the replicas, waiting up to REPLICA_TOKEN_WAIT), by where it read.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"served"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wikigraph_http_requests_in_flight",
			Help: "HTTP requests being served (open streams included).",
		}),
		statements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wikigraph_db_statements_total",
			Help: "SQL statements sent through the pool.",
		}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_db_lookup_statements_total",
			Help: "Statements of the coalesced lookups (users by id, pages of users).",
		}, []string{"lookup"}),
		lookupKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_db_lookup_keys_total",
			Help: "Keys asked for by the callers of those statements (twice when two asked): keys/statements is how many lookups share one.",
		}, []string{"lookup"}),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wikigraph_subscribers",
			Help: "Subscriptions open on this instance, by transport (websocket, sse, multipart).",
		}, []string{"transport"}),
		eventsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_subscription_events_sent_total",
			Help: "Subscription events resolved and handed to a subscriber's transport, by transport.",
		}, []string{"transport"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_subscription_events_dropped_total",
			Help: "Subscriptions ended with EVENTS_DROPPED because events they should have had were lost, by transport.",
		}, []string{"transport"}),
		socketsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wikigraph_websocket_closed_by_server_total",
			Help: "Websockets the server closed (not the client), by reason: missed_pong, init_timeout, init_refused, " +
				"duplicate_id, invalid_utf8, message_too_big, protocol_error, shutdown, other.",
		}, []string{"reason"}),
		names: make(map[string]bool),
	}
	m.sentBy, m.subscribersBy = map[string]prometheus.Counter{}, map[string]prometheus.Gauge{}
	for _, t := range []string{"websocket", "sse", "multipart"} { // shown at 0 before the first
		m.subscribersBy[t] = m.subscribers.WithLabelValues(t)
		m.sentBy[t] = m.eventsSent.WithLabelValues(t)
		m.eventsDropped.WithLabelValues(t)
	}
	m.registry.MustRegister(
		m.operations, m.latency, m.errors, m.inFlight, m.statements, m.lookups, m.lookupKeys,
		m.subscribers, m.eventsSent, m.eventsDropped, m.socketsClosed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wikigraph_subscriptions_active",
			Help: "Live subscriptions the change broker holds on this instance: one per group of identical subscriptions (wikigraph_subscribers counts their subscribers).",
		}, func() float64 { return float64(subscriptions()) }),
		collectors.NewDBStatsCollector(db, "wikigraph"),
		collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Fanout shows the events waiting to be sent to subscribers: their sum, and the longest queue
// of one subscriber (at SUBSCRIPTION_BUFFER it ends with EVENTS_DROPPED).
func (m *Metrics) Fanout(queued func() (total, longest int), listening func() int) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wikigraph_subscribers_listening",
			Help: "Subscribers whose subscription listens: every change committed from now on reaches them.",
		}, func() float64 { return float64(listening()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wikigraph_subscription_send_queue",
			Help: "Events waiting to be sent, summed over every subscriber on this instance.",
		}, func() float64 { t, _ := queued(); return float64(t) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wikigraph_subscription_send_queue_longest",
			Help: "Events waiting to be sent to the subscriber furthest behind on this instance.",
		}, func() float64 { _, l := queued(); return float64(l) }),
	)
}

// Clients shows how many clients have a live budget (busy now, or spent lately), and the
// refusals for cost: RATE_LIMITED in wikigraph_graphql_errors_total.
func (m *Metrics) Clients(tracked func() int) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wikigraph_clients_tracked",
		Help: "Clients (token subjects, else addresses) with a live budget on this instance.",
	}, func() float64 { return float64(tracked()) }))
}

// Lookup counts one coalesced lookup statement of keys keys (coalesce.Options.Observe).
func (m *Metrics) Lookup(name string, keys int) {
	m.lookups.WithLabelValues(name).Inc()
	m.lookupKeys.WithLabelValues(name).Add(float64(keys))
}

// BeforeQuery implements bun.QueryHook.
func (m *Metrics) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook: it counts the statement.
func (m *Metrics) AfterQuery(context.Context, *bun.QueryEvent) { m.statements.Inc() }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// InFlight counts the requests next is serving.
func (m *Metrics) InFlight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		next.ServeHTTP(w, r)
	})
}

// Operation records one answered operation.
func (m *Metrics) Operation(typ, name, outcome string, d time.Duration) {
	name = m.label(name)
	m.operations.WithLabelValues(typ, name, outcome).Inc()
	m.latency.WithLabelValues(typ, name).Observe(d.Seconds())
}

// Error records one error sent to a client.
func (m *Metrics) Error(code string) { m.errors.WithLabelValues(code).Inc() }

// Subscribers moves the subscribers of a transport by delta (api.StreamObserver).
func (m *Metrics) Subscribers(transport string, delta int) {
	g, ok := m.subscribersBy[transport]
	if !ok {
		g = m.subscribers.WithLabelValues(transport)
	}
	g.Add(float64(delta))
}

// EventSent counts one event sent to a subscriber (api.StreamObserver).
func (m *Metrics) EventSent(transport string) {
	c, ok := m.sentBy[transport]
	if !ok {
		c = m.eventsSent.WithLabelValues(transport)
	}
	c.Inc()
}

// EventsDropped counts one subscription ended because it lost events (api.StreamObserver).
func (m *Metrics) EventsDropped(transport string) { m.eventsDropped.WithLabelValues(transport).Inc() }

// SocketClosed counts one websocket the server closed, by why (api.StreamObserver).
func (m *Metrics) SocketClosed(reason string) { m.socketsClosed.WithLabelValues(reason).Inc() }

func (m *Metrics) label(name string) string {
	if name == "" {
		return "anonymous"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.names[name] {
		if len(m.names) >= maxNames {
			return "other"
		}
		m.names[name] = true
	}
	return name
}

// Replicas shows each replica's health and the reads routed to each target: the primary
// (target="primary") and every replica (by host:port).
func (m *Metrics) Replicas(rt *database.Router) {
	m.registry.MustRegister(replicaCollector{rt}, m.tokenWait)
}

// TokenWait records a read with a token that had to ask the replicas (database.RouterOptions.Waited).
func (m *Metrics) TokenWait(d time.Duration, replica bool) {
	served := "primary"
	if replica {
		served = "replica"
	}
	m.tokenWait.WithLabelValues(served).Observe(d.Seconds())
}

var (
	replicaLag = prometheus.NewDesc("wikigraph_db_replica_lag_seconds",
		"A replica's lag behind the primary at its last health check.", []string{"replica"}, nil)
	replicaUp = prometheus.NewDesc("wikigraph_db_replica_in_rotation",
		"1 while queries read from the replica; 0 while it is down, not a standby, or lags over REPLICA_MAX_LAG.", []string{"replica"}, nil)
	targetReads = prometheus.NewDesc("wikigraph_db_reads_total",
		"Queries by the server they read from.", []string{"target"}, nil)
)

type replicaCollector struct{ rt *database.Router }

func (c replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- replicaLag
	ch <- replicaUp
	ch <- targetReads
}

func (c replicaCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(targetReads, prometheus.CounterValue, float64(c.rt.PrimaryReads()), "primary")
	for _, r := range c.rt.Replicas() {
		up := 0.0
		if r.InRotation() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(replicaLag, prometheus.GaugeValue, r.Lag().Seconds(), r.Name)
		ch <- prometheus.MustNewConstMetric(replicaUp, prometheus.GaugeValue, up, r.Name)
		ch <- prometheus.MustNewConstMetric(targetReads, prometheus.CounterValue, float64(r.Reads()), r.Name)
	}
}
