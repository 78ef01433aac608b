package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
)

const subscribersMetric, closedMetric = "wikigraph_subscribers", "wikigraph_websocket_closed_by_server_total"

// The subscribers gauge returns to 0 whichever way a subscription ends.
func TestSubscribersGaugeBackToZero(t *testing.T) {
	in, m := startObserved(t, api.Limits{SubscriptionsPerConnection: 1, Subscriptions: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("refused per connection", func(t *testing.T) {
		ws, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		ws.subscribe("a", `subscription { userCreated { username } }`, nil)
		in.waitSubscribers(t, 1)
		ws.subscribe("b", `subscription { userDeleted }`, nil)
		msg := ws.read(5 * time.Second)
		require.Equal(t, "error", msg["type"], "%v", msg)
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 1)
		_ = ws.conn.CloseNow() // the client vanishes without a close frame
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
		in.waitSubscribers(t, 0)
	})

	t.Run("refused in total", func(t *testing.T) {
		var wss []*wsClient
		for i := 0; i < 3; i++ {
			ws, err := dial(t, in, "graphql-transport-ws", "")
			require.NoError(t, err)
			ws.subscribe("a", `subscription { userCreated { username } }`, nil)
			wss = append(wss, ws)
			if i < 2 {
				in.waitSubscribers(t, i+1) // admitted in turn: the third is the one refused
			}
		}
		msg := wss[2].read(5 * time.Second)
		require.Equal(t, "error", msg["type"], "%v", msg)
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 2)
		for _, ws := range wss {
			_ = ws.conn.Close(websocket.StatusGoingAway, "bye")
		}
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
	})

	t.Run("legacy graphql-ws stop and terminate", func(t *testing.T) {
		ws, err := dial(t, in, "graphql-ws", "")
		require.NoError(t, err)
		ws.subscribe("a", `subscription { userCreated { username } }`, nil)
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 1)
		require.NoError(t, wsjson.Write(ctx, ws.conn, map[string]any{"id": "a", "type": "stop"}))
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
		ws.subscribe("b", `subscription { userCreated { username } }`, nil)
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 1)
		require.NoError(t, wsjson.Write(ctx, ws.conn, map[string]any{"type": "connection_terminate"}))
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
	})

	t.Run("resolver error at start", func(t *testing.T) {
		ws, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		ws.subscribe("a", `subscription { userUpdated(id: "not-an-id") { id } }`, nil)
		msg := ws.read(5 * time.Second)
		t.Logf("answer: %v", msg)
		eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
		_ = ws.conn.Close(websocket.StatusNormalClosure, "")
	})

	t.Run("sse dropped", func(t *testing.T) {
		lines := sse(t, in, `subscription { userCreated { username } }`)
		eventuallyMetric(t, m, subscribersMetric, `transport="sse"`, 1)
		in.waitSubscribers(t, 1)
		terminateListeners(t, in.db)
		for line := nextLine(lines, 10*time.Second); line != "closed" && line != "timeout"; line = nextLine(lines, 10*time.Second) {
			t.Logf("sse: %s", line)
		}
		eventuallyMetric(t, m, "wikigraph_subscription_events_dropped_total", `transport="sse"`, 1)
		eventuallyMetric(t, m, subscribersMetric, `transport="sse"`, 0)
	})

	t.Run("multipart abandoned", func(t *testing.T) {
		in.waitSubscribers(t, 0)
		rctx, rcancel := context.WithCancel(context.Background())
		defer rcancel()
		body, _ := json.Marshal(map[string]any{"query": `subscription { userCreated { username } }`})
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", `multipart/mixed;deferSpec=20220824, application/json`)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Logf("multipart: %v", err)
				return
			}
			defer resp.Body.Close()
			t.Logf("multipart: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				t.Logf("multipart line: %s", sc.Text())
			}
		}()
		time.Sleep(time.Second)
		t.Logf("multipart gauge %v, broker subscribers %d", metricValue(t, m, subscribersMetric, `transport="multipart"`), in.broker.Subscribers())
		rcancel()
		eventuallyMetric(t, m, subscribersMetric, `transport="multipart"`, 0)
	})

	t.Run("plain POST subscription", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"query": `subscription { userCreated { username } }`})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			t.Logf("post: %s", sc.Text())
		}
		resp.Body.Close()
		time.Sleep(200 * time.Millisecond)
		assert.Equal(t, 0.0, metricValue(t, m, subscribersMetric, `transport=""`))
	})

	t.Run("sse at shutdown", func(t *testing.T) {
		sse(t, in, `subscription { userCreated { username } }`)
		eventuallyMetric(t, m, subscribersMetric, `transport="sse"`, 1)
		require.NoError(t, in.stop())
		eventuallyMetric(t, m, subscribersMetric, `transport="sse"`, 0)
	})
}

// Each close under its own reason (from a review: a lone surrogate and a message gqlgen cannot
// take were counted as "other").
func TestSocketCloseReasons(t *testing.T) {
	in, m := startObserved(t, api.Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("lone surrogate is invalid_utf8", func(t *testing.T) {
		ws, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		require.NoError(t, ws.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"a","payload":{"query":"{ __typename }","variables":{"x":"\udfff"}}}`)))
		code, _ := ws.closeCode(5 * time.Second)
		assert.Equal(t, websocket.StatusInvalidFramePayloadData, code)
		eventuallyMetric(t, m, closedMetric, `reason="invalid_utf8"`, 1)
		assert.Equal(t, 0.0, metricValue(t, m, closedMetric, `reason="other"`))
	})

	for _, tc := range []struct{ name, msg string }{
		{"undecodable message after ack", `not json`},
		{"unknown message type after ack", `{"type":"hello"}`},
	} {
		t.Run(tc.name+" is protocol_error", func(t *testing.T) {
			before := metricValue(t, m, closedMetric, `reason="protocol_error"`)
			other := metricValue(t, m, closedMetric, `reason="other"`)
			ws, err := dial(t, in, "graphql-transport-ws", "")
			require.NoError(t, err)
			require.NoError(t, ws.conn.Write(ctx, websocket.MessageText, []byte(tc.msg)))
			code, reason := ws.closeCode(5 * time.Second)
			t.Logf("client saw close %d %q", code, reason)
			eventuallyMetric(t, m, closedMetric, `reason="protocol_error"`, before+1)
			assert.Equal(t, other, metricValue(t, m, closedMetric, `reason="other"`))
		})
	}
}

// A hostile client gets sockets closed by the hundred: their close lines are at debug level, the
// counter is the signal (from a review: one info line per socket).
func TestClientCausedClosesLogAtDebug(t *testing.T) {
	in, _ := startObserved(t, api.Limits{})
	const n = 300
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, _, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
			if err != nil {
				return
			}
			defer conn.CloseNow()
			_ = conn.Write(ctx, websocket.MessageText, []byte{0xff}) // invalid UTF-8: closed by the server
			_, _, _ = conn.Read(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	lines := strings.Count(in.logs.String(), "websocket closed by the server")
	infos := strings.Count(in.logs.String(), `"level":"INFO","msg":"websocket closed by the server"`)
	access := strings.Count(in.logs.String(), `"msg":"http"`)
	t.Logf("%d sockets closed in %v: %d close log lines, %d at info; %d access-log lines", n, elapsed, lines, infos, access)
	assert.Zero(t, infos, "an info line per hostile connection")
}

// At shutdown, a socket still waiting for its connection_init is closed at once and counted as
// a shutdown, from a review: it stayed open until its init timeout, counted as one.
func TestShutdownClosesSocketsBeforeInit(t *testing.T) {
	// An init timeout far beyond the test's: only the shutdown can close the socket in time.
	in, m := startObserved(t, api.Limits{WebsocketInitTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	defer conn.CloseNow()
	// Also many sockets with a subscription each: all shutdown.
	var wss []*wsClient
	for i := 0; i < 10; i++ {
		ws, err := dial(t, in, "graphql-transport-ws", "")
		require.NoError(t, err)
		ws.subscribe("a", `subscription { userCreated { username } }`, nil)
		wss = append(wss, ws)
	}
	in.waitSubscribers(t, 10)
	require.NoError(t, in.stop())
	_, _, err = conn.Read(ctx)
	require.NoError(t, ctx.Err(), "the socket without init stayed open past shutdown")
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
	eventuallyMetric(t, m, closedMetric, `reason="shutdown"`, 11)
	assert.Equal(t, 0.0, metricValue(t, m, closedMetric, `reason="init_timeout"`))
}

// An answer with errors and no data is not an event sent.
func TestErrorsAreNotEventsSent(t *testing.T) {
	in, m := startObserved(t, api.Limits{})
	ws, err := dial(t, in, "graphql-transport-ws", "")
	require.NoError(t, err)
	ws.subscribe("a", `subscription { userUpdated(id: "not-an-id") { id } }`, nil)
	msg := ws.read(5 * time.Second)
	t.Logf("answer: %v", msg)
	eventuallyMetric(t, m, subscribersMetric, `transport="websocket"`, 0)
	assert.Equal(t, 0.0, metricValue(t, m, "wikigraph_subscription_events_sent_total", `transport="websocket"`))
}

// A connection_init whose payload is not an object ends gqlgen's handling without a close: the
// socket is closed (4400) and counted as a protocol error, from a review: it stayed open, unread,
// for ever (any client could hold file descriptors so).
func TestInitPayloadNotAnObjectClosesTheSocket(t *testing.T) {
	in, m := startObserved(t, api.Limits{WebsocketInitTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+in.base+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	defer conn.CloseNow()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init","payload":"x"}`)))
	rctx, rcancel := context.WithTimeout(ctx, 4*time.Second)
	defer rcancel()
	_, _, err = conn.Read(rctx)
	require.NoError(t, rctx.Err(), "the socket was left open: neither closed nor counted")
	assert.Equal(t, websocket.StatusCode(4400), websocket.CloseStatus(err), "%v", err)
	eventuallyMetric(t, m, closedMetric, `reason="protocol_error"`, 1)
	assert.Equal(t, 0.0, metricValue(t, m, closedMetric, `reason="init_timeout"`))
}

// A subscription sent over plain POST (refused BAD_REQUEST) counts as no subscriber, from a
// review: it made a series with transport="".
func TestPostSubscriptionCountsNoTransport(t *testing.T) {
	in, m := startObserved(t, api.Limits{})
	body, _ := json.Marshal(map[string]any{"query": `subscription { userCreated { username } }`})
	req, _ := http.NewRequest(http.MethodPost, "http://"+in.base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "wikigraph_subscribers") {
			t.Log(line)
		}
	}
	assert.False(t, strings.Contains(rec.Body.String(), `wikigraph_subscribers{transport=""}`), "a series with transport=\"\"")
}
