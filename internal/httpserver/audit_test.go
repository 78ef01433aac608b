package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/dbtest"
)

// The GraphQL over HTTP working group's own conformance audit (graphql-http's serverAudits, npm
// graphql-http pinned in test/http-audit) against a whole server on 127.0.0.1: every MUST and
// every SHOULD passes.
func TestGraphQLOverHTTPAudit(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: this test runs test/http-audit/audit.mjs with Node.js")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "http-audit"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-http")); err != nil {
		t.Fatalf("test/http-audit/node_modules has no graphql-http (%v): `make test` installs it (npm ci in test/http-audit)", err)
	}
	in := startInstance(t, dbtest.URL(t))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "audit.mjs", "http://"+in.base+"/query")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()

	type result struct {
		ID, Status, Name, Reason string
		ResponseStatus           int
		ContentType, Body        string
	}
	var results []result
	for line := range strings.Lines(string(out)) {
		var r result
		require.NoError(t, json.Unmarshal([]byte(line), &r), "line %q", line)
		results = append(results, r)
	}
	require.NotEmpty(t, results, "node audit.mjs printed no results: %v: %s", runErr, stderr.String())
	counts := map[string][2]int{} // by level: passed, failed
	for _, r := range results {
		level, _, _ := strings.Cut(r.Name, " ")
		c := counts[level]
		if r.Status == "ok" {
			c[0]++
		} else {
			c[1]++
			if level != "MAY" {
				t.Errorf("%s %s: %s (answered %d, %s: %s)", r.ID, r.Name, r.Reason, r.ResponseStatus, r.ContentType, r.Body)
			} else {
				t.Logf("MAY not done: %s %s: %s", r.ID, r.Name, r.Reason)
			}
		}
		counts[level] = c
	}
	for _, level := range []string{"MUST", "SHOULD", "MAY"} {
		t.Logf("%s: %d of %d passed", level, counts[level][0], counts[level][0]+counts[level][1])
	}
	assert.Greater(t, counts["MUST"][0], 10, "the audit ran its MUSTs")
	if !t.Failed() {
		assert.NoError(t, runErr, "audit.mjs: %s", stderr.String())
	}
}
