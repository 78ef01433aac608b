package main

// The pooled side (-pooler): the same server binary through pgbouncer in transaction mode, as a
// deployment behind a pooler runs it (DB_PREPARED_STATEMENTS=off, LISTEN and migrations on a
// direct connection), driven in the same rounds as the direct one.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startPooled starts pgbouncer in front of the suite's database (as many server connections as
// the server's pool has) and a second server through it; both are stopped with stop.
func startPooled(ctx context.Context, binary string, env benchEnv, pprof bool) (srv *serverProc, stop func(), desc string, err error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
		if _, serr := os.Stat(bin); serr != nil {
			return nil, nil, "", fmt.Errorf("-pooler needs pgbouncer (make test installs it as root; else sudo apt-get install pgbouncer)")
		}
	}
	version, _ := exec.Command(bin, "--version").Output()
	dir, err := os.MkdirTemp("", "wikigraph-bench-pgbouncer")
	if err != nil {
		return nil, nil, "", err
	}
	_ = os.Chmod(dir, 0o755) // the postgres user reads it when we are root
	port, err := freePort()
	if err != nil {
		return nil, nil, "", err
	}
	poolSize := 8 // the server's DB_MAX_CONNS default
	if n, err := strconv.Atoi(os.Getenv("DB_MAX_CONNS")); err == nil && n > 0 {
		poolSize = n
	}
	role := env.dbUser
	if role == "" {
		role = "postgres"
	}
	conf := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(fmt.Sprintf("%q \"\"\n", role)), 0o644); err != nil {
		return nil, nil, "", err
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
`, env.dbHost, env.dbPort, port, filepath.Join(dir, "userlist.txt"), poolSize)), 0o644); err != nil {
		return nil, nil, "", err
	}
	bouncer := &serverProc{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	cmd := exec.Command(bin, conf)
	if os.Getuid() == 0 { // pgbouncer refuses to run as root
		u, err := osUser("postgres")
		if err != nil {
			return nil, nil, "", err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u}
	}
	listening := func() bool {
		c, err := net.DialTimeout("tcp", bouncer.addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}
	if err := bouncer.launch(ctx, cmd, filepath.Join(env.workDir, "pgbouncer.log"), listening, 10*time.Second); err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, "", fmt.Errorf("pgbouncer: %w", err)
	}
	stopBouncer := func() { bouncer.stop(); _ = os.RemoveAll(dir) }
	pooled := env
	u, _ := url.Parse(env.dbURL)
	u.Host = bouncer.addr
	pooled.dbURL = u.String()
	pooled.serverLog = "server-pooled.log"
	pooled.serverEnv = []string{"DB_PREPARED_STATEMENTS=off", "DATABASE_DIRECT_URL=" + env.dbURL}
	srv, err = startServer(ctx, binary, pooled, pprof, true)
	if err != nil {
		stopBouncer()
		return nil, nil, "", err
	}
	desc = fmt.Sprintf("%s, transaction mode, %d server connections; the server with DB_PREPARED_STATEMENTS=off",
		strings.TrimSpace(strings.SplitN(string(version), "\n", 2)[0]), poolSize)
	return srv, func() { srv.stop(); stopBouncer() }, desc, nil
}

func osUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer refuses to run as root and there is no %s user: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
