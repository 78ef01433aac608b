// Command floor is the performance suite's floor (cmd/bench -floor): what any Go server over bun's
// pgdriver costs on this machine, with no GraphQL at all. The suite builds it, starts it beside
// our server and drives it with the same load generator, the same request bodies and the same
// checks, in the same rounds. Per request it does what no server on this stack can skip: net/http
// reads the POST and its body (the GraphQL document is not parsed; a user's id is found in the
// variables with a scan), one prepared statement runs through database/sql and pgdriver — the
// statement our server sends for that operation, which pgbench runs too — and the rows are
// written by hand as the JSON our server answers. Its rate is about the most a net/http server
// that sends one statement per request through database/sql and pgdriver gets on this machine:
// where ours answers at a fraction of pgbench's rate, the floor's own fraction says how much of
// the gap is Go, net/http and the driver rather than GraphQL.
//
//	floor -addr 127.0.0.1:8081 -db postgres://… -conns 8 '/user=user:SELECT … WHERE (id = $1)' '/users10=users:SELECT … LIMIT 10'
//
// Each argument is a route, PATH=FIELD:STATEMENT: the answer is {"data":{FIELD:…}}. A statement
// with a parameter ($1) gets the request's variables.id and answers one user or null; one without
// answers its rows as a list. The statement selects a user's columns as bun does: id, username,
// email, created_at, updated_at; the answer has the first three, as the suite's operations ask.
package main

import (
	"bytes"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wikigraph/wikigraph/internal/gqlscalar"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("floor: ")
	var (
		addr  = flag.String("addr", "127.0.0.1:8081", "where to listen")
		dsn   = flag.String("db", "", "the database's URL")
		conns = flag.Int("conns", 8, "connections in the pool, open and idle (the server's DB_MAX_CONNS)")
	)
	flag.Parse()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(*dsn), pgdriver.WithApplicationName("wikigraph-floor")))
	db.SetMaxOpenConns(*conns)
	db.SetMaxIdleConns(*conns) // database/sql keeps 2 otherwise: bursts would open backends
	routes := map[string]*route{}
	for _, arg := range flag.Args() {
		path, rest, ok1 := strings.Cut(arg, "=")
		field, query, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(path, "/") {
			log.Fatalf("bad route %q: want PATH=FIELD:STATEMENT", arg)
		}
		stmt, err := db.Prepare(query)
		if err != nil {
			log.Fatalf("%s: %v", path, err)
		}
		routes[path] = &route{stmt: stmt, field: field, byID: strings.Contains(query, "$1")}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	for path, rt := range routes {
		mux.Handle("POST "+path, rt)
	}
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// route answers one operation with one statement.
type route struct {
	stmt  *sql.Stmt
	field string
	byID  bool
}

// buffers are a request's body and answer, reused across requests.
type buffers struct{ in, out []byte }

var pool = sync.Pool{New: func() any { return &buffers{in: make([]byte, 0, 512), out: make([]byte, 0, 2048)} }}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := pool.Get().(*buffers)
	defer pool.Put(b)
	var err error
	if b.in, err = readAll(r.Body, b.in[:0]); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var args []any
	if rt.byID {
		id, ok := variableID(b.in)
		if !ok {
			http.Error(w, "no variables.id in the body", http.StatusBadRequest)
			return
		}
		args = []any{id}
	}
	if b.out, err = rt.answer(r, b.out[:0], args); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// What our server answers the load generator, which sends no Accept header.
	w.Header()["Content-Type"] = []string{"application/json"}
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(b.out))}
	_, _ = w.Write(b.out)
}

// answer runs the statement and appends {"data":{FIELD:…}} to out.
func (rt *route) answer(r *http.Request, out []byte, args []any) ([]byte, error) {
	rows, err := rt.stmt.QueryContext(r.Context(), args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	out = append(out, `{"data":{"`...)
	out = append(out, rt.field...)
	out = append(out, `":`...)
	if !rt.byID {
		out = append(out, '[')
	}
	var (
		u                user
		created, updated time.Time
		n                int
	)
	for rows.Next() {
		if err := rows.Scan(&u.id, &u.username, &u.email, &created, &updated); err != nil {
			return out, err
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = u.appendJSON(out)
		n++
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	switch {
	case !rt.byID:
		out = append(out, ']')
	case n == 0:
		out = append(out, "null"...)
	case n > 1:
		return out, errors.New("more than one row for one id")
	}
	return append(out, "}}"...), nil
}

type user struct {
	id              int64
	username, email string
}

// appendJSON writes the user as our server does: {"id":"VXNlcjox","username":"…","email":"…"}
// (the global id).
func (u *user) appendJSON(out []byte) []byte {
	out = append(out, `{"id":`...)
	out = gqlscalar.ID{Type: gqlscalar.TypeUser, Row: u.id}.AppendJSON(out)
	out = append(out, `,"username":`...)
	out = appendString(out, u.username)
	out = append(out, `,"email":`...)
	out = appendString(out, u.email)
	return append(out, '}')
}

// appendString appends s as a JSON string: quotes, backslashes and control characters escaped.
func appendString(out []byte, s string) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		default:
			out = fmt.Appendf(out, `\u%04x`, c)
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// variableID finds "id":"N" after "variables": in a request's body: the one variable of the
// suite's user(id) requests. The document itself is not read.
func variableID(body []byte) (int64, bool) {
	i := bytes.Index(body, []byte(`"variables":`))
	if i < 0 {
		return 0, false
	}
	rest := body[i:]
	j := bytes.Index(rest, []byte(`"id":"`))
	if j < 0 {
		return 0, false
	}
	rest = rest[j+len(`"id":"`):]
	var id int64
	for i, c := range rest {
		switch {
		case c >= '0' && c <= '9' && i < 18:
			id = id*10 + int64(c-'0')
		case c == '"' && i > 0:
			return id, true
		default:
			return 0, false
		}
	}
	return 0, false
}

// readAll reads r to its end into buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
