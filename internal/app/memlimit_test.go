package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeMemory writes the files deriveMemoryLimit reads under a temporary root: files maps a path
// relative to it (proc/self/cgroup, proc/meminfo, sys/fs/cgroup/...) to its content.
func fakeMemory(t *testing.T, files map[string]string) memoryFiles {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	return memoryFiles{
		procCgroup: filepath.Join(root, "proc/self/cgroup"),
		cgroupRoot: filepath.Join(root, "sys/fs/cgroup"),
		meminfo:    filepath.Join(root, "proc/meminfo"),
	}
}

const meminfo24GiB = "MemTotal:       25165824 kB\nMemFree:        19308000 kB\n"

func TestDeriveMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		source string
		says   string
	}{
		{
			name: "cgroup v2 in its own namespace",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "2147483648\n",
				"proc/meminfo":             meminfo24GiB,
			},
			want: 1536 << 20, source: "cgroup", says: "soft memory limit 1.5 GiB, 75% of the cgroup's 2 GiB limit",
		},
		{
			name: "cgroup v2, the process's own cgroup below the root",
			files: map[string]string{
				"proc/self/cgroup":                       "0::/kubepods/pod1\n",
				"sys/fs/cgroup/memory.max":               "max\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max": "536870912\n",
				"proc/meminfo":                           meminfo24GiB,
			},
			want: 384 << 20, source: "cgroup", says: "soft memory limit 384 MiB, 75% of the cgroup's 512 MiB limit",
		},
		{
			name: "cgroup v2 without a limit",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "max\n",
				"proc/meminfo":             meminfo24GiB,
			},
			want: 12 << 30, source: "machine", says: "soft memory limit 12 GiB, 50% of the machine's 24 GiB (no cgroup memory limit)",
		},
		{
			name: "cgroup v1 with a limit",
			files: map[string]string{
				"proc/self/cgroup":                                      "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
				"proc/meminfo": meminfo24GiB,
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name: "cgroup v1 unlimited (this machine's case)",
			files: map[string]string{
				"proc/self/cgroup":                                            "4:memory:/process_api/c70d\n0::/\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":                  "9223372036854771712\n",
				"sys/fs/cgroup/memory/process_api/c70d/memory.limit_in_bytes": "9223372036854771712\n",
				"proc/meminfo": meminfo24GiB,
			},
			want: 12 << 30, source: "machine",
		},
		{
			name: "a cgroup limit above the machine's memory is none",
			files: map[string]string{
				"sys/fs/cgroup/memory.max": "68719476736\n",
				"proc/meminfo":             meminfo24GiB,
			},
			want: 12 << 30, source: "machine",
		},
		{
			name: "a cgroup limit without meminfo",
			files: map[string]string{
				"sys/fs/cgroup/memory.max": "1073741824\n",
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name:  "nothing readable",
			files: map[string]string{"proc/meminfo": "garbage\n", "sys/fs/cgroup/memory.max": "lots\n"},
			want:  64 << 20, source: "",
			says: "soft memory limit 64 MiB (neither a cgroup limit nor the machine's memory could be read)",
		},
		{
			// The smallest limit along the cgroup's path to the root (a review found a parent's
			// missed). systemd: MemoryMax= on the slice, the service's own cgroup unlimited. The kernel
			// enforces the smallest limit of the cgroup and its ancestors.
			name: "v2 limit on a parent, max on the process's cgroup",
			files: map[string]string{
				"proc/self/cgroup":                                           "0::/wikigraph.slice/wikigraph.service\n",
				"sys/fs/cgroup/wikigraph.slice/memory.max":                   "1073741824\n",
				"sys/fs/cgroup/wikigraph.slice/wikigraph.service/memory.max": "max\n",
				"proc/meminfo": meminfo24GiB,
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name: "v2 parent's limit below the process's own",
			files: map[string]string{
				"proc/self/cgroup":                 "0::/pod/ctr\n",
				"sys/fs/cgroup/pod/memory.max":     "1073741824\n",
				"sys/fs/cgroup/pod/ctr/memory.max": "4294967296\n",
				"proc/meminfo":                     meminfo24GiB,
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name: "v1 limit on a parent, unlimited on the process's cgroup",
			files: map[string]string{
				"proc/self/cgroup": "4:memory:/parent/child\n",
				"sys/fs/cgroup/memory/parent/memory.limit_in_bytes":       "1073741824\n",
				"sys/fs/cgroup/memory/parent/child/memory.limit_in_bytes": "9223372036854771712\n",
				"proc/meminfo": meminfo24GiB,
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name: "v2 path with spaces and colons",
			files: map[string]string{
				"proc/self/cgroup":                 "0::/a b/c:d\n",
				"sys/fs/cgroup/a b/c:d/memory.max": "1073741824\n",
				"proc/meminfo":                     meminfo24GiB,
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name: "v2 empty memory.max on the process's cgroup, root limited",
			files: map[string]string{
				"proc/self/cgroup":           "0::/x\n",
				"sys/fs/cgroup/x/memory.max": "",
				"sys/fs/cgroup/memory.max":   "1073741824\n",
				"proc/meminfo":               meminfo24GiB,
			},
			want: 768 << 20, source: "cgroup",
		},
		{
			name: "v1 unlimited and no meminfo",
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory:/\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
			},
			want: 64 << 20, source: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := deriveMemoryLimit(fakeMemory(t, tc.files))
			require.Equal(t, tc.want, got.bytes)
			require.Equal(t, tc.source, got.source)
			if tc.says != "" {
				require.Equal(t, tc.says, got.String())
			}
		})
	}
}

func TestTuneGCLogsTheLimit(t *testing.T) {
	prevLimit, prevPercent := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
	debug.SetGCPercent(prevPercent)
	t.Cleanup(func() { debug.SetMemoryLimit(prevLimit); debug.SetGCPercent(prevPercent) })
	files := fakeMemory(t, map[string]string{"sys/fs/cgroup/memory.max": "2147483648\n", "proc/meminfo": meminfo24GiB})

	t.Run("unset: derived and said so", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv("GOGC", "")
		var buf bytes.Buffer
		tuneGC(slog.New(slog.NewTextHandler(&buf, nil)), files)
		require.Equal(t, int64(1536<<20), debug.SetMemoryLimit(-1))
		require.Contains(t, buf.String(), "GOMEMLIMIT unset: soft memory limit 1.5 GiB, 75% of the cgroup's 2 GiB limit")
		require.Equal(t, 400, debug.SetGCPercent(400))
	})
	t.Run("set: respected", func(t *testing.T) {
		// The runtime reads GOMEMLIMIT when the process starts: as it would have.
		t.Setenv("GOMEMLIMIT", "1GiB")
		debug.SetMemoryLimit(1 << 30)
		var buf bytes.Buffer
		tuneGC(slog.New(slog.NewTextHandler(&buf, nil)), files)
		require.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1))
		require.True(t, strings.Contains(buf.String(), "GOMEMLIMIT set: soft memory limit 1 GiB"), buf.String())
	})
}

func TestGCPercentFollowsTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, stacks uint64
		want         int
	}{
		{0, 0, 400},             // nothing measured yet
		{4 * mib, 1 * mib, 400}, // small: 400% (20 MiB of growth at most)
		{16 * mib, 0, 400},      // 64 MiB is 400% of it
		{32 * mib, 0, 200},      // 64 MiB over what is scanned
		{100 * mib, 28 * mib, 50},
		{256 * mib, 0, 25},
		{1024 * mib, 0, 25}, // large: 25% at least (each collection scans it all)
	} {
		require.Equal(t, tc.want, gcPercent(tc.live, tc.stacks), "live %d MiB, stacks %d MiB", tc.live/mib, tc.stacks/mib)
	}
}
