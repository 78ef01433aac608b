package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/metrics"
)

// startObserved starts an instance whose observer is the server's metrics, as app.Serve wires
// them, and returns both.
func startObserved(t *testing.T, limits api.Limits) (*instance, *metrics.Metrics) {
	t.Helper()
	url := dbtest.URL(t)
	pool, err := dbtest.Open(url) // the pool the metrics export: any will do
	require.NoError(t, err)
	t.Cleanup(func() { _ = pool.Close() })
	m := metrics.New(pool.DB, func() int { return 0 })
	return startInstanceOptions(t, url, api.Options{QueryCacheSize: 10, Limits: limits, Observer: m}), m
}

// metricValue reads one series from the metrics' exposition (labels as written there, e.g.
// `transport="sse"`); 0 when absent.
func metricValue(t *testing.T, m *metrics.Metrics, name, labels string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

func eventuallyMetric(t *testing.T, m *metrics.Metrics, name, labels string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return metricValue(t, m, name, labels) == want }, 10*time.Second, 10*time.Millisecond,
		"%s{%s}: want %v, have %v", name, labels, want, metricValue(t, m, name, labels))
}

// The subscribers of each transport go up as subscriptions start and down as they end (the
// client leaving, or completing), and each event sent to a subscriber is counted under its
// transport; a client's own close is not the server's.
func TestSubscribersByTransport(t *testing.T) {
	in, m := startObserved(t, api.Limits{})
	const subscribers, sent = "wikigraph_subscribers", "wikigraph_subscription_events_sent_total"

	ws, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	ws.subscribe("a", `subscription { userCreated { username } }`, nil)
	ws.subscribe("b", `subscription { userDeleted }`, nil)
	eventuallyMetric(t, m, subscribers, `transport="websocket"`, 2)
	assert.Equal(t, 0.0, metricValue(t, m, subscribers, `transport="sse"`))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, _ := json.Marshal(map[string]any{"query": `subscription { userCreated { username } }`})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	eventuallyMetric(t, m, subscribers, `transport="sse"`, 1)
	in.waitSubscribers(t, 3)

	in.createUser(t, "counted_once")
	assert.Equal(t, "counted_once", ws.next(5 * time.Second)["userCreated"].(map[string]any)["username"])
	for line := nextLine(lines, 5*time.Second); !strings.HasPrefix(line, "data: "); line = nextLine(lines, 5*time.Second) {
		require.NotContains(t, []string{"closed", "timeout"}, line)
	}
	eventuallyMetric(t, m, sent, `transport="websocket"`, 1)
	eventuallyMetric(t, m, sent, `transport="sse"`, 1)

	// The client completes one operation, then leaves; the SSE client leaves.
	require.NoError(t, wsjson.Write(ctx, ws.conn, map[string]any{"id": "b", "type": "complete"}))
	eventuallyMetric(t, m, subscribers, `transport="websocket"`, 1)
	_ = ws.conn.Close(websocket.StatusNormalClosure, "")
	eventuallyMetric(t, m, subscribers, `transport="websocket"`, 0)
	cancel()
	eventuallyMetric(t, m, subscribers, `transport="sse"`, 0)
	in.waitSubscribers(t, 0)
	assert.Equal(t, 0.0, metricValue(t, m, "wikigraph_websocket_closed_by_server_total", `reason="other"`))
	assert.NotContains(t, in.logs.String(), "websocket closed by the server", "the client closed it")
}

// A subscription the broker ends because events were lost is counted under its transport.
func TestDroppedSubscriptionsCounted(t *testing.T) {
	in, m := startObserved(t, api.Limits{})
	ws, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	ws.subscribe("a", `subscription { userCreated { username } }`, nil)
	in.waitSubscribers(t, 1)
	terminateListeners(t, in.db)
	assert.Equal(t, "EVENTS_DROPPED", droppedError(t, ws.read(10*time.Second), "a"))
	eventuallyMetric(t, m, "wikigraph_subscription_events_dropped_total", `transport="websocket"`, 1)
	eventuallyMetric(t, m, "wikigraph_subscribers", `transport="websocket"`, 0)
}

// Each socket the server closes is counted with its reason and logged once: no connection_init
// in time (4408), no pong to the server's ping within twice the keep-alive (the test instance's
// is 1 s: the client sees the connection drop), a message over the read limit (1009), the
// server shutting down. A missed pong is logged at info level; what a client's own message or
// silence causes (a hostile client can cause it by the thousand) and shutdowns at debug.
func TestServerClosesCountedAndLogged(t *testing.T) {
	in, m := startObserved(t, api.Limits{WebsocketInitTimeout: 300 * time.Millisecond})
	const closed = "wikigraph_websocket_closed_by_server_total"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("init timeout", func(t *testing.T) {
		conn, _, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		require.NoError(t, err)
		defer conn.CloseNow()
		_, _, err = conn.Read(ctx)
		var ce websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.StatusCode(4408), ce.Code)
		eventuallyMetric(t, m, closed, `reason="init_timeout"`, 1)
	})

	t.Run("missed pong", func(t *testing.T) {
		conn, _, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		require.NoError(t, err)
		defer conn.CloseNow()
		require.NoError(t, wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}))
		start := time.Now()
		var pings int
		for { // reads everything, answers no ping
			var msg map[string]any
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				require.NoError(t, ctx.Err(), "still open")
				break
			}
			if msg["type"] == "ping" {
				pings++
			}
		}
		assert.GreaterOrEqual(t, pings, 1)
		assert.Less(t, time.Since(start), 6*time.Second)
		eventuallyMetric(t, m, closed, `reason="missed_pong"`, 1)
		require.Eventually(t, func() bool { return strings.Contains(in.logs.String(), `"reason":"missed_pong"`) }, 5*time.Second, 10*time.Millisecond)
		line := logLine(t, in.logs.String(), "websocket closed by the server")
		assert.Equal(t, "missed_pong", line["reason"])
		assert.Equal(t, "INFO", line["level"])
		assert.Equal(t, 1006.0, line["code"])
		assert.NotEmpty(t, line["remote"])
		assert.NotEmpty(t, line["request_id"])
		assert.Contains(t, line, "open_ms")
	})

	t.Run("message too big", func(t *testing.T) {
		ws, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		big := `{"type":"subscribe","id":"a","payload":{"query":"` + strings.Repeat(" ", 1<<20) + `{ __typename }"}}`
		require.NoError(t, ws.conn.Write(ctx, websocket.MessageText, []byte(big)))
		code, _ := ws.closeCode(5 * time.Second)
		assert.Equal(t, websocket.StatusMessageTooBig, code)
		eventuallyMetric(t, m, closed, `reason="message_too_big"`, 1)
	})

	t.Run("shutdown", func(t *testing.T) {
		ws, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		ws.subscribe("a", `subscription { userCreated { username } }`, nil)
		in.waitSubscribers(t, 1)
		require.NoError(t, in.stop())
		assert.Equal(t, "closed", ws.read(5 * time.Second)["type"])
		eventuallyMetric(t, m, closed, `reason="shutdown"`, 1)
		eventuallyMetric(t, m, "wikigraph_subscribers", `transport="websocket"`, 0)
	})

	// Each close once, under its own reason only.
	for _, reason := range []string{"other", "protocol_error", "init_refused"} {
		assert.Equal(t, 0.0, metricValue(t, m, closed, `reason="`+reason+`"`), reason)
	}
	// At info level, the missed pong only.
	assert.Equal(t, 1, strings.Count(in.logs.String(), "websocket closed by the server"))
}

// logLine returns the first JSON log line with msg.
func logLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["msg"] == msg {
			return v
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}
