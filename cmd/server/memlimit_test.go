package main

import (
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
