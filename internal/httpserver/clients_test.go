package httpserver_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/clients"
	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// from returns an HTTP client whose connections come from the loopback address ip, so the
// server tells it apart from clients on 127.0.0.1.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func postAs(c *http.Client, in *instance, query string) (*http.Response, gqlBody, error) {
	var out gqlBody
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := c.Post("http://"+in.base+"/query", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return nil, out, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out, err
}

// A client over its cost budget is refused at once with RATE_LIMITED, HTTP 429 and Retry-After;
// another client is not.
func TestClientCostBudget(t *testing.T) {
	in := startInstanceOptions(t, dbtest.URL(t), api.Options{
		// users(limit: 100) { id } costs 101: the burst pays for one, refilling takes a minute.
		Clients: clients.New(clients.Options{CostPerSecond: 1, Burst: 150}),
	})
	const costly = `{ users(limit: 100) { id } }`
	a := from("127.0.0.1")
	resp, got, err := postAs(a, in, costly)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, got.Errors)

	resp, got, err = postAs(a, in, costly)
	require.NoError(t, err)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Len(t, got.Errors, 1)
	ext, _ := got.Errors[0]["extensions"].(map[string]any)
	assert.Equal(t, "RATE_LIMITED", ext["code"])
	assert.Equal(t, resp.Header.Get("Retry-After"), fmt.Sprint(ext["retryAfter"]))
	assert.GreaterOrEqual(t, ext["retryAfter"], float64(40), "the bucket refills at 1/s")

	// Under application/graphql-response+json too: 429, Retry-After, no data.
	req, _ := http.NewRequest(http.MethodPost, "http://"+in.base+"/query", strings.NewReader(`{"query":"`+costly+`"}`))
	req.Header.Set("Content-Type", "application/json")
	limited := doGraphQL(t, req, mediaResponse) // from 127.0.0.1, as a
	assert.Equal(t, http.StatusTooManyRequests, limited.status, limited.body)
	assert.Equal(t, mediaResponse, limited.contentType)
	assert.NotEmpty(t, limited.header.Get("Retry-After"))
	assert.Equal(t, []string{"RATE_LIMITED"}, limited.codes())
	assert.NotContains(t, limited.members, "data")

	// A cheap query still fits what is left; another address has its own budget.
	resp, got, err = postAs(a, in, `{ __typename }`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%+v", got)
	resp, got, err = postAs(from("127.0.0.2"), in, costly)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%+v", got)
	assert.Empty(t, got.Errors)
}

// One client flooding slow operations holds at most its share of the server's turns: another
// client's query runs meanwhile. (Without per-client slots the flood took every turn and the
// other query waited for its deadline.)
func TestClientCannotTakeEveryTurn(t *testing.T) {
	in := startInstanceOptions(t, dbtest.URL(t), api.Options{
		Limits:  api.Limits{Concurrency: 6, Timeout: 30 * time.Second},
		Clients: clients.New(clients.Options{Concurrent: 4}),
	})
	release := lockTable(t, in.db, "items", "ACCESS EXCLUSIVE") // every read of items waits
	flooder := from("127.0.0.1")
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = postAs(flooder, in, `{ items(limit: 1) { id } }`)
		}()
	}
	t.Cleanup(func() { release(); wg.Wait() })
	require.Eventually(t, func() bool { return lockWaiters(in.db, "%") >= 4 }, 10*time.Second, 10*time.Millisecond,
		"the flood never reached the database")
	time.Sleep(200 * time.Millisecond) // the rest of the flood arrives and waits for its slots

	answeredMeanwhile(t, in, `{ users(limit: 1) { id } }`, "another client's query waited for the flood")
	waiting := lockWaiters(in.db, "%")
	assert.Equal(t, 4, waiting, "the flooding client executes 4 operations at once")
}

// Costly operations from many clients hold at most half of the turns: a cheap query
// runs meanwhile. (Before, the costly ones took every turn and the cheap one waited for them.)
func TestCostlyOperationsLeaveTurnsToCheapOnes(t *testing.T) {
	in := startInstanceOptions(t, dbtest.URL(t), api.Options{
		Limits: api.Limits{Concurrency: 4, Timeout: 30 * time.Second},
	})
	release := lockTable(t, in.db, "items", "ACCESS EXCLUSIVE") // every read of items waits
	var wg sync.WaitGroup
	for i := range 8 { // eight clients, one costly query each (cost 1 + 100 × 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = postAs(from(fmt.Sprintf("127.0.1.%d", i+1)), in, `{ items(limit: 100) { id title } }`)
		}()
	}
	t.Cleanup(func() { release(); wg.Wait() })
	require.Eventually(t, func() bool { return lockWaiters(in.db, "%") >= 2 }, 10*time.Second, 10*time.Millisecond,
		"the costly queries never reached the database")
	time.Sleep(200 * time.Millisecond) // the rest arrive and wait

	answeredMeanwhile(t, in, `{ users(limit: 1) { id } }`, "a cheap query waited for the costly ones")
	waiting := lockWaiters(in.db, "%")
	assert.Equal(t, 2, waiting, "costly operations hold two of the four turns")
}

// answeredMeanwhile asks query from another address (127.0.0.2) and fails unless it is
// answered, without errors, within 10 s.
func answeredMeanwhile(t *testing.T, in *instance, query, msg string) {
	t.Helper()
	answered := make(chan gqlBody, 1)
	go func() {
		_, got, err := postAs(from("127.0.0.2"), in, query)
		if err != nil {
			got.Errors = append(got.Errors, map[string]any{"message": err.Error()})
		}
		answered <- got
	}()
	select {
	case got := <-answered:
		assert.Empty(t, got.Errors)
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}
