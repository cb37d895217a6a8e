package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPrepareStateDir: a root-owned state directory (as the kubelet creates
// it and a root agent filled it) is given to 65532:65532 whole, links
// changed but not followed; a second run changes nothing.
func TestPrepareStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root (CAP_CHOWN)")
	}
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	for _, f := range []string{"checkpoint", "spool/000001.seg", "spool/000002.seg"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "spool", "link")); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		var out, errb bytes.Buffer
		if code := prepareStateDir([]string{"--owner", "65532:65532", dir}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return out.String()
	}
	if out := run(); !strings.Contains(out, "(6 entries changed)") {
		t.Errorf("first run: %s", out)
	}
	for _, f := range []string{"", "checkpoint", "spool", "spool/000001.seg", "spool/link"} {
		if uid, gid := owner(t, filepath.Join(dir, f)); uid != 65532 || gid != 65532 {
			t.Errorf("%s owned by %d:%d", f, uid, gid)
		}
	}
	if uid, _ := owner(t, outside); uid != 0 {
		t.Errorf("the link's target was changed too: owned by %d", uid)
	}
	if out := run(); !strings.Contains(out, "(0 entries changed)") {
		t.Errorf("second run: %s", out)
	}
	var errb bytes.Buffer
	for _, args := range [][]string{{dir}, {"--owner", "nonroot", dir}, {"--owner", "1:1"}} {
		if code := prepareStateDir(args, &errb, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func owner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// TestPrepareStateDirOnlyChown runs the subcommand of the real binary as
// root with no capability but CHOWN (setpriv), as the chart's init container
// runs: without it the root-owned state cannot be given away; with it alone
// it can, and again once the agent's user owns a 0700 directory in it (no
// DAC_OVERRIDE or DAC_READ_SEARCH needed).
func TestPrepareStateDirOnlyChown(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if os.Geteuid() != 0 || err != nil {
		t.Skip("needs root and util-linux's setpriv")
	}
	bin := agentBinary(t, false)
	dir := t.TempDir()
	for _, f := range []string{"checkpoint", "spool/000001.seg"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(bounding string) (string, error) {
		out, err := exec.Command(setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"+bounding, "--",
			bin, "prepare-state-dir", "--owner=65532:65532", dir).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run(""); err == nil || !strings.Contains(out, "operation not permitted") {
		t.Errorf("no capability: %v %s; want operation not permitted", err, out)
	}
	if out, err := run(",+chown"); err != nil || !strings.Contains(out, "(4 entries changed)") {
		t.Errorf("CHOWN only: %v %s; want 4 entries changed", err, out)
	}
	if out, err := run(",+chown"); err != nil || !strings.Contains(out, "(0 entries changed)") {
		t.Errorf("CHOWN only, again: %v %s; want 0 entries changed", err, out)
	}
	if uid, _ := owner(t, filepath.Join(dir, "spool", "000001.seg")); uid != 65532 {
		t.Errorf("spool segment owned by %d", uid)
	}
}
