# wikigraph: `make run` serves with a local PostgreSQL it manages; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The local development database: its data stays in PGDATA_DIR (git-ignored) across runs.
PGDATA_DIR ?= $(CURDIR)/.pgdata
PG_PORT    ?= 54329
PG_DB      ?= wikigraph
BIN        := bin/wikigraph
GO_TEST_FLAGS ?= -race -count=1 -timeout 10m
AUDIT_DIR  := test/http-audit
AUDIT_DEPS := $(AUDIT_DIR)/node_modules/.package-lock.json

.PHONY: help run build test test-deps frontend-check relay-check playground bench bench-peer bench-subs attack gobench soak generate check-generate vet db db-stop cluster cluster-stop cluster-deps bench-cluster migrate-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## build the server binary into bin/
	CGO_ENABLED=0 go build -trimpath -o $(BIN) .

# With DATABASE_URL set, the server uses that database and no local one is started.
run: build ## serve on :8080 (PORT) with a local PostgreSQL, unless DATABASE_URL is set
ifneq ($(strip $(DATABASE_URL)),)
	exec ./$(BIN)
else
	@scripts/pg start "$(PGDATA_DIR)" $(PG_PORT) $(PG_DB)
	DATABASE_URL="$$(scripts/pg url $(PG_PORT) $(PG_DB))" exec ./$(BIN)
endif

db: ## start the local PostgreSQL (initialised on first use) and print its URL
	@scripts/pg start "$(PGDATA_DIR)" $(PG_PORT) $(PG_DB)
	@scripts/pg url $(PG_PORT) $(PG_DB)

db-stop: ## stop the local PostgreSQL
	@scripts/pg stop "$(PGDATA_DIR)"

test: check-generate frontend-check relay-check test-deps $(AUDIT_DEPS) ## every check and test, against a throwaway PostgreSQL (or TEST_DATABASE_URL)
	scripts/pg with-test-db go test $(GO_TEST_FLAGS) ./...

# The GraphQL over HTTP working group's conformance audit (npm graphql-http, pinned in its own
# workspace), which TestGraphQLOverHTTPAudit runs against a test server; installed again whenever
# its manifest or lockfile changes.
$(AUDIT_DEPS): $(AUDIT_DIR)/package.json $(AUDIT_DIR)/package-lock.json
	cd $(AUDIT_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The schema-first frontend workflow: TypeScript types generated from schema.graphqls for the
# operations in examples/ must be current (committed) and must type-check.
frontend-check: ## regenerate examples/generated, fail if it was stale, then tsc --noEmit
	@cd examples && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@sum() { find examples/generated -type f | LC_ALL=C sort | xargs sha256sum; }; \
	  before=$$(sum); (cd examples && npx graphql-codegen --config codegen.yml --silent) && after=$$(sum); \
	  [ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after"); \
	    echo "examples/generated was stale: the codegen changed the files above; commit them"; exit 1; }
	cd examples && npx tsc --noEmit

# Relay (issue 14): relay-compiler, pinned in examples/relay, compiles the operations of
# examples/relay/src against the schema into src/__generated__ (git-ignored, made here), which
# the Go test TestRelayClient runs with relay-runtime against a test server. relay-compiler 21
# reads a schema only from a file named *.graphql (a .graphqls, or a symlink, it takes for an
# empty schema), so it compiles against a copy (git-ignored).
relay-check: ## compile examples/relay with the real relay-compiler against schema.graphqls
	@cd examples/relay && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@cp schema.graphqls examples/relay/schema.graphql
	@cd examples/relay && rm -rf src/__generated__ && npx relay-compiler >relay-compiler.log 2>&1 || { cat relay-compiler.log; exit 1; }

# The browser test drives Debian's chromium, the pooler tests Debian's pgbouncer (each test starts
# its own; the package's service is not used); install them when missing (as root, as CI runs).
test-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	  else echo "the browser test needs chromium: sudo apt-get install chromium"; exit 1; fi; }
	@command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing pgbouncer for the pooler tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer) >/dev/null; \
	  else echo "the pooler tests need pgbouncer: sudo apt-get install pgbouncer"; exit 1; fi; }

# The local cluster (scripts/cluster): primary, streaming replica, pgbouncer, three instances and
# HAProxy on loopback, in .cluster/ (git-ignored). Debian's haproxy and pgbouncer are installed
# when missing (as root, as make test does); each is started on its own, not as a service.
cluster: build cluster-deps ## primary, replica, pgbouncer, 3 instances and HAProxy on loopback (http://127.0.0.1:8090/)
	@scripts/cluster start

# The mixed load through the local cluster (issue 13): clients write (one operation in 10) and read
# their writes back through HAProxy, with Consistency-Tokens and then without; prints the share of
# reads the replica served, stale reads, read latency and the token searches (wikigraph_db_token_wait_seconds).
# The cluster is started if needed and left running; REPLICA_TOKEN_WAIT=50ms make cluster-stop bench-cluster
# measures with a wait.
CLUSTER_METRICS := http://127.0.0.1:9191/metrics,http://127.0.0.1:9192/metrics,http://127.0.0.1:9193/metrics
bench-cluster: cluster ## the mixed load with and without Consistency-Tokens through the local cluster (BENCH_FLAGS)
	go run ./cmd/bench -mixed http://127.0.0.1:8090/query -mixed-metrics $(CLUSTER_METRICS) -c 16 -duration 10s $(BENCH_FLAGS)

cluster-stop: ## stop the local cluster
	@scripts/cluster stop

cluster-deps:
	@for pkg in haproxy pgbouncer; do \
	  command -v $$pkg >/dev/null 2>&1 || [ -x /usr/sbin/$$pkg ] || { \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "installing $$pkg for the local cluster"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg) >/dev/null; \
	    else echo "the local cluster needs $$pkg: sudo apt-get install $$pkg"; exit 1; fi; }; \
	done

playground: ## rebuild the embedded GraphiQL from web/playground (needs Node.js and npm)
	cd web/playground && npm ci --no-audit --no-fund && npx vite build

# The performance suite: seeds 100k users and 500k items in a throwaway PostgreSQL, drives the
# built server and pgbench at each concurrency, prints the table and writes bin/bench.json.
# BENCH_FLAGS passes options to cmd/bench (e.g. -duration 10s -c 32 -ops 'user\(id\)'); with
# -peer postgraphile it also drives PostGraphile where it can (the workspace is installed first).
BENCH_FLAGS ?=
PEER_DIR    := bench/postgraphile
PEER_DEPS   := $(PEER_DIR)/node_modules/.package-lock.json
bench: build $(if $(findstring -peer,$(BENCH_FLAGS)),$(PEER_DEPS)) ## the load suite against the built server and pgbench (BENCH_FLAGS), then the Go benchmarks
	scripts/pg with-test-db go run ./cmd/bench -server $(BIN) $(BENCH_FLAGS)
	$(MAKE) --no-print-directory gobench

# The peer (issue 12): PostGraphile 5 and the node that runs it, pinned in an npm workspace,
# installed again whenever its manifest or lockfile changes. Only the operations both servers
# express: user by id, the first 10 users, and the nested connection query; pgbench too unless
# BENCH_FLAGS has -no-pgbench. The JSON goes to bin/bench-peer.json.
$(PEER_DEPS): $(PEER_DIR)/package.json $(PEER_DIR)/package-lock.json
	cd $(PEER_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bench-peer: build $(PEER_DEPS) ## wikigraph against PostGraphile 5 (and pgbench) on the queries both serve (BENCH_FLAGS)
	scripts/pg with-test-db go run ./cmd/bench -server $(BIN) -peer postgraphile -peer-dir $(PEER_DIR) \
	  -ops '^(user\(id\)|users\(limit:10\)|nested connection)' -out bin/bench-peer.json $(BENCH_FLAGS)

# Live updates at scale (issue 16): SUBS subscribers to userCreated, each a graphql-ws client
# (npm graphql-ws and ws, pinned in bench/subs, installed again whenever its lockfile changes) on
# a websocket of its own from a loopback address of its own, SUBS_PER_PROCESS to a node process,
# SSE of them over server-sent events; then createUser at RATE per second for DURATION. Prints
# the table (events lost fail the run) and writes bin/bench-subs.json. IDLE=1: subscribed and
# nothing sent, for memory and goroutines. The soft open-files limit is raised to the hard one.
SUBS             ?= 1000
SSE              ?= 0
RATE             ?= 20
DURATION         ?= 60s
SUBS_PER_PROCESS ?= 2500
IDLE             ?=
SUBS_DIR  := bench/subs
SUBS_DEPS := $(SUBS_DIR)/node_modules/.package-lock.json
$(SUBS_DEPS): $(SUBS_DIR)/package.json $(SUBS_DIR)/package-lock.json
	cd $(SUBS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bench-subs: build $(SUBS_DEPS) ## SUBS graphql-ws subscribers, createUser at RATE/s for DURATION: lost events, delivery latency, RSS, goroutines (IDLE=1, BENCH_FLAGS)
	ulimit -n "$$(ulimit -Hn)"; scripts/pg with-test-db go run ./cmd/bench -server $(BIN) -subs $(SUBS) -subs-sse $(SSE) \
	  -subs-rate $(RATE) -subs-duration $(DURATION) -subs-per-process $(SUBS_PER_PROCESS) $(if $(IDLE),-subs-idle) $(BENCH_FLAGS)

# The hostile-client suite (issue 17): each attack against a freshly started server with its
# defaults on a throwaway PostgreSQL, bounded in requests and time; prints the table (Markdown)
# and writes bin/attack.json. ATTACK_FLAGS passes options to cmd/bench -attack (e.g.
# -ops 'fragment', -attack-timeout 30s, -attack-docs 797).
ATTACK_FLAGS ?=
attack: build ## replay the hostile-client attacks against the built server: answer, CPU, RSS, a cheap query's latency meanwhile
	scripts/pg with-test-db go run ./cmd/bench -server $(BIN) -attack $(ATTACK_FLAGS)

BENCH ?= .
gobench: ## the Go benchmarks only (BENCH=regexp), against a throwaway PostgreSQL
	scripts/pg with-test-db go test -run '^$$' -bench '$(BENCH)' -benchmem -count=1 ./...

SOAK_DURATION ?= 3m
soak: ## bounded soak of the built server: mixed reads and writes at concurrency 64 (SOAK_DURATION)
	scripts/pg with-test-db env SOAK_DURATION=$(SOAK_DURATION) go test -count=1 -run '^TestSoak$$' -v -timeout 30m .

generate: ## regenerate graph/ from schema.graphqls
	go generate ./...

check-generate: ## fail if generated code is stale
	@sum() { find graph go.mod go.sum -type f | LC_ALL=C sort | xargs sha256sum; }; \
	  before=$$(sum); go generate ./... && after=$$(sum); \
	  [ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after"); \
	    echo "generated code was stale: 'go generate ./...' changed the files above; commit them"; exit 1; }

vet: ## go vet and gofmt
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

clean: ## remove build output (not the database)
	rm -rf bin
