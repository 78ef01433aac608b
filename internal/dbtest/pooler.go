package dbtest

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Pooler is a pgbouncer in transaction pooling mode in front of the test server, on a free
// loopback port: each transaction of a client may run on another server connection, and its
// few server connections are shared by all its clients, as in production behind pgbouncer.
type Pooler struct {
	addr string
	logs *lockedBuffer
}

// PoolerServerConns is how many server connections the pooler opens per database: fewer
// than its clients have, so that they share them.
const PoolerServerConns = 4

// NewPooler starts pgbouncer (Debian's, which `make test` installs) in front of the server
// of TEST_DATABASE_URL, for every database on it; it is stopped when the test ends. As root it
// runs as the postgres user (pgbouncer refuses to run as root). The test is skipped only when
// pgbouncer is not installed.
func NewPooler(t testing.TB) *Pooler {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			t.Skip("pgbouncer is not installed (make test installs it as root; else: sudo apt-get install pgbouncer)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	base, err := url.Parse(os.Getenv("TEST_DATABASE_URL"))
	if err != nil || base.Host == "" {
		t.Fatalf("dbtest: TEST_DATABASE_URL %q is not a postgres://host:port/ URL", os.Getenv("TEST_DATABASE_URL"))
	}
	dir, err := os.MkdirTemp("", "wikigraph-pgbouncer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// Readable by the postgres user when we are root: pgbouncer only reads its files.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	userName := base.User.Username()
	if userName == "" {
		userName = "postgres"
	}
	password, _ := base.User.Password()
	authFile := filepath.Join(dir, "userlist.txt")
	writeFile(t, authFile, fmt.Sprintf("%q %q\n", userName, password))
	host, port, err := net.SplitHostPort(base.Host)
	if err != nil {
		host, port = base.Host, "5432"
	}
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		cred = postgresUser(t)
	}
	for attempt := 0; ; attempt++ {
		p := &Pooler{logs: &lockedBuffer{}}
		listenPort := freePort(t)
		conf := filepath.Join(dir, "pgbouncer.ini")
		// trust over loopback, as the test server itself; no Unix socket, no log or pid file.
		writeFile(t, conf, fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
`, host, port, listenPort, authFile, PoolerServerConns))
		cmd := exec.Command(bin, conf)
		cmd.Stdout, cmd.Stderr = p.logs, p.logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start pgbouncer: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(listenPort))
		if waitListening(p.addr, exited) {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
				if t.Failed() {
					t.Logf("pgbouncer's log:\n%s", p.logs)
				}
			})
			return p
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 4 {
			t.Fatalf("pgbouncer did not start: %s", p.logs)
		}
	}
}

// URL returns u, a URL of a database on the test server, through the pooler.
func (p *Pooler) URL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	parsed.Host = p.addr
	return parsed.String()
}

// Logs returns what pgbouncer has logged so far.
func (p *Pooler) Logs() string { return p.logs.String() }

func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false // e.g. the port was taken meanwhile
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func postgresUser(t testing.TB) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("pgbouncer refuses to run as root and there is no postgres user: %v", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.b.String())
}
