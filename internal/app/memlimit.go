package app

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Shares of the memory a process may have that TuneGC takes for Go's soft limit. A cgroup's
// limit is the container's, where the server is usually the one process: 75% leaves a quarter
// for what Go does not count (the binary's text, C libraries, the kernel's socket buffers are
// counted by the cgroup and not by Go) and for the collector to catch up before the OOM killer
// acts. A machine's memory is shared with whatever else runs there (PostgreSQL in make run and
// in the benchmarks, the page cache): half of it.
const (
	cgroupShare  = 0.75
	machineShare = 0.50
	// fallbackLimit is the soft limit when neither can be read.
	fallbackLimit = 64 << 20
)

// memoryFiles are where the memory available to the process is read; tests point them at
// files of their own.
type memoryFiles struct {
	procCgroup string // /proc/self/cgroup: the process's cgroup path in each hierarchy
	cgroupRoot string // /sys/fs/cgroup: v2 unified, or v1 with a memory/ hierarchy under it
	meminfo    string // /proc/meminfo
}

var systemMemoryFiles = memoryFiles{procCgroup: "/proc/self/cgroup", cgroupRoot: "/sys/fs/cgroup", meminfo: "/proc/meminfo"}

// memoryLimit is a soft memory limit and what it was derived from.
type memoryLimit struct {
	bytes  int64
	of     int64  // the memory it is a share of (0: none)
	source string // "cgroup" or "machine"; "" when neither could be read
}

func (l memoryLimit) String() string {
	switch l.source {
	case "cgroup":
		return fmt.Sprintf("soft memory limit %s, %.0f%% of the cgroup's %s limit", bytesString(l.bytes), 100*cgroupShare, bytesString(l.of))
	case "machine":
		return fmt.Sprintf("soft memory limit %s, %.0f%% of the machine's %s (no cgroup memory limit)", bytesString(l.bytes), 100*machineShare, bytesString(l.of))
	}
	return fmt.Sprintf("soft memory limit %s (neither a cgroup limit nor the machine's memory could be read)", bytesString(l.bytes))
}

// deriveMemoryLimit reads the cgroup's memory limit (see cgroupLimit) and the machine's memory
// (MemTotal). A cgroup limit not below the machine's memory is no limit.
func deriveMemoryLimit(f memoryFiles) memoryLimit {
	total := memTotal(f.meminfo)
	if limit := cgroupLimit(f); limit > 0 && (total == 0 || limit < total) {
		return memoryLimit{bytes: int64(float64(limit) * cgroupShare), of: limit, source: "cgroup"}
	}
	if total > 0 {
		return memoryLimit{bytes: int64(float64(total) * machineShare), of: total, source: "machine"}
	}
	return memoryLimit{bytes: fallbackLimit}
}

// cgroupLimit is the memory limit of the process's cgroup in bytes, 0 when none is set or none
// can be read: the smallest limit along its path from its own cgroup up to the hierarchy's
// root, as the kernel enforces the smallest (a systemd slice's MemoryMax, a Kubernetes pod's
// limit above a container's "max"). v2 reads memory.max, v1 memory.limit_in_bytes; "max", and
// v1's "unlimited" (2^63 rounded down to a page: anything from 2^62 up), are no limit there.
func cgroupLimit(f memoryFiles) int64 {
	v2Path, v1Path := "/", "/"
	if data, err := os.ReadFile(f.procCgroup); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			// hierarchy-ID:controllers:path
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				v2Path = parts[2]
			case hasController(parts[1], "memory"):
				v1Path = parts[2]
			}
		}
	}
	var smallest int64
	walk := func(root, path, file string) {
		// Clean under "/": a path cannot climb above the hierarchy's mount.
		for dir := filepath.Clean("/" + path); ; dir = filepath.Dir(dir) {
			if data, err := os.ReadFile(filepath.Join(root, dir, file)); err == nil {
				n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
				if err == nil && n > 0 && n < 1<<62 && (smallest == 0 || n < smallest) {
					smallest = n
				}
			}
			if dir == "/" {
				return
			}
		}
	}
	walk(f.cgroupRoot, v2Path, "memory.max")
	walk(filepath.Join(f.cgroupRoot, "memory"), v1Path, "memory.limit_in_bytes")
	return smallest
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// memTotal is MemTotal of /proc/meminfo in bytes (0 when unreadable).
func memTotal(meminfo string) int64 {
	file, err := os.Open(meminfo)
	if err != nil {
		return 0
	}
	defer file.Close()
	s := bufio.NewScanner(file)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<62:
		return "none"
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// TuneGC sets the garbage collector for a server, unless the standard GOGC and GOMEMLIMIT
// variables say otherwise, and logs the memory limit it runs under: collect when the heap has
// grown by 400% rather than Go's 100% (15–40% more requests/s in make bench, where collection
// was a fifth of the CPU time) while the live heap is small, by 64 MiB once it is larger (paceGC),
// and keep the process's Go memory under a soft limit derived from
// what the process may use: a share of its cgroup's memory limit, else of the machine's memory
// (the collector works harder as the heap nears it, and only then). A fixed 64 MiB was crossed by
// about 1,000 subscribers, past which the collector ran without pause (issue 16).
func TuneGC(logger *slog.Logger) {
	tuneGC(logger, systemMemoryFiles)
	if os.Getenv("GOGC") == "" {
		go paceGC(context.Background(), time.Second) // for the life of the process
	}
}

func tuneGC(logger *slog.Logger, files memoryFiles) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(maxGCPercent)
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		// The runtime read it at start; -1 reads the limit without changing it.
		logger.Info("GOMEMLIMIT set: soft memory limit "+bytesString(debug.SetMemoryLimit(-1)), "GOMEMLIMIT", v)
		return
	}
	limit := deriveMemoryLimit(files)
	debug.SetMemoryLimit(limit.bytes)
	logger.Info("GOMEMLIMIT unset: "+limit.String(), "soft_memory_limit_bytes", limit.bytes, "source", limit.source)
}

// The collector's growth between collections: 400% of the live heap while that is small (the
// CPU a collection costs is in proportion to the live heap, and query load keeps it small), but
// no more than gcHeadroom beyond it once it is large, down to 25%: 10,000 subscribers hold
// ~300 MB that 400% let grow to 1 GB of RSS between collections (make bench-subs, issue 16).
const (
	maxGCPercent = 400
	minGCPercent = 25
	gcHeadroom   = 64 << 20
)

// gcPercent is the growth that lets the heap grow by gcHeadroom over what the collector scans
// (the live heap and the goroutines' stacks), within [minGCPercent, maxGCPercent].
func gcPercent(live, stacks uint64) int {
	scanned := live + stacks
	if scanned == 0 {
		return maxGCPercent
	}
	return int(min(max(100*gcHeadroom/scanned, minGCPercent), maxGCPercent))
}

// paceGC sets the collector's growth (gcPercent) from the live heap, every interval, until ctx
// ends.
func paceGC(ctx context.Context, interval time.Duration) {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}}
	last := maxGCPercent
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		if samples[0].Value.Kind() != metrics.KindUint64 || samples[1].Value.Kind() != metrics.KindUint64 {
			return // not this runtime's
		}
		if p := gcPercent(samples[0].Value.Uint64(), samples[1].Value.Uint64()); p != last {
			debug.SetGCPercent(p)
			last = p
		}
	}
}
