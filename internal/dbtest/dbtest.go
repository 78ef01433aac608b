// Package dbtest gives each test package its own freshly created and migrated PostgreSQL
// database on the server named by TEST_DATABASE_URL (which `make test` starts), so packages run in
// parallel and never see each other's rows. Without TEST_DATABASE_URL tests fail: they never
// pass by skipping the database.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/wikigraph/wikigraph/internal/database"
)

var (
	shared    *bun.DB
	sharedURL string
)

// Main creates and migrates the package's database, runs the tests, then drops it. Call it from
// TestMain: func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }.
func Main(m *testing.M) int {
	ctx := context.Background()
	u, drop, err := create(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		return 1
	}
	defer drop()
	db, err := Open(u)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		return 1
	}
	defer db.Close()
	if _, err := database.Up(ctx, db); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: migrate:", err)
		return 1
	}
	shared, sharedURL = db, u
	return m.Run()
}

// DB returns the package's migrated database.
func DB(t testing.TB) *bun.DB {
	t.Helper()
	if shared == nil {
		t.Fatal("dbtest: call dbtest.Main from TestMain")
	}
	return shared
}

// URL returns the package's database URL.
func URL(t testing.TB) string {
	t.Helper()
	DB(t)
	return sharedURL
}

// Empty creates a new empty database (no migrations) for this test and returns its URL; it is
// dropped when the test ends.
func Empty(t testing.TB) string {
	t.Helper()
	u, drop, err := create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return u
}

// Open opens a pool on u the way the server does.
func Open(u string) (*bun.DB, error) {
	return database.Open(database.Options{
		URL: u, AppName: "wikigraph-test", MaxConns: 20, StatementTimeout: 30 * time.Second,
	})
}

func create(ctx context.Context) (dbURL string, drop func(), err error) {
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		return "", nil, fmt.Errorf("TEST_DATABASE_URL is not set: run the tests with `make test`, " +
			"or point it at a PostgreSQL server where databases may be created")
	}
	admin, err := Open(base)
	if err != nil {
		return "", nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "wikigraph_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create test database: %w", err)
	}
	parsed, err := url.Parse(base)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	parsed.Path = "/" + name
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	}
	return parsed.String(), drop, nil
}

// Migrated creates a new migrated database for this test or benchmark alone and returns a pool
// on it; both are closed and dropped when it ends.
func Migrated(t testing.TB) *bun.DB {
	t.Helper()
	db, err := Open(Empty(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := database.Up(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

// Server is a private PostgreSQL cluster for tests that stop or restart the database, which
// the shared test server must never do.
type Server struct {
	URL    string // the postgres maintenance database
	dir    string
	port   int
	script string
	opts   string // more server settings (PG_OPTS), e.g. a replica's apply delay
}

// NewServer starts a private cluster (scripts/pg) under /tmp on a free port; it is stopped and
// deleted when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	parent, err := os.MkdirTemp("", "wikigraph-private-pg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil { // the postgres user must reach the data
		t.Fatal(err)
	}
	s := &Server{dir: filepath.Join(parent, "data"), script: script}
	t.Cleanup(func() {
		_ = exec.Command(script, "stop", s.dir).Run()
		_ = os.RemoveAll(parent)
	})
	for attempt := 0; ; attempt++ {
		var b [2]byte
		_, _ = rand.Read(b[:])
		s.port = 40000 + (int(b[0])<<8|int(b[1]))%20000
		out, err := s.run("start", s.dir, strconv.Itoa(s.port))
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("start private PostgreSQL: %v: %s", err, out)
		}
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	return s
}

// Stop stops the server.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.run("stop", s.dir); err != nil {
		t.Fatalf("stop PostgreSQL: %v: %s", err, out)
	}
}

// Start starts the stopped server again on the same port.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if out, err := s.run("start", s.dir, strconv.Itoa(s.port)); err != nil {
		t.Fatalf("start PostgreSQL: %v: %s", err, out)
	}
}

func (s *Server) run(args ...string) ([]byte, error) {
	cmd := exec.Command(s.script, args...)
	cmd.Env = append(os.Environ(), "PG_OPTS=-c fsync=off -c synchronous_commit=off "+s.opts)
	return cmd.CombinedOutput()
}

// findScript finds scripts/pg at the module root, above the test's working directory.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "pg"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("dbtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Freeze stops every process of the server with SIGSTOP, as a hung host would look from outside:
// its port still accepts connections (the kernel queues them) and their data, but nothing
// answers, and no connection is refused or reset. Thaw (at the latest when the test ends)
// resumes them.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	pids := s.processes(t)
	t.Cleanup(func() { s.signal(pids, syscall.SIGCONT) })
	s.signal(pids, syscall.SIGSTOP)
}

// Thaw resumes the processes Freeze stopped.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	s.signal(s.processes(t), syscall.SIGCONT)
}

// processes are the server's postmaster and its children, the postmaster first (stopped first,
// it forks no child after the list is read).
func (s *Server) processes(t testing.TB) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	pids := []int{postmaster}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if fields := strings.Fields(string(stat[i+1:])); i > 0 && len(fields) > 1 && fields[1] == strconv.Itoa(postmaster) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (s *Server) signal(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}
