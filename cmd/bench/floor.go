package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/wikigraph/wikigraph/internal/config"
)

// The floor (-floor): cmd/bench/floor, a net/http server with no GraphQL that answers each
// request with one prepared statement through database/sql and bun's pgdriver — the statement of
// the operation's pgbench script, the one our server sends — and the rows written as our JSON.
// It is what any Go server over pgdriver costs on this machine. The suite builds it, starts it
// with our server's pool size, and drives it with the same requests and checks, in the same
// rounds as our server and pgbench.

// floorRoute is where the floor answers an operation, and the root field of its answer.
type floorRoute struct{ path, field string }

// floorOps are the operations the floor answers: one statement each, and a user's fields.
var floorOps = map[string]floorRoute{
	"user(id)":        {"/user", "user"},
	"users(limit:10)": {"/users10", "users"},
	"users(limit:20)": {"/users20", "users"},
}

// floorStatement is the statement of op's pgbench script for the floor: the meta-commands
// dropped and :id, pgbench's variable, as the statement's parameter $1.
func floorStatement(op operation) (string, error) {
	var sql []string
	for _, line := range strings.Split(op.pgbench, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, `\`) {
			sql = append(sql, line)
		}
	}
	stmt := strings.TrimSuffix(strings.Join(sql, " "), ";")
	stmt = strings.ReplaceAll(stmt, ":id", "$1")
	if stmt == "" || strings.Contains(stmt, ";") || strings.Contains(stmt, ":") {
		return "", fmt.Errorf("%s: the floor runs one statement with at most :id, not %q", op.Name, op.pgbench)
	}
	return stmt, nil
}

// buildFloor compiles cmd/bench/floor into the work folder, as make build compiles the server.
func buildFloor(ctx context.Context, workDir string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(workDir, "floor"))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/bench/floor")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bench/floor (run the suite from the repository's root): %v\n%s", err, out)
	}
	return bin, nil
}

// startFloor runs the floor binary on a free loopback port with a route for each operation of
// floorOps, its pool the size our server's is (DB_MAX_CONNS, or its default), and waits until it
// is ready. It returns the process and what ran.
func startFloor(ctx context.Context, binary string, env benchEnv) (*serverProc, string, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	s := &serverProc{addr: "127.0.0.1:" + strconv.Itoa(port)}
	args := []string{"-addr", s.addr, "-db", env.dbURL, "-conns", strconv.Itoa(cfg.DBMaxConns)}
	for _, op := range operations {
		if r, ok := floorOps[op.Name]; ok {
			stmt, err := floorStatement(op)
			if err != nil {
				return nil, "", err
			}
			args = append(args, r.path+"="+r.field+":"+stmt)
		}
	}
	if err := s.launch(ctx, exec.Command(binary, args...), filepath.Join(env.workDir, "floor.log"), s.ready, 30*time.Second); err != nil {
		return nil, "", fmt.Errorf("floor: %w", err)
	}
	return s, fmt.Sprintf("net/http + database/sql + pgdriver %s, %d connections, %s", pgdriverVersion(), cfg.DBMaxConns, runtime.Version()), nil
}

// at is the floor serving op: the same process, at op's path.
func (s *serverProc) at(r floorRoute) *serverProc {
	c := *s
	c.path = r.path
	return &c
}

// pgdriverVersion is the version of pgdriver the suite (and so the floor) is built with.
func pgdriverVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/uptrace/bun/driver/pgdriver" {
				return m.Version
			}
		}
	}
	return "(unknown version)"
}
