package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// client is one keep-alive HTTP/1.1 connection that posts GraphQL requests. It is deliberately
// minimal (one write per request, one buffered read, no allocation per request once warm) so that
// the load generator, which shares the 2 cores with the server and PostgreSQL, takes as little of
// them as pgbench's own client does.
type client struct {
	addr string
	path string // of the GraphQL endpoint: /query on ours, /graphql on PostGraphile
	conn net.Conn
	r    *bufio.Reader
	req  []byte
	body []byte
}

func (c *client) dial() error {
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn = conn
	c.r = bufio.NewReaderSize(conn, 64<<10)
	return nil
}

// post sends one request and returns the status and the body (valid until the next call).
func (c *client) post(payload []byte) (int, []byte, error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, nil, err
		}
	}
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, c.path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(payload)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, payload...)
	_ = c.conn.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return 0, nil, err
	}
	status, body, err := c.read()
	if err != nil {
		c.close()
	}
	return status, body, err
}

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

func (c *client) read() (int, []byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closing := -1, false, false
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		if !ok {
			return 0, nil, fmt.Errorf("bad header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			line, err = c.r.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimRight(line, "\r\n")), 16, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("bad chunk size %q", line)
			}
			if size == 0 {
				if _, err = c.r.ReadSlice('\n'); err != nil {
					return 0, nil, err
				}
				break
			}
			if err = c.readN(int(size)); err != nil {
				return 0, nil, err
			}
			if _, err = c.r.Discard(2); err != nil {
				return 0, nil, err
			}
		}
	case length >= 0:
		if err = c.readN(length); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, errors.New("response with neither Content-Length nor chunked encoding")
	}
	if closing {
		c.close()
	}
	return status, c.body, nil
}

func (c *client) readN(n int) error {
	start := len(c.body)
	c.body = append(c.body, make([]byte, n)...)
	_, err := io.ReadFull(c.r, c.body[start:])
	return err
}

// requestTimeout bounds one request: a server that stops answering fails the run, not hangs it.
const requestTimeout = 15 * time.Second

// sample is one answered request: when it ended and how long it took.
type sample struct {
	end     int64 // ns since the run started
	latency int64 // ns
	failed  bool
}

// loadResult is what drive measured inside its window.
type loadResult struct {
	Requests  int     // ended inside the window
	Errors    int     // failed, warm-up included
	Latencies []int64 // ns, of the successful requests inside the window
	FirstErr  string
}

// drive runs concurrency workers against the GraphQL endpoint at addr and path for warmup+window,
// each sending the requests op makes, and keeps the requests that ended inside the window. A request fails when the transport
// fails, the status is not 200, the body has a GraphQL error, or op.check refuses the body.
func drive(ctx context.Context, addr, path string, op operation, concurrency int, warmup, window time.Duration, run string) (loadResult, error) {
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, start.Add(warmup+window))
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      [][]sample
		firstErr atomic.Value
	)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{addr: addr, path: path}
			defer c.close()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			samples := make([]sample, 0, 4096)
			var payload []byte
			for i := 0; ctx.Err() == nil; i++ {
				payload = op.request(payload[:0], rng, run, w, i)
				t0 := time.Now()
				status, body, err := c.post(payload)
				t1 := time.Now()
				s := sample{end: int64(t1.Sub(start)), latency: int64(t1.Sub(t0))}
				switch {
				case err != nil:
					s.failed = true
					firstErr.CompareAndSwap(nil, err.Error())
				case status != 200 || bytes.Contains(body, []byte(`"errors":`)) || !op.check(body):
					s.failed = true
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d: %.300s", status, body))
				}
				samples = append(samples, s)
			}
			mu.Lock()
			all = append(all, samples)
			mu.Unlock()
		}()
	}
	wg.Wait()
	from, to := int64(warmup), int64(warmup+window)
	var res loadResult
	for _, samples := range all {
		for _, s := range samples {
			if s.failed { // during the warm-up too: a run must have none
				res.Errors++
			}
			if s.end < from || s.end > to {
				continue
			}
			res.Requests++
			if !s.failed {
				res.Latencies = append(res.Latencies, s.latency)
			}
		}
	}
	if v := firstErr.Load(); v != nil {
		res.FirstErr = v.(string)
	}
	return res, nil
}
