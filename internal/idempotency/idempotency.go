// Package idempotency makes a retried mutation safe. A POST to /query with an Idempotency-Key
// header claims the key in PostgreSQL (so every instance sees it), runs, and stores its answer
// (status, headers, body); a request with the same key and the same body, within the retention,
// gets that answer again, marked Idempotent-Replayed: true, and writes nothing. Keys are scoped
// by the caller (a token's subject; anonymous callers share one scope) and bound to the SHA-256
// of the body, which is all that is kept of it.
//
//   - A retry while the first attempt runs waits for its answer, up to Options.Wait, then gets
//     409 IDEMPOTENCY_IN_PROGRESS with Retry-After.
//   - The same key with another body is refused: 422 IDEMPOTENCY_KEY_REUSED.
//   - An answer that certainly wrote nothing and may succeed later (TIMEOUT, RATE_LIMITED or
//     SERVICE_UNAVAILABLE before any write committed) is not kept: the key is released, and a
//     retry runs again.
//   - A claim whose attempt stopped without an answer (its instance crashed) is abandoned once
//     its lease ends: its write may or may not have been applied, so the key answers 409
//     OUTCOME_UNKNOWN until it expires, and is never run twice.
//
// Queries (and documents that do not parse) run as usual with or without the header: only a
// request that may write needs it.
package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wikigraph/wikigraph/internal/auth"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/logging"
)

// Headers of the protocol.
const (
	Header         = "Idempotency-Key"
	ReplayedHeader = "Idempotent-Replayed"
	// MaxKeyLength bounds a key: printable ASCII, 1 to 255 characters (a UUID is 36).
	MaxKeyLength = 255
)

// Options configure the keys; zero values take the defaults.
type Options struct {
	// Retention is how long an answer is kept and replayed (default 24h).
	Retention time.Duration
	// Lease is how long a claim without an answer is the work of a live attempt (default 1m);
	// past it the attempt is taken for dead. It must outlast the longest request.
	Lease time.Duration
	// Wait is how long a retry waits for the first attempt's answer (default 10s).
	Wait   time.Duration
	Logger *slog.Logger
}

// Keys stores the idempotency keys of every instance in PostgreSQL.
type Keys struct {
	db   *bun.DB
	opts Options
}

// New returns the keys stored in db (table idempotency_keys).
func New(db *bun.DB, opts Options) *Keys {
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Wait <= 0 {
		opts.Wait = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Keys{db: db, opts: opts}
}

// Middleware handles Idempotency-Key on the GraphQL handler next. It expects the body already
// bounded, and the caller in the context (see package auth).
func (k *Keys) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values(Header)
		if r.Method != http.MethodPost || len(values) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if len(values) > 1 || !validKey(values[0]) {
			refuse(w, http.StatusBadRequest, "IDEMPOTENCY_KEY_INVALID",
				fmt.Sprintf("one %s header of 1 to %d printable ASCII characters", Header, MaxKeyLength))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		scope, ok := scopeOf(r.Context())
		if !ok || !mayWrite(body) {
			next.ServeHTTP(w, r) // a refused token is refused by the operation; a query just runs
			return
		}
		sum := sha256.Sum256(body)
		k.serve(w, r, next, request{scope: scope, key: values[0], hash: sum[:]})
	})
}

type request struct {
	scope, key string
	hash       []byte
}

// stored is a key's row.
type stored struct {
	RequestHash []byte              `bun:"request_hash"`
	Status      *int                `bun:"status"`
	Headers     map[string][]string `bun:"headers,type:jsonb"`
	Body        []byte              `bun:"body"`
	LeaseOver   bool                `bun:"lease_over"`
}

func (k *Keys) serve(w http.ResponseWriter, r *http.Request, next http.Handler, req request) {
	ctx := r.Context()
	waitCtx, cancel := context.WithTimeout(ctx, k.opts.Wait)
	defer cancel()
	owner := newOwner()
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		claimed, err := k.claim(ctx, req, owner)
		if err != nil {
			k.failed(w, r, "claim", err)
			return
		}
		if claimed {
			logging.AddToLine(ctx, slog.String("idempotency", "first"))
			k.run(w, r, next, req, owner)
			return
		}
		row, err := k.find(ctx, req)
		if err != nil {
			k.failed(w, r, "find", err)
			return
		}
		switch {
		case row == nil:
			// Released or expired since the claim failed: claim again.
		case !bytes.Equal(row.RequestHash, req.hash):
			logging.AddToLine(ctx, slog.String("idempotency", "reused"))
			refuse(w, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED",
				"this Idempotency-Key was used with another request body; use a new key for a new request")
			return
		case row.Status != nil:
			logging.AddToLine(ctx, slog.String("idempotency", "replayed"))
			replay(w, row)
			return
		case row.LeaseOver:
			logging.AddToLine(ctx, slog.String("idempotency", "abandoned"))
			refuse(w, http.StatusConflict, "OUTCOME_UNKNOWN",
				"the first request with this Idempotency-Key stopped without an answer: its write may or may not have been "+
					"applied; check before writing it again, with a new key")
			return
		}
		select {
		case <-waitCtx.Done():
			if ctx.Err() != nil {
				return // the client went away
			}
			logging.AddToLine(ctx, slog.String("idempotency", "in_progress"))
			w.Header().Set("Retry-After", "1")
			refuse(w, http.StatusConflict, "IDEMPOTENCY_IN_PROGRESS",
				"a request with this Idempotency-Key is still running; retry shortly for its answer")
			return
		case <-time.After(delay):
		}
	}
}

// claim makes owner the key's first attempt, unless the key is held and not expired.
func (k *Keys) claim(ctx context.Context, req request, owner string) (bool, error) {
	var claimed []bool
	err := k.db.NewRaw(`INSERT INTO idempotency_keys AS k (scope, key, request_hash, owner, lease_until, expires_at)
		VALUES (?, ?, ?, ?, now() + ? * interval '1 microsecond', now() + ? * interval '1 microsecond')
		ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, owner = EXCLUDED.owner,
			lease_until = EXCLUDED.lease_until, expires_at = EXCLUDED.expires_at, status = NULL, headers = NULL, body = NULL
		WHERE k.expires_at < now()
		RETURNING true`,
		req.scope, req.key, req.hash, owner, k.opts.Lease.Microseconds(), k.opts.Retention.Microseconds()).Scan(ctx, &claimed)
	return len(claimed) == 1, err
}

// find returns the key's live row, or nil.
func (k *Keys) find(ctx context.Context, req request) (*stored, error) {
	var rows []stored
	err := k.db.NewRaw(`SELECT request_hash, status, headers, body, lease_until < now() AS lease_over
		FROM idempotency_keys WHERE scope = ? AND key = ? AND expires_at >= now()`, req.scope, req.key).Scan(ctx, &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// run runs the first attempt and keeps its answer, or releases the key when the answer wrote
// nothing and may succeed later.
func (k *Keys) run(w http.ResponseWriter, r *http.Request, next http.Handler, req request, owner string) {
	// The attempt runs to its end even if the client leaves: its retry gets the answer.
	var wrote atomic.Bool
	ctx := database.OnCommit(context.WithoutCancel(r.Context()), func() { wrote.Store(true) })
	before := w.Header().Clone()
	rec := &recorder{header: w.Header().Clone()}
	done := false
	defer func() {
		if !done && !wrote.Load() { // a panic: nothing was written, a retry may run
			k.release(r.Context(), req, owner)
		}
	}()
	next.ServeHTTP(rec, r.WithContext(ctx))
	done = true
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if !wrote.Load() && retryable(rec) {
		logging.AddToLine(r.Context(), slog.String("idempotency", "released"))
		k.release(r.Context(), req, owner)
	} else {
		headers := map[string][]string{}
		for name, v := range rec.header {
			if !slices.Equal(before[name], v) {
				headers[name] = v
			}
		}
		k.store(r.Context(), req, owner, rec.status, headers, rec.body.Bytes())
	}
	maps.Copy(w.Header(), rec.header)
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// retryable reports whether an answer may be run again: it only has errors that come before
// anything is written (a turn or a connection not had in time, an absent database).
func retryable(rec *recorder) bool {
	if rec.status >= 500 {
		return true
	}
	var out struct {
		Errors []struct {
			Extensions struct{ Code string }
		}
	}
	if json.Unmarshal(rec.body.Bytes(), &out) != nil || len(out.Errors) == 0 {
		return false
	}
	for _, e := range out.Errors {
		if e.Extensions.Code != "TIMEOUT" && e.Extensions.Code != "SERVICE_UNAVAILABLE" && e.Extensions.Code != "RATE_LIMITED" {
			return false
		}
	}
	return true
}

// settle is the context of the statements that settle a key: they run even if the client left.
func settle(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

func (k *Keys) store(ctx context.Context, req request, owner string, status int, headers map[string][]string, body []byte) {
	ctx, cancel := settle(ctx)
	defer cancel()
	_, err := k.db.NewRaw(`UPDATE idempotency_keys SET status = ?, headers = ?, body = ?,
			expires_at = now() + ? * interval '1 microsecond'
		WHERE scope = ? AND key = ? AND owner = ?`,
		status, headersJSON(headers), body, k.opts.Retention.Microseconds(), req.scope, req.key, owner).Exec(ctx)
	if err != nil {
		// The client has its answer; retries with the key will answer OUTCOME_UNKNOWN.
		k.opts.Logger.ErrorContext(ctx, "idempotency: answer not stored", "error", err.Error())
	}
}

func (k *Keys) release(ctx context.Context, req request, owner string) {
	ctx, cancel := settle(ctx)
	defer cancel()
	_, err := k.db.NewRaw(`DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND owner = ?`,
		req.scope, req.key, owner).Exec(ctx)
	if err != nil {
		k.opts.Logger.ErrorContext(ctx, "idempotency: key not released", "error", err.Error())
	}
}

func headersJSON(h map[string][]string) string {
	b, _ := json.Marshal(h)
	return string(b)
}

// failed answers a request whose key could not be claimed or read: nothing ran.
func (k *Keys) failed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		return
	}
	if database.Unavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		k.opts.Logger.WarnContext(r.Context(), "idempotency: "+what, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		refuse(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the database is unavailable; try again shortly")
		return
	}
	k.opts.Logger.ErrorContext(r.Context(), "idempotency: "+what, "error", err.Error())
	refuse(w, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "internal server error")
}

// Run purges expired keys every five minutes until ctx ends. (An expired key is never replayed
// even before it is purged: a new request claims it over.)
func (k *Keys) Run(ctx context.Context) error {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := k.Purge(ctx); err != nil && ctx.Err() == nil {
			k.opts.Logger.WarnContext(ctx, "idempotency: purge", "error", err.Error())
		} else if n > 0 {
			k.opts.Logger.InfoContext(ctx, "idempotency: purged expired keys", "keys", n)
		}
	}
}

// Purge deletes the expired keys, a thousand at a time, and returns how many.
func (k *Keys) Purge(ctx context.Context) (int, error) {
	total := 0
	for {
		res, err := k.db.NewRaw(`DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT 1000))`).Exec(ctx)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < 1000 {
			return total, nil
		}
	}
}

func replay(w http.ResponseWriter, row *stored) {
	for name, v := range row.Headers {
		w.Header()[name] = v
	}
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(*row.Status)
	_, _ = w.Write(row.Body)
}

// refuse answers a GraphQL error of the middleware's own.
func refuse(w http.ResponseWriter, status int, code, message string) {
	b, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message": message, "extensions": map[string]any{"code": code},
	}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func validKey(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// scopeOf is the caller's key space: a token's subject, or "" for anonymous callers (and open
// mode). false: the token was refused.
func scopeOf(ctx context.Context) (string, bool) {
	id, ok, err := auth.Me(ctx)
	switch {
	case err != nil:
		return "", false
	case ok:
		return "user:" + strconv.FormatInt(id, 10), true
	}
	return "", true
}

// maxTokens bounds the parse of a keyed request's document, as the GraphQL handler's own token
// limit does (a document over it is refused there and writes nothing).
const maxTokens = 15000

// mayWrite reports whether a request body may run a mutation: it does, or it has no document
// (an automatic persisted query's hash alone says nothing).
func mayWrite(body []byte) bool {
	var req struct {
		Query         string `json:"query"`
		OperationName string `json:"operationName"`
	}
	if json.Unmarshal(body, &req) != nil {
		return false // answered BAD_REQUEST by the handler
	}
	if req.Query == "" {
		return true
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: req.Query}, maxTokens)
	if err != nil {
		return false // answered GRAPHQL_PARSE_FAILED, writes nothing
	}
	var op *ast.OperationDefinition
	switch {
	case req.OperationName != "":
		op = doc.Operations.ForName(req.OperationName)
	case len(doc.Operations) == 1:
		op = doc.Operations[0]
	}
	return op != nil && op.Operation == ast.Mutation
}

func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recorder keeps the first attempt's answer, to store it before sending it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

// Flush lets streaming transports (multipart/mixed, SSE) answer a keyed mutation: its answer is
// kept whole and written at the end anyway.
func (r *recorder) Flush() {}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
