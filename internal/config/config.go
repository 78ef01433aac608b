// Package config reads the server's configuration from the environment. Every variable is listed,
// with its default, in README.md; the defaults make `make run` work on a developer machine.
package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is the whole configuration of one server process.
type Config struct {
	// HTTP
	Host            string        `env:"HOST"`
	Port            int           `env:"PORT" envDefault:"8080"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	QueryCacheSize  int           `env:"QUERY_CACHE_SIZE" envDefault:"1000"`
	// QueryCacheBytes bounds the parsed-query cache by the memory its documents hold.
	QueryCacheBytes int `env:"QUERY_CACHE_BYTES" envDefault:"33554432"`

	ReadTimeout  time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"30s"`
	WriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"60s"`
	IdleTimeout  time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"120s"`
	MaxBodyBytes int64         `env:"MAX_BODY_BYTES" envDefault:"1048576"`
	CORSOrigins  []string      `env:"CORS_ALLOWED_ORIGINS" envSeparator:","`
	Playground   bool          `env:"PLAYGROUND" envDefault:"true"`
	MetricsAddr  string        `env:"METRICS_ADDR"`
	// PprofAddr serves net/http/pprof on a listener of its own (never on the public one).
	PprofAddr string `env:"PPROF_ADDR"`

	// Authentication
	AuthMode      string `env:"AUTH_MODE" envDefault:"none"`
	AuthJWTSecret string `env:"AUTH_JWT_SECRET"`
	AuthJWKSFile  string `env:"AUTH_JWKS_FILE"`
	// AuthJWKSRefresh is how often the JWKS file is looked at again for rotated keys.
	AuthJWKSRefresh time.Duration `env:"AUTH_JWKS_REFRESH" envDefault:"10s"`
	AuthIssuer      string        `env:"AUTH_ISSUER"`
	AuthAudience    string        `env:"AUTH_AUDIENCE"`
	// AuthAnyAudience is the explicit opt-out of the audience check in AUTH_MODE=jwt.
	AuthAnyAudience bool          `env:"AUTH_ANY_AUDIENCE" envDefault:"false"`
	AuthOpenSignup  bool          `env:"AUTH_OPEN_SIGNUP" envDefault:"false"`
	AuthLeeway      time.Duration `env:"AUTH_LEEWAY" envDefault:"30s"`

	// Query limits
	MaxDepth         int           `env:"MAX_QUERY_DEPTH" envDefault:"12"`
	MaxComplexity    int           `env:"MAX_QUERY_COMPLEXITY" envDefault:"5000"`
	MaxTokens        int           `env:"MAX_QUERY_TOKENS" envDefault:"15000"`
	MaxAliases       int           `env:"MAX_QUERY_ALIASES" envDefault:"100"`
	MaxFields        int           `env:"MAX_QUERY_FIELDS" envDefault:"500"`
	OperationTimeout time.Duration `env:"OPERATION_TIMEOUT" envDefault:"10s"`
	// MaxConcurrentOperations bounds the queries and mutations executing at once; others queue.
	MaxConcurrentOperations int `env:"MAX_CONCURRENT_OPERATIONS" envDefault:"16"`
	// Operations costing at most CheapOperationCost may use the half of the turns that
	// costlier ones may not.
	CheapOperationCost int `env:"CHEAP_OPERATION_COST" envDefault:"100"`
	// A client (token subject, else remote address) executes at most ClientConcurrent
	// operations at once (its others wait) and spends at most ClientCostPerSecond of query
	// cost per second (bursts of ClientCostBurst); over it: RATE_LIMITED. 0: no bound.
	ClientConcurrent    int  `env:"CLIENT_MAX_CONCURRENT_OPERATIONS" envDefault:"4"`
	ClientCostPerSecond int  `env:"CLIENT_COST_PER_SECOND" envDefault:"100000"`
	ClientCostBurst     int  `env:"CLIENT_COST_BURST" envDefault:"200000"`
	Introspection       bool `env:"INTROSPECTION" envDefault:"true"`
	APQCacheSize        int  `env:"APQ_CACHE_SIZE" envDefault:"1000"`
	APQCacheBytes       int  `env:"APQ_CACHE_BYTES" envDefault:"16777216"`

	// Trusted documents: TrustedDocuments is a persisted-documents manifest (GraphQL Code
	// Generator's client preset with persistedDocuments: a JSON object from sha256:<hex> to the
	// document). When set, the server runs only those documents, named by documentId or by
	// extensions.persistedQuery.sha256Hash, and APQ is off; the manifest is checked against the
	// schema at start. The bypasses, both off by default: a valid admin token may send any
	// document (TrustedDocumentsAdminBypass, needs AUTH_MODE=jwt), anyone may send a query of
	// introspection fields only (TrustedDocumentsIntrospection, needs INTROSPECTION=true).
	TrustedDocuments              string `env:"TRUSTED_DOCUMENTS"`
	TrustedDocumentsAdminBypass   bool   `env:"TRUSTED_DOCUMENTS_ADMIN_BYPASS" envDefault:"false"`
	TrustedDocumentsIntrospection bool   `env:"TRUSTED_DOCUMENTS_INTROSPECTION" envDefault:"false"`

	// Idempotency-Key: answers are replayed for IdempotencyRetention; a first attempt without
	// an answer after IdempotencyLease is taken for dead (its outcome unknown).
	IdempotencyRetention time.Duration `env:"IDEMPOTENCY_RETENTION" envDefault:"24h"`
	IdempotencyLease     time.Duration `env:"IDEMPOTENCY_LEASE" envDefault:"1m"`

	// Subscriptions
	WebsocketOrigins   []string      `env:"WS_ALLOWED_ORIGINS" envSeparator:","`
	WebsocketKeepAlive time.Duration `env:"WS_KEEPALIVE" envDefault:"10s"`
	SubscriptionBuffer int           `env:"SUBSCRIPTION_BUFFER" envDefault:"1024"`
	// WebsocketInitTimeout closes a websocket that sends no connection_init in time.
	WebsocketInitTimeout time.Duration `env:"WS_INIT_TIMEOUT" envDefault:"10s"`
	// MaxSubscriptionsPerConnection bounds the operations open on one websocket; MaxSubscriptions
	// the subscriptions of the instance (websockets and SSE).
	MaxSubscriptionsPerConnection int `env:"MAX_SUBSCRIPTIONS_PER_CONNECTION" envDefault:"100"`
	MaxSubscriptions              int `env:"MAX_SUBSCRIPTIONS" envDefault:"50000"`

	// Database
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/wikigraph?sslmode=disable"`
	// DatabaseDirectURL reaches the primary without a transaction pooler, for what needs a
	// session of its own: LISTEN, and migrations under their advisory lock. Load sets it to
	// DatabaseURL when empty.
	DatabaseDirectURL string `env:"DATABASE_DIRECT_URL"`
	// DBPreparedStatements off: no server-side prepared statements, and the session settings
	// sent with each statement, for a pool behind a transaction-mode pooler (pgbouncer).
	DBPreparedStatements OnOff `env:"DB_PREPARED_STATEMENTS" envDefault:"on"`
	DBMaxConns           int   `env:"DB_MAX_CONNS" envDefault:"8"`
	// DBLookupSlots is how many coalesced lookup statements (users by id, a page of users) may
	// run at once; requests arriving meanwhile share the next one.
	DBLookupSlots      int           `env:"DB_LOOKUP_SLOTS" envDefault:"2"`
	DBStatementTimeout time.Duration `env:"DB_STATEMENT_TIMEOUT" envDefault:"5s"`
	DBAppName          string        `env:"DB_APP_NAME" envDefault:"wikigraph"`
	MigrateOnStart     bool          `env:"MIGRATE_ON_START" envDefault:"true"`
	// DatabaseReplicaURLs are streaming replicas of the primary: queries read from them (see
	// database.Router). ReplicaMaxLag takes a replica out of the rotation while it lags more;
	// ReplicaTokenWait is how long a read with a Consistency-Token waits for a replica to
	// replay it before reading the primary. ReplicaAnswerTimeout is how long a replica may take
	// to accept a connection, or to begin answering a read, before it is pinged on another
	// connection; if that fails too (within half as long), the read runs on the primary and
	// the replica leaves the rotation (a hung replica refuses nothing: without it, reads would
	// wait for their deadline); 0 waits as long as the statement may take.
	DatabaseReplicaURLs  []string      `env:"DATABASE_REPLICA_URLS" envSeparator:","`
	ReplicaMaxLag        time.Duration `env:"REPLICA_MAX_LAG" envDefault:"5s"`
	ReplicaTokenWait     time.Duration `env:"REPLICA_TOKEN_WAIT" envDefault:"0s"`
	ReplicaAnswerTimeout time.Duration `env:"REPLICA_ANSWER_TIMEOUT" envDefault:"1s"`

	// Logs
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
	LogSQL    bool   `env:"LOG_SQL" envDefault:"false"`
	// LogFlushInterval batches log lines into one write per interval (0: a write per line).
	LogFlushInterval time.Duration `env:"LOG_FLUSH_INTERVAL" envDefault:"100ms"`
}

// Load reads and checks the configuration.
func Load() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if cfg.DatabaseDirectURL == "" {
		cfg.DatabaseDirectURL = cfg.DatabaseURL
	}
	var replicas []string
	for _, u := range cfg.DatabaseReplicaURLs {
		if u = strings.TrimSpace(u); u != "" {
			replicas = append(replicas, u)
		}
	}
	cfg.DatabaseReplicaURLs = replicas
	return cfg, cfg.check()
}

func (c Config) check() error {
	var problems []string
	if c.Port < 0 || c.Port > 65535 {
		problems = append(problems, "PORT must be 0..65535")
	}
	if c.DBMaxConns < 2 {
		problems = append(problems, "DB_MAX_CONNS must be at least 2")
	}
	if c.ReplicaMaxLag <= 0 || c.ReplicaTokenWait < 0 || c.ReplicaAnswerTimeout < 0 {
		problems = append(problems, "REPLICA_MAX_LAG must be positive, and REPLICA_TOKEN_WAIT and REPLICA_ANSWER_TIMEOUT not negative")
	}
	if c.DBStatementTimeout <= 0 {
		problems = append(problems, "DB_STATEMENT_TIMEOUT must be positive")
	}
	if c.AuthMode != "none" && c.AuthMode != "jwt" {
		problems = append(problems, "AUTH_MODE must be none or jwt")
	}
	if c.AuthMode == "jwt" && c.AuthJWTSecret == "" && c.AuthJWKSFile == "" {
		problems = append(problems, "AUTH_MODE=jwt needs AUTH_JWT_SECRET or AUTH_JWKS_FILE")
	}
	// An identity provider's tokens may be meant for other services: without an audience this
	// server would take any of them with a numeric sub and a role.
	if c.AuthMode == "jwt" && c.AuthAudience == "" && !c.AuthAnyAudience {
		problems = append(problems, "AUTH_MODE=jwt needs AUTH_AUDIENCE (the aud of tokens meant for this server), or AUTH_ANY_AUDIENCE=true to accept tokens meant for any audience")
	}
	if c.TrustedDocuments == "" && (c.TrustedDocumentsAdminBypass || c.TrustedDocumentsIntrospection) {
		problems = append(problems, "TRUSTED_DOCUMENTS_ADMIN_BYPASS and TRUSTED_DOCUMENTS_INTROSPECTION need TRUSTED_DOCUMENTS (a manifest)")
	}
	if c.TrustedDocumentsAdminBypass && c.AuthMode != "jwt" {
		problems = append(problems, "TRUSTED_DOCUMENTS_ADMIN_BYPASS needs AUTH_MODE=jwt: there are no admin tokens without it")
	}
	if c.TrustedDocumentsIntrospection && !c.Introspection {
		problems = append(problems, "TRUSTED_DOCUMENTS_INTROSPECTION=true lets introspection through, which INTROSPECTION=false turns off: set one")
	}
	if c.AuthJWKSRefresh <= 0 {
		problems = append(problems, "AUTH_JWKS_REFRESH must be positive")
	}
	if c.AuthAudience != "" && c.AuthAnyAudience {
		problems = append(problems, "AUTH_AUDIENCE and AUTH_ANY_AUDIENCE=true contradict each other: set one")
	}
	for name, v := range map[string]int{"MAX_QUERY_DEPTH": c.MaxDepth, "MAX_QUERY_COMPLEXITY": c.MaxComplexity,
		"MAX_QUERY_TOKENS": c.MaxTokens, "MAX_QUERY_ALIASES": c.MaxAliases, "MAX_QUERY_FIELDS": c.MaxFields, "APQ_CACHE_SIZE": c.APQCacheSize,
		"MAX_SUBSCRIPTIONS_PER_CONNECTION": c.MaxSubscriptionsPerConnection, "MAX_SUBSCRIPTIONS": c.MaxSubscriptions,
		"CHEAP_OPERATION_COST": c.CheapOperationCost} {
		if v < 1 {
			problems = append(problems, name+" must be at least 1")
		}
	}
	if c.OperationTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 {
		problems = append(problems, "OPERATION_TIMEOUT and HTTP_*_TIMEOUT must be positive")
	}
	if c.IdempotencyRetention <= 0 {
		problems = append(problems, "IDEMPOTENCY_RETENTION must be positive")
	}
	if c.ClientConcurrent < 0 || c.ClientCostPerSecond < 0 || c.ClientCostBurst < 0 {
		problems = append(problems, "CLIENT_MAX_CONCURRENT_OPERATIONS, CLIENT_COST_PER_SECOND and CLIENT_COST_BURST must not be negative (0: no bound)")
	}
	if c.ClientCostPerSecond > 0 && c.ClientCostBurst > 0 && c.ClientCostBurst < c.MaxComplexity {
		problems = append(problems, "CLIENT_COST_BURST must be at least MAX_QUERY_COMPLEXITY (a client could never run its costliest allowed query)")
	}
	// The first attempt (its operation, then its payload's reads) must end within its lease.
	// The first attempt (its operation, then its payload's reads) must end within its lease:
	// a committed payload reads for at most the rest of the lease (see app).
	if c.IdempotencyLease <= c.OperationTimeout {
		problems = append(problems, "IDEMPOTENCY_LEASE must be longer than OPERATION_TIMEOUT")
	}
	if c.MaxBodyBytes < 1024 {
		problems = append(problems, "MAX_BODY_BYTES must be at least 1024")
	}
	if c.WebsocketKeepAlive <= 0 || c.WebsocketInitTimeout <= 0 {
		problems = append(problems, "WS_KEEPALIVE and WS_INIT_TIMEOUT must be positive")
	}
	// Under 64 KiB the caches could keep next to nothing (an entry may use 1/32 of its bound).
	if c.QueryCacheBytes < 64<<10 || c.APQCacheBytes < 64<<10 {
		problems = append(problems, "QUERY_CACHE_BYTES and APQ_CACHE_BYTES must be at least 65536")
	}
	if c.SubscriptionBuffer < 1 {
		problems = append(problems, "SUBSCRIPTION_BUFFER must be at least 1")
	}
	if c.QueryCacheSize < 1 {
		problems = append(problems, "QUERY_CACHE_SIZE must be at least 1")
	}
	if _, err := c.Level(); err != nil {
		problems = append(problems, err.Error())
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		problems = append(problems, "LOG_FORMAT must be json or text")
	}
	if len(problems) > 0 {
		return fmt.Errorf("config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// OnOff is a switch written on/off or true/false (also 1/0).
type OnOff bool

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *OnOff) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "on", "true", "1":
		*o = true
	case "off", "false", "0":
		*o = false
	default:
		return fmt.Errorf("want on or off, got %q", b)
	}
	return nil
}

// Addr is the HTTP listen address.
func (c Config) Addr() string { return fmt.Sprintf("%s:%d", c.Host, c.Port) }

// Level is LOG_LEVEL as a slog level.
func (c Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error")
	}
	return l, nil
}
