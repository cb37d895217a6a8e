package controlplane

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is a node's --cgroup-root: one directory of the same name in
// every cgroup hierarchy of the machine (v1), or in the unified one (v2).
type cgroupRoot struct {
	name string   // "/<name>", as the kubelet takes it
	dirs []string // its directory in each hierarchy
}

const cgroupFS = "/sys/fs/cgroup"

// cgroupHierarchies lists the mounted hierarchies: /sys/fs/cgroup itself
// when it is the v2 unified hierarchy, else its v1 subdirectories.
func cgroupHierarchies() ([]string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupFS, &st); err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	const cgroup2Magic = 0x63677270
	if st.Type == cgroup2Magic {
		return []string{cgroupFS}, nil
	}
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupFS, e.Name())
		// Skip the symlinks (cpu,cpuacct -> ...) and anything not a
		// hierarchy root.
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// newCgroupRoot creates name in every hierarchy; in the cpuset hierarchy
// (v1) a new cgroup starts with no CPUs and memory nodes, so they are copied
// from the parent as the kubelet's own cgroup manager does for its children.
func newCgroupRoot(name string) (cgroupRoot, error) {
	cg := cgroupRoot{name: "/" + name}
	hs, err := cgroupHierarchies()
	if err != nil {
		return cg, err
	}
	for _, h := range hs {
		d := filepath.Join(h, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return cg, fmt.Errorf("cgroup %s: %w", d, err)
		}
		cg.dirs = append(cg.dirs, d)
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return cg, fmt.Errorf("cgroup %s: %w", d, err)
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return cg, fmt.Errorf("cgroup %s: %s: %w", d, f, err)
				}
			}
		}
	}
	return cg, nil
}

// killAll SIGKILLs every process in the root's cgroups until none is left.
func (cg cgroupRoot) killAll() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cg.pids()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v still running after SIGKILL", cg.name, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cg cgroupRoot) pids() []int {
	var pids []int
	for _, d := range cg.dirs {
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// remove deletes the root's cgroups, deepest first (rmdir only succeeds on
// an empty cgroup without children).
func (cg cgroupRoot) remove() error {
	var errs []error
	for _, d := range cg.dirs {
		var dirs []string
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.Reverse(dirs) // WalkDir lists parents before children
		for _, p := range dirs {
			if err := syscall.Rmdir(p); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// cleanupNodeDirs kills the containerd shims of a node (they outlive
// containerd), unmounts what is mounted under its directories (container
// root filesystems, the kubelet's volume mounts) and removes runDir.
func cleanupNodeDirs(runDir, dir string) error {
	if runDir == "" {
		return nil
	}
	var errs []error
	for _, pid := range processesMentioning(runDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, d := range []string{runDir, dir} {
		if d != "" {
			errs = append(errs, unmountUnder(d))
		}
	}
	errs = append(errs, os.RemoveAll(runDir))
	return errors.Join(errs...)
}

// processesMentioning lists processes whose command line contains s (the
// shims are started with -address <runDir>/containerd.sock).
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeStaleNodes cleans up after nodes whose test process died without
// stopping them (SIGKILL, a test timeout): their containers, shims, mounts,
// cgroups and run directories. Like removeStaleEtcdDirs, it recognises them
// by the dead pid in the directory name.
func removeStaleNodes() {
	matches, _ := filepath.Glob(filepath.Join("/run", nodeRunPrefix+"*-*"))
	for _, m := range matches {
		base := filepath.Base(m)
		pid, err := strconv.Atoi(strings.Split(strings.TrimPrefix(base, nodeRunPrefix), "-")[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		cg := cgroupRoot{name: "/" + base}
		if hs, err := cgroupHierarchies(); err == nil {
			for _, h := range hs {
				if _, err := os.Stat(filepath.Join(h, base)); err == nil {
					cg.dirs = append(cg.dirs, filepath.Join(h, base))
				}
			}
		}
		_ = cg.killAll()
		dir, _ := os.ReadFile(filepath.Join(m, "node-dir"))
		_ = cleanupNodeDirs(m, string(dir))
		_ = cg.remove()
	}
}
