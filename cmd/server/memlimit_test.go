package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	v2 := func(proc string, files map[string]string) fstest.MapFS {
		fsys := fstest.MapFS{"proc/self/cgroup": file(proc), "sys/fs/cgroup/cgroup.controllers": file("cpu memory\n")}
		for p, s := range files {
			fsys["sys/fs/cgroup/"+p] = file(s)
		}
		return fsys
	}
	v1 := func(proc string, files map[string]string) fstest.MapFS {
		fsys := fstest.MapFS{"proc/self/cgroup": file(proc)}
		for p, s := range files {
			fsys["sys/fs/cgroup/memory/"+p] = file(s)
		}
		return fsys
	}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		limit   int64 // 0: no limit
		wantErr string
	}{
		{"v2, a container's own cgroup", v2("0::/\n", map[string]string{"memory.max": "134217728\n"}), 134217728, ""},
		{"v2, no limit", v2("0::/\n", map[string]string{"memory.max": "max\n"}), 0, ""},
		{"v2, the pod's limit above the container's", v2("0::/kubepods/pod1/c1\n", map[string]string{
			"kubepods/pod1/c1/memory.max": "max\n", "kubepods/pod1/memory.max": "268435456\n", "kubepods/memory.max": "max\n"}), 268435456, ""},
		{"v2, the lowest of the ancestors", v2("0::/a/b\n", map[string]string{"a/b/memory.max": "300\n", "a/memory.max": "200\n"}), 200, ""},
		{"v2, the lowest is the process's own", v2("0::/a/b\n", map[string]string{"a/b/memory.max": "200\n", "a/memory.max": "300\n"}), 200, ""},
		{"v1, a container whose path is not mounted", v1("4:memory:/docker/abc\n0::/docker/abc\n", map[string]string{"memory.limit_in_bytes": "104857600\n"}), 104857600, ""},
		{"v1, unlimited", v1("4:memory:/\n", map[string]string{"memory.limit_in_bytes": "9223372036854771712\n"}), 0, ""},
		{"v1, a path under the mount", v1("9:pids:/\n4:memory:/jobs/x\n", map[string]string{
			"jobs/x/memory.limit_in_bytes": "5000000\n", "memory.limit_in_bytes": "9223372036854771712\n"}), 5000000, ""},
		{"v1, memory among other controllers", v1("3:cpu,memory:/x\n", map[string]string{"x/memory.limit_in_bytes": "4096\n"}), 4096, ""},
		{"no cgroup information", fstest.MapFS{}, 0, ""},
		{"no memory controller", v1("9:pids:/\n", nil), 0, ""},
		{"v2, a path outside the mount", v2("0::/../../x\n", map[string]string{"memory.max": "4096\n"}), 4096, ""},
		{"v1, a path outside the mount", v1("4:memory:/../x\n", map[string]string{"memory.limit_in_bytes": "4096\n"}), 4096, ""},
		{"a limit of zero", v2("0::/\n", map[string]string{"memory.max": "0\n"}), 0, `sys/fs/cgroup/memory.max: "0" is not a byte count`},
		{"a limit that is not a number", v2("0::/\n", map[string]string{"memory.max": "12abc\n"}), 0, `sys/fs/cgroup/memory.max: "12abc" is not a byte count`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, ok, err := cgroupMemoryLimit(tt.fsys, "proc/self/cgroup", "sys/fs/cgroup")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.limit != 0) || (ok && limit != tt.limit) {
				t.Fatalf("limit = %d, %v; want %d", limit, ok, tt.limit)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	limited := fstest.MapFS{
		"proc/self/cgroup":                 {Data: []byte("0::/\n")},
		"sys/fs/cgroup/cgroup.controllers": {Data: []byte("memory\n")},
		"sys/fs/cgroup/memory.max":         {Data: []byte("134217728\n")},
	}
	unlimited := fstest.MapFS{
		"proc/self/cgroup":                 {Data: []byte("0::/\n")},
		"sys/fs/cgroup/cgroup.controllers": {Data: []byte("memory\n")},
		"sys/fs/cgroup/memory.max":         {Data: []byte("max\n")},
	}
	tests := []struct {
		name        string
		env         map[string]string
		fsys        fstest.MapFS
		soft, limit int64
	}{
		{"nine tenths of the cgroup's", nil, limited, 120795955, 134217728},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "64MiB"}, limited, 0, 0},
		{"GOMEMLIMIT=off wins too", map[string]string{"GOMEMLIMIT": "off"}, limited, 0, 0},
		{"an empty GOMEMLIMIT is unset, as the runtime reads it", map[string]string{"GOMEMLIMIT": ""}, limited, 120795955, 134217728},
		{"no cgroup limit", nil, unlimited, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			soft, limit, err := memoryLimit(tt.env, tt.fsys)
			if err != nil || soft != tt.soft || limit != tt.limit {
				t.Fatalf("memoryLimit = %d, %d, %v; want %d, %d", soft, limit, err, tt.soft, tt.limit)
			}
		})
	}
}

// The soft limit memoryLimit computes reaches the runtime, and nothing is
// set when GOMEMLIMIT is the runtime's own setting, when no limit applies,
// or when the cgroup files cannot be read.
func TestSetMemoryLimit(t *testing.T) {
	limited := fstest.MapFS{
		"proc/self/cgroup":                 &fstest.MapFile{Data: []byte("0::/\n")},
		"sys/fs/cgroup/cgroup.controllers": &fstest.MapFile{Data: []byte("memory\n")},
		"sys/fs/cgroup/memory.max":         &fstest.MapFile{Data: []byte("1000000\n")},
	}
	broken := fstest.MapFS{
		"proc/self/cgroup":                 &fstest.MapFile{Data: []byte("0::/\n")},
		"sys/fs/cgroup/cgroup.controllers": &fstest.MapFile{Data: []byte("memory\n")},
		"sys/fs/cgroup/memory.max":         &fstest.MapFile{Data: []byte("lots\n")},
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		root fstest.MapFS
		want []int64
		log  string
	}{
		{"a cgroup limit", nil, limited, []int64{900000}, "gomemlimit_bytes=900000"},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "512MiB"}, limited, nil, "memory limit from GOMEMLIMIT"},
		{"no limit", nil, fstest.MapFS{}, nil, "no memory limit"},
		{"unreadable", nil, broken, nil, "memory limit unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var set []int64
			var logs strings.Builder
			setMemoryLimit(slog.New(slog.NewTextHandler(&logs, nil)), tt.env, tt.root, func(n int64) int64 { set = append(set, n); return 0 })
			if !slices.Equal(set, tt.want) || !strings.Contains(logs.String(), tt.log) {
				t.Errorf("set %v, logged %q; want %v and %q", set, logs.String(), tt.want, tt.log)
			}
		})
	}
}
