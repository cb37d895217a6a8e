package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// prepareUsage is the help of the prepare-state-dir subcommand.
const prepareUsage = `Usage: nodescraper prepare-state-dir --owner UID:GID DIR

Gives DIR and everything under it to UID:GID, so that the agent can run as
that unprivileged user on a state directory the kubelet created root-owned
(hostPath DirectoryOrCreate) or a root agent wrote. For an init container
whose only capability is CHOWN: it changes owners, nothing else, and follows
no symbolic link. Directories are given away after their contents, so a
directory owned by UID:GID that this process may not read (mode 0700) is
done with all below it; a second run changes nothing.
`

// prepareStateDir is the prepare-state-dir subcommand; it returns the exit
// status.
func prepareStateDir(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("prepare-state-dir", flag.ContinueOnError)
	fs.SetOutput(stderr)
	owner := fs.String("owner", "", "UID:GID to give the directory to, e.g. 65532:65532")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), prepareUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	uid, gid, err := parseOwner(*owner)
	if err == nil && fs.NArg() != 1 {
		err = errors.New("want exactly one directory")
	}
	if err != nil {
		fmt.Fprintln(stderr, "nodescraper prepare-state-dir:", err)
		return 2
	}
	n, err := chownTree(fs.Arg(0), uid, gid)
	if err != nil {
		fmt.Fprintln(stderr, "nodescraper prepare-state-dir:", err)
		return 1
	}
	fmt.Fprintf(stdout, "nodescraper prepare-state-dir: %s owned by %d:%d (%d entries changed)\n", fs.Arg(0), uid, gid, n)
	return 0
}

// parseOwner reads UID:GID, both numbers.
func parseOwner(s string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(s, ":")
	if ok {
		uid, err = strconv.Atoi(u)
		if err == nil {
			gid, err = strconv.Atoi(g)
		}
	}
	if !ok || err != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("--owner %q: want UID:GID, two numbers such as 65532:65532", s)
	}
	return uid, gid, nil
}

// chownTree gives path and all below it to uid:gid, contents before their
// directory, and returns how many entries it changed. A directory owned by
// uid:gid already that it cannot read is done. Links are changed, not
// followed.
func chownTree(path string, uid, gid int) (int, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no owner information", path)
	}
	owned := int(st.Uid) == uid && int(st.Gid) == gid
	if owned && !fi.IsDir() {
		return 0, nil
	}
	n := 0
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if owned && errors.Is(err, fs.ErrPermission) {
			// Given away by an earlier run, contents first: done. Only
			// CAP_DAC_READ_SEARCH would let this process read it.
			return 0, nil
		}
		if err != nil {
			return n, err
		}
		for _, e := range entries {
			m, err := chownTree(filepath.Join(path, e.Name()), uid, gid)
			n += m
			if err != nil {
				return n, err
			}
		}
	}
	if owned {
		return n, nil
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return n, err
	}
	return n + 1, nil
}
