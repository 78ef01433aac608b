package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var failedRE = regexp.MustCompile(`number of failed transactions: (\d+)`)

// pgbenchResult is what one pgbench run measured inside its window.
type pgbenchResult struct {
	loadResult
	ClientCPU time.Duration // pgbench's own CPU time, its share of the window
	DBCPU     time.Duration // the cluster's CPU time inside the window
}

// runPgbench runs op's script with pgbench in prepared mode at this concurrency for warmup+window
// and reads the per-transaction log to keep the transactions that ended inside the window.
func runPgbench(ctx context.Context, env benchEnv, op operation, concurrency int, warmup, window time.Duration, run string) (pgbenchResult, error) {
	dir, err := os.MkdirTemp(env.workDir, "pgbench-")
	if err != nil {
		return pgbenchResult{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "script.sql")
	if err := os.WriteFile(script, []byte(op.pgbench), 0o644); err != nil {
		return pgbenchResult{}, err
	}
	threads := min(concurrency, 2)
	// One second more than the window: pgbench must still run (its backends alive) when the
	// window's CPU times are read; the log says which transactions fell inside the window.
	total := int((warmup+window+time.Second-1)/time.Second) + 1
	cmd := exec.CommandContext(ctx, "pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(concurrency),
		"-j", strconv.Itoa(threads), "-T", strconv.Itoa(total), "-f", script,
		"-D", "n=0", "-D", "run="+run, "-l", "--log-prefix", filepath.Join(dir, "log"),
		"-h", env.dbHost, "-p", env.dbPort, "-U", env.dbUser, env.dbName)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench: %w", err)
	}
	time.Sleep(warmup)
	before := clusterCPU(env.postmaster)
	time.Sleep(window)
	after := clusterCPU(env.postmaster)
	dbCPU := cpuSince(before, after)
	runErr := cmd.Wait()
	var res pgbenchResult
	res.DBCPU = dbCPU
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok { // its share of the window
		whole := time.Duration(u.Utime.Nano() + u.Stime.Nano())
		res.ClientCPU = time.Duration(float64(whole) * window.Seconds() / time.Since(start).Seconds())
	}
	if m := failedRE.FindSubmatch(out.Bytes()); m != nil {
		res.Errors, _ = strconv.Atoi(string(m[1]))
	}
	if runErr != nil {
		res.Errors += bytes.Count(out.Bytes(), []byte(" aborted"))
		res.FirstErr = lastLines(out.String(), 5)
		if res.Errors == 0 {
			return res, fmt.Errorf("pgbench: %v\n%s", runErr, out.String())
		}
	}
	from, to := start.Add(warmup), start.Add(warmup+window)
	logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	for _, name := range logs {
		if err := readPgbenchLog(name, from, to, &res.loadResult); err != nil {
			return res, err
		}
	}
	return res, nil
}

// readPgbenchLog reads lines "client transaction latency_us script epoch_s epoch_us".
func readPgbenchLog(name string, from, to time.Time, res *loadResult) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 6 {
			continue
		}
		sec, _ := strconv.ParseInt(fields[4], 10, 64)
		usec, _ := strconv.ParseInt(fields[5], 10, 64)
		end := time.Unix(sec, usec*1000)
		if end.Before(from) || end.After(to) {
			continue
		}
		res.Requests++
		latency, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil { // "failed" or "skipped"
			continue
		}
		res.Latencies = append(res.Latencies, latency*1000)
	}
	return s.Err()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
