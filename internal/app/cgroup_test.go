package app

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The cgroup limit is the smallest along the cgroup's path to the root (from a review: a limit on a
// parent, as systemd and Kubernetes set them, was missed), whatever the path holds.
func TestCgroupLimitAlongItsPath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		source string
	}{
		{
			// systemd: MemoryMax= on the slice, the service's own cgroup unlimited. The kernel
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
			assert.Equal(t, tc.want, got.bytes, "%s", got.String())
			assert.Equal(t, tc.source, got.source)
			t.Log(got.String())
		})
	}
}
