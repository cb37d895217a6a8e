package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Environment variables that point at the binaries instead of the repository
// cache (for a CI image that ships them, or a binary run outside the repo).
const (
	EnvKubeBin = "NODESCRAPER_KUBE_BIN" // directory with kube-apiserver, kube-controller-manager, kube-scheduler and kubelet
	EnvEtcd    = "NODESCRAPER_ETCD"     // path of the etcd binary
)

const ensureHint = "run scripts/controlplane.sh ensure (or set " + EnvKubeBin + "/" + EnvEtcd + ")"

// binaries are the executables a control plane runs.
type binaries struct {
	etcd, apiserver, controllerManager string
	// A node's, checked when one starts.
	scheduler, kubelet string
}

// findBinaries locates the executables: kubeDir (Config.BinDir) first, then
// $NODESCRAPER_KUBE_BIN, then the repository cache .cache/kube/<version>/bin
// with the version pinned in tools/kube/go.mod; etcd from $NODESCRAPER_ETCD
// or PATH (Debian installs it as /usr/bin/etcd).
func findBinaries(kubeDir string) (binaries, error) {
	var b binaries
	if kubeDir == "" {
		kubeDir = os.Getenv(EnvKubeBin)
	}
	if kubeDir == "" {
		dir, err := cacheBinDir()
		if err != nil {
			return b, fmt.Errorf("locate kube binaries: %w; %s", err, ensureHint)
		}
		kubeDir = dir
	}
	b.apiserver = filepath.Join(kubeDir, "kube-apiserver")
	b.controllerManager = filepath.Join(kubeDir, "kube-controller-manager")
	b.scheduler = filepath.Join(kubeDir, "kube-scheduler")
	b.kubelet = filepath.Join(kubeDir, "kubelet")
	for _, p := range []string{b.apiserver, b.controllerManager} {
		if err := executable(p); err != nil {
			return b, fmt.Errorf("%w; %s", err, ensureHint)
		}
	}

	b.etcd = os.Getenv(EnvEtcd)
	if b.etcd == "" {
		p, err := exec.LookPath("etcd")
		if err != nil {
			p = "/usr/bin/etcd"
		}
		b.etcd = p
	}
	if err := executable(b.etcd); err != nil {
		return b, fmt.Errorf("%w; %s", err, ensureHint)
	}
	return b, nil
}

func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("binary %s is not an executable file", path)
	}
	return nil
}

// cacheBinDir finds the repository root above the working directory (go test
// runs in the package directory) and returns the cache directory for the
// pinned Kubernetes version, the same path the script builds into.
func cacheBinDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		mod := filepath.Join(dir, "tools", "kube", "go.mod")
		if _, err := os.Stat(mod); err == nil {
			version, err := kubeVersion(mod)
			if err != nil {
				return "", err
			}
			return filepath.Join(dir, ".cache", "kube", version, "bin"), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no tools/kube/go.mod above %s", wd)
		}
		dir = parent
	}
}

// kubeVersion reads the k8s.io/kubernetes requirement of the tools module.
// It accepts both the single-line and the block form of require.
func kubeVersion(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" && strings.HasPrefix(fields[1], "v1.") {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", goMod, err)
	}
	return "", fmt.Errorf("%s: no k8s.io/kubernetes requirement", goMod)
}
