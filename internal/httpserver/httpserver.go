// Package httpserver wires the HTTP side: routes (/, /query, /health, /healthz, /readyz), the request-id,
// access-log and panic middleware, and a server that shuts down gracefully.
package httpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/rs/cors"

	"github.com/wikigraph/wikigraph/internal/api"
	"github.com/wikigraph/wikigraph/internal/clients"
	"github.com/wikigraph/wikigraph/internal/jsontext"
	"github.com/wikigraph/wikigraph/internal/logging"
)

// Routes are what the server serves.
type Routes struct {
	// GraphQL is the /query handler.
	GraphQL http.Handler
	// Ready reports whether the service can serve (database reachable, migrations current).
	Ready func(context.Context) error
	// Logger gets one line per request.
	Logger *slog.Logger
	// Auth puts the caller in each /query request's context (auth.Open or a Verifier's).
	Auth func(http.Handler) http.Handler
	// CORSOrigins may call /query from a browser page of another origin ("*" for any).
	CORSOrigins []string
	// MaxBodyBytes bounds a /query request body (default 1 MiB).
	MaxBodyBytes int64
	// Playground serves GraphiQL at / (nil: no playground).
	Playground http.Handler
	// Metrics serves /metrics here (nil: not on this listener).
	Metrics http.Handler
	// Wrap wraps the whole handler (in-flight counting).
	Wrap func(http.Handler) http.Handler
	// Idempotency wraps the GraphQL handler, after the body is read and the caller known
	// (Idempotency-Key: see package idempotency); nil: none.
	Idempotency func(http.Handler) http.Handler
}

// Handler returns the server's root handler.
func Handler(rt Routes) http.Handler {
	mux := http.NewServeMux()
	if rt.Playground != nil {
		mux.Handle("GET /{$}", rt.Playground)
		mux.Handle("GET /assets/", rt.Playground)
	}
	mux.Handle("/query", rt.query())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	// The old service's health check, kept for the probes and scripts written for it: JSON, 200
	// {"status":"ok"} when the service can serve (what /readyz checks: the database answers
	// within 2 s and its migrations are current), 503 {"status":"unavailable"} otherwise.
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := rt.Ready(ctx); err != nil {
			rt.Logger.WarnContext(ctx, "unhealthy", "error", err.Error())
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"unavailable"}`+"\n")
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := rt.Ready(ctx); err != nil {
			rt.Logger.WarnContext(ctx, "not ready", "error", err.Error())
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if rt.Metrics != nil {
		mux.Handle("GET /metrics", rt.Metrics)
	}
	var h http.Handler = requestID(accessLog(rt.Logger, recoverPanics(rt.Logger, mux)))
	if rt.Wrap != nil {
		h = rt.Wrap(h)
	}
	return h
}

// query wraps the GraphQL handler: body limit, caller, CORS.
func (rt Routes) query() http.Handler {
	limit := rt.MaxBodyBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	tooLarge := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", answerType(r))
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = fmt.Fprintf(w, `{"errors":[{"message":"request body over %d bytes","extensions":{"code":"REQUEST_TOO_LARGE"}}]}`, limit)
	}
	gql := rt.GraphQL
	if rt.Idempotency != nil {
		gql = rt.Idempotency(gql)
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !isJSON(r.Header.Get("Content-Type")) {
			w.Header().Set("Content-Type", answerType(r))
			w.WriteHeader(http.StatusUnsupportedMediaType)
			_, _ = io.WriteString(w, `{"errors":[{"message":"POST a JSON body (Content-Type: application/json)","extensions":{"code":"UNSUPPORTED_MEDIA_TYPE"}}]}`)
			return
		}
		if r.ContentLength > limit {
			tooLarge(w, r)
			return
		}
		var body []byte
		if r.Body != nil && r.Body != http.NoBody {
			// Read here, bounded, so a body of unknown length (chunked) over the limit gets the
			// same clear answer as one that declared its length.
			var err error
			body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
			if int64(len(body)) > limit {
				tooLarge(w, r)
				return
			}
			if err != nil {
				http.Error(w, "could not read the request body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if r.Method == http.MethodPost {
			// Answered here, briefly: gqlgen would quote the whole body back (see checkBody).
			streamed := isStream(r) || strings.Contains(r.Header.Get("Accept"), "multipart/mixed")
			if code, msg, ok := checkBody(body, streamed); !ok {
				writeError(w, r, http.StatusBadRequest, code, msg)
				return
			}
			// JSON is UTF-8 (RFC 8259); Go's decoder would make each stray byte U+FFFD and the
			// server would store that in place of what the client meant.
			if at := invalidUTF8(body); at >= 0 {
				writeError(w, r, http.StatusBadRequest, "BAD_REQUEST",
					fmt.Sprintf("the request body is not valid UTF-8 (byte 0x%02X at offset %d): send JSON in UTF-8", body[at], at))
				return
			}
			// Nor is an escape of half a surrogate pair ("\udfff"), which decodes to U+FFFD too.
			if at := jsontext.LoneSurrogate(body); at >= 0 {
				writeError(w, r, http.StatusBadRequest, "BAD_REQUEST",
					fmt.Sprintf("the request body holds half of a UTF-16 surrogate pair (%s at offset %d): send the character itself, or both halves", body[at:at+6], at))
				return
			}
		}
		// The client's address tells it apart (clients.Key); an operation over its budget asks
		// for 429 and Retry-After through the hint.
		ctx, hint := clients.WithHint(clients.WithAddr(r.Context(), r.RemoteAddr))
		gql.ServeHTTP(&hintWriter{ResponseWriter: w, hint: hint}, r.WithContext(ctx))
	})
	if rt.Auth != nil {
		h = rt.Auth(h)
	}
	if len(rt.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: rt.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Authorization", "Content-Type", RequestIDHeader, "Idempotency-Key"},
			ExposedHeaders: []string{RequestIDHeader, "Idempotent-Replayed", "Retry-After"},
			MaxAge:         600,
		}).Handler(h)
	}
	return h
}

// RequestIDHeader carries the request id both ways.
const RequestIDHeader = "X-Request-Id"

var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID takes a well-formed X-Request-Id from the client or makes one, and puts it in the
// context and the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !clientRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush passes server-sent events through at once.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController and websocket.Accept reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// hintWriter gives an answer the status and Retry-After its operation hinted (clients.SetHint),
// in place of the 200 gqlgen writes for an answer that executed.
type hintWriter struct {
	http.ResponseWriter
	hint  *clients.Hint
	wrote bool
}

func (h *hintWriter) WriteHeader(code int) {
	if !h.wrote {
		h.wrote = true
		// The hint's status replaces the 200 of an application/json answer and the one
		// run chose under application/graphql-response+json.
		if status, retry := h.hint.Get(); status != 0 && (code == http.StatusOK || code == status) {
			h.Header().Set("Retry-After", strconv.Itoa(retry))
			code = status
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *hintWriter) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

func (h *hintWriter) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController and websocket.Accept reach the connection.
func (h *hintWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		// A stream carries many operations, concurrently, for as long as it lasts: they log
		// lines of their own rather than add to this one.
		ctx, line := r.Context(), (*logging.Line)(nil)
		if !isStream(r) {
			ctx, line = logging.WithLine(ctx)
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(rec, r)
		attrs := append([]slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		}, line.Attrs()...)
		logger.LogAttrs(ctx, slog.LevelInfo, "http", attrs...)
	})
}

func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logger.ErrorContext(r.Context(), "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				http.Error(w, "internal server error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Timeouts of the HTTP server; zero values take the defaults.
type Timeouts struct {
	Read, Write, Idle time.Duration
}

// Server is an http.Server with the timeouts a public endpoint needs (streams are exempt: see
// Serve).
func Server(h http.Handler, logger *slog.Logger, t Timeouts) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       or(t.Read, 30*time.Second),
		WriteTimeout:      or(t.Write, 60*time.Second),
		IdleTimeout:       or(t.Idle, 120*time.Second),
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx is cancelled, then stops accepting, ends the streams (websocket
// and server-sent-event subscriptions, which would otherwise hold the shutdown), lets in-flight
// requests finish for at most grace, and returns. It returns nil after a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isStream(r) {
			// The request itself is read under the read timeout; only the stream that follows
			// lives past the server's timeouts (keep-alive pings watch it).
			if r.Body != nil && r.Body != http.NoBody {
				body, err := io.ReadAll(io.LimitReader(r.Body, maxStreamRequest+1))
				if err != nil || len(body) > maxStreamRequest {
					http.Error(w, "stream request unreadable or too large", http.StatusBadRequest)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
			rctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(streams, cancel)
			defer stop()
			// A websocket served past this handler ends with the streams too.
			r = r.WithContext(api.WithLifetime(rctx, streams))
		}
		next.ServeHTTP(w, r)
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	srv.RegisterOnShutdown(endStreams) // hijacked websockets are not tracked by Shutdown
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// isJSON reports whether a Content-Type is JSON (application/json, with or without parameters).
func isJSON(contentType string) bool {
	media, _, err := mime.ParseMediaType(contentType)
	return err == nil && media == "application/json"
}

// maxStreamRequest bounds the body of a subscription request over SSE.
const maxStreamRequest = 1 << 20

// isStream reports whether r opens a long-lived stream: a websocket or server-sent events.
func isStream(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// Check GETs url and reports an error unless it answers 200 within a few seconds. It is the
// container health check: the runtime image has no curl.
func Check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
