package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// memLimitRatio is the share of the container's memory limit the Go
// runtime gets as its soft limit: the rest is room for what the runtime
// does not count (thread stacks outside the heap's accounting, the page
// cache the kernel charges to the container).
const memLimitRatio = 0.9

// applyMemoryLimit gives the Go runtime a soft memory limit of
// memLimitRatio of the container's (see memoryLimit), so the garbage
// collector works harder before the kernel would kill the process for its
// memory, and logs what it set.
func applyMemoryLimit(log *slog.Logger, env map[string]string) {
	setMemoryLimit(log, env, os.DirFS("/"), debug.SetMemoryLimit)
}

// setMemoryLimit is applyMemoryLimit with the filesystem it reads the
// cgroups from (root) and the runtime's setter, for its tests.
func setMemoryLimit(log *slog.Logger, env map[string]string, root fs.FS, set func(int64) int64) {
	soft, limit, err := memoryLimit(env, root)
	switch {
	case err != nil:
		log.Warn("memory limit unknown; the Go runtime has none", "error", err)
	case env["GOMEMLIMIT"] != "":
		log.Info("memory limit from GOMEMLIMIT", "gomemlimit", env["GOMEMLIMIT"])
	case soft > 0:
		set(soft)
		log.Info("memory limit", "cgroup_limit_bytes", limit, "gomemlimit_bytes", soft)
	default:
		log.Info("no memory limit: the process's cgroups set none")
	}
}

// memoryLimit returns the soft memory limit the Go runtime should get,
// memLimitRatio of the cgroup memory limit that applies to this process
// (cgroupMemoryLimit, read in fsys), with that limit; soft is 0 when no
// limit applies, or when GOMEMLIMIT is set (GOMEMLIMIT=off included): that
// is the runtime's own setting, and it wins.
func memoryLimit(env map[string]string, fsys fs.FS) (soft, limit int64, err error) {
	if env["GOMEMLIMIT"] != "" {
		return 0, 0, nil
	}
	limit, ok, err := cgroupMemoryLimit(fsys, "proc/self/cgroup", "sys/fs/cgroup")
	if err != nil || !ok {
		return 0, 0, err
	}
	return int64(float64(limit) * memLimitRatio), limit, nil
}

// cgroupMemoryLimit returns the memory limit that applies to this process:
// the lowest limit of its memory cgroup and the cgroup's ancestors, read
// under root (where the cgroup filesystem is mounted) from memory.max
// (cgroup v2) or memory/memory.limit_in_bytes (v1). procSelfCgroup names
// the process's cgroup; inside a container whose cgroup path is not
// visible there, the mount's own top, which is then the container's
// cgroup, is read. ok is false when no limit applies.
func cgroupMemoryLimit(fsys fs.FS, procSelfCgroup, root string) (limit int64, ok bool, err error) {
	data, err := fs.ReadFile(fsys, procSelfCgroup)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	mount, file, cgroup := path.Join(root, "memory"), "memory.limit_in_bytes", ""
	if _, err := fs.Stat(fsys, path.Join(root, "cgroup.controllers")); err == nil {
		mount, file = root, "memory.max" // the unified (v2) hierarchy
	}
	for line := range strings.Lines(string(data)) {
		// "hierarchy-ID:controllers:path"; v2's line is "0::path".
		fields := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(fields) == 3 && ((file == "memory.max" && fields[0] == "0") || slices.Contains(strings.Split(fields[1], ","), "memory")) {
			cgroup = fields[2]
		}
	}
	// Walk up to the mount's top: in a container that does not see its
	// own cgroup's path, only the top exists, and it is the container's.
	// A path outside the mount (a cgroup namespace shows one as "/../x")
	// reads the top alone.
	dir := path.Join(mount, cgroup)
	if dir != mount && !strings.HasPrefix(dir, mount+"/") {
		dir = mount
	}
	limit = math.MaxInt64
	for {
		raw, err := fs.ReadFile(fsys, path.Join(dir, file))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, false, err
		default:
			v := strings.TrimSpace(string(raw))
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case v == "max" || (err == nil && n >= unlimitedV1):
			case err != nil || n <= 0:
				return 0, false, fmt.Errorf("%s: %q is not a byte count or \"max\"", path.Join(dir, file), v)
			default:
				limit = min(limit, n)
			}
		}
		if dir == mount {
			return limit, limit != math.MaxInt64, nil
		}
		dir = path.Dir(dir)
	}
}

// unlimitedV1 is where cgroup v1's "no limit" values start: v1 writes no
// limit as the largest page count times the page size, about 2^63.
const unlimitedV1 = 1 << 62
