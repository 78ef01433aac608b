package dbtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NewReplica makes a streaming replica of the private server primary (pg_basebackup -R, which
// the server's defaults allow: wal_level replica, WAL senders, initdb's replication lines for
// 127.0.0.1) and starts it on a free port, applying each transaction delay after its commit on
// the primary (recovery_min_apply_delay; 0: at once). It is stopped and deleted when the test
// ends; Stop and Start stop and restart it. Its URL is of the maintenance database: the
// replica has the primary's databases, so change the path to reach another.
func NewReplica(t testing.TB, primary *Server, delay time.Duration) *Server {
	t.Helper()
	parent, err := os.MkdirTemp("", "wikigraph-replica-pg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil { // the postgres user must reach the data
		t.Fatal(err)
	}
	r := &Server{dir: filepath.Join(parent, "data"), script: primary.script, port: freePort(t),
		opts: fmt.Sprintf("-c recovery_min_apply_delay=%dms", delay.Milliseconds())}
	t.Cleanup(func() {
		_ = exec.Command(r.script, "stop", r.dir).Run()
		_ = os.RemoveAll(parent)
	})
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", r.dir, "-R", "-X", "stream", "-c", "fast")
	if os.Getuid() == 0 { // the data must be the postgres user's, who runs the server
		cred := postgresUser(t)
		if err := os.Chown(r.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v: %s", err, out)
	}
	if out, err := r.run("start", r.dir, strconv.Itoa(r.port)); err != nil {
		t.Fatalf("start replica: %v: %s", err, out)
	}
	r.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", r.port)
	return r
}

// Database returns the URL of database name on s.
func (s *Server) Database(name string) string {
	return strings.Replace(s.URL, "/postgres?", "/"+name+"?", 1)
}
