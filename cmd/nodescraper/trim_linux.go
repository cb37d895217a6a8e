package main

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Once the agent has started, and then every releaseEvery, it releases
// its mappings of its own executable's read-only pages (text, rodata,
// pclntab). Most of them were touched once: by package initialization
// (client-go registers every Kubernetes API type at init) and by the
// kernel mapping whole page-cache folios around each page touched. Idle,
// they made ~28 of the agent's 36 MiB RSS. The pages stay in the page cache;
// those the agent runs again are mapped back on their next use (a minor
// fault), so what stays resident is what runs.
const (
	releaseAfter = 10 * time.Second
	releaseEvery = 10 * time.Minute
)

// releasePages runs the releases until ctx ends.
func releasePages(ctx context.Context, logger *slog.Logger) {
	t := time.NewTimer(releaseAfter)
	defer t.Stop()
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := releaseImagePages()
		switch {
		case err != nil:
			logger.Warn("could not release the executable's pages", "err", err)
			return
		case first:
			logger.Debug("released the executable's mapped pages", "bytes", n)
		}
		t.Reset(releaseEvery)
	}
}

// releaseImagePages drops the executable's read-only mappings' pages from
// this process (MADV_DONTNEED: for a private file mapping never written,
// the next access maps the file's page again). A mapping holding pages of
// its own (anonymous: written before it was made read-only, such as the
// relocated GOT of a dynamically linked build like the race detector's) is
// left alone,
// as are writable ones (data, bss): dropping those pages would lose what
// was written. It returns the bytes of address space released.
func releaseImagePages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var released int64
	var start, end uint64
	candidate, clean := false, true
	release := func() error {
		if !candidate || !clean {
			return nil
		}
		const madvDontneed = 4
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvDontneed); errno != 0 {
			return errno
		}
		released += int64(end - start)
		return nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if name, ok := strings.CutSuffix(fields[0], ":"); ok {
			// A field of the current mapping: "Anonymous:   0 kB", the
			// pages it copied on a write (a file's page the writer of
			// the binary left dirty in the page cache is no such page).
			if name == "Anonymous" && len(fields) > 1 && fields[1] != "0" {
				clean = false
			}
			continue
		}
		// A mapping's header: 00400000-01c02000 r-xp 00000000 fe:00 10331467 /path/to/exe
		if err := release(); err != nil {
			return released, err
		}
		candidate, clean = false, true
		if len(fields) < 6 || fields[5] != exe || len(fields[1]) < 4 || fields[1][1] != '-' || fields[1][3] != 'p' {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		var err1, err2 error
		start, err1 = strconv.ParseUint(lo, 16, 64)
		end, err2 = strconv.ParseUint(hi, 16, 64)
		candidate = err1 == nil && err2 == nil && end > start
	}
	if err := sc.Err(); err != nil {
		return released, err
	}
	return released, release()
}
