package main

import (
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets below read what an operator (or a chart value) writes in
// a flag or an environment variable. Their seeds run in every go test; run
// one longer with, e.g., go test -run '^$' -fuzz FuzzParseSize ./cmd/nodescraper.

// FuzzParseSize: a size accepted is a positive whole number of bytes no
// larger than maxSize, and reads back the same written as plain bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1048576", "512KiB", "64MiB", "1Gi", "1.5KiB", " 2 Mi", "100B", "0", "-1", "NaN", "Inf",
		"0.5", "1e300", "4294967296GiB", "0x10", "1_000", "1e3KiB", "MiB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("parseSize(%q) = %d with error %v", s, n, err)
			}
			return
		}
		if n <= 0 || n > maxSize {
			t.Fatalf("parseSize(%q) = %d, outside 1..%d", s, n, int64(maxSize))
		}
		if back, err := parseSize(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("parseSize(%q) = %d, which reads back as %d, %v", s, n, back, err)
		}
	})
}

// FuzzParseMemoryLimit: --memory-limit is auto, off, or a size parseSize
// accepts, with the same bytes.
func FuzzParseMemoryLimit(f *testing.F) {
	for _, s := range []string{"auto", "off", "512MiB", "NaN", "-1GiB", "0.5", "Auto", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseMemoryLimit(s)
		if s == "auto" || s == "off" {
			if n != 0 || err != nil {
				t.Fatalf("parseMemoryLimit(%q) = %d, %v", s, n, err)
			}
			return
		}
		size, sizeErr := parseSize(s)
		if (err != nil) != (sizeErr != nil) || n != size {
			t.Fatalf("parseMemoryLimit(%q) = %d, %v; parseSize: %d, %v", s, n, err, size, sizeErr)
		}
	})
}

// FuzzParseCgroupLimit: a container's limit is 0 (none) or a positive number
// below 2^60, and a plain number in range reads back as itself.
func FuzzParseCgroupLimit(f *testing.F) {
	for _, s := range []string{"max\n", "536870912\n", "9223372036854771712\n", "0", "-1", "", " 42 ", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := parseCgroupLimit(s)
		if n < 0 || n >= 1<<60 {
			t.Fatalf("parseCgroupLimit(%q) = %d", s, n)
		}
		if n > 0 && parseCgroupLimit(strconv.FormatInt(n, 10)+"\n") != n {
			t.Fatalf("parseCgroupLimit(%q) = %d does not read back", s, n)
		}
	})
}

// FuzzParseRenames: every rename accepted has a trimmed, non-empty old and
// new name, and writing the renames back as old=new,... reads the same.
func FuzzParseRenames(f *testing.F) {
	for _, s := range []string{"", "a=b", "x=y, p=q", "a", "=b", "a=", "a==b", " , a=b,", "a=b=c", "a=b,a=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseRenames(s)
		if err != nil {
			return
		}
		var pairs []string
		for _, old := range slices.Sorted(maps.Keys(m)) {
			nw := m[old]
			for _, name := range []string{old, nw} {
				if name == "" || name != strings.TrimSpace(name) || strings.Contains(name, ",") {
					t.Fatalf("parseRenames(%q) = %q: name %q", s, m, name)
				}
			}
			if strings.Contains(old, "=") {
				t.Fatalf("parseRenames(%q) = %q: old name %q has =", s, m, old)
			}
			pairs = append(pairs, old+"="+nw)
		}
		back, err := parseRenames(strings.Join(pairs, ","))
		if err != nil || !maps.Equal(back, m) {
			t.Fatalf("parseRenames(%q) = %q, which reads back as %q, %v", s, m, back, err)
		}
	})
}

// FuzzLabelSelector: a selector flag either parses or is refused with an
// error naming the flag; empty selects everything.
func FuzzLabelSelector(f *testing.F) {
	for _, s := range []string{"", "team=a", "team=a,tier!=dev", "env in (a,b)", "!x", "a=(", "=", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := labelSelector("--monitor-selector", s)
		switch {
		case err != nil:
			if !strings.HasPrefix(err.Error(), "--monitor-selector ") {
				t.Fatalf("labelSelector(%q): error %q does not name the flag", s, err)
			}
		case s == "" && ls != nil:
			t.Fatalf("labelSelector(\"\") = %v, want nil (everything)", ls)
		case s != "" && ls == nil:
			t.Fatalf("labelSelector(%q) = nil with no error", s)
		}
	})
}

// FuzzEnvSetting: any value of any environment variable the agent reads is
// accepted or refused with an error naming the variable or its flag, and a
// configuration accepted passes validate again with sizes in range.
func FuzzEnvSetting(f *testing.F) {
	var help strings.Builder
	_, _ = parseConfig([]string{"--help"}, func(string) string { return "" }, &help)
	flagOf := envFlags(help.String())
	flagOf["DD_API_KEY"], flagOf["DD_APP_KEY"] = "DD_API_KEY", "DD_APP_KEY" // read by resolve, not flags
	names := slices.Sorted(maps.Keys(flagOf))
	if len(names) < 30 {
		f.Fatalf("found the variables %v in --help; want every one", names)
	}
	for i, v := range []string{"", "0", "-1", "1", "NaN", "1.5", "64MiB", "0.5", "1e6", "true", "maybe", "10m", "-5s", "Endpoints", "http://x/", "a=b", "json"} {
		for j := range names {
			f.Add(uint8(i+j), v)
		}
	}
	dir := f.TempDir()
	targets := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(targets, []byte("[]"), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		name := names[int(which)%len(names)]
		getenv := func(k string) string {
			if k == name {
				return value
			}
			return ""
		}
		c, err := parseConfig([]string{"--dry-run", "--static-targets", targets, "--node-name", "n"}, getenv, io.Discard)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, name) && !strings.Contains(msg, flagOf[name]) {
				t.Fatalf("%s=%q: error %q names neither %s nor %s", name, value, msg, name, flagOf[name])
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("%s=%q: accepted, then validate says %v", name, value, err)
		}
		if c.queueBytes() <= 0 || c.spoolBytes() < 0 {
			t.Fatalf("%s=%q: queue %d bytes, spool %d bytes", name, value, c.queueBytes(), c.spoolBytes())
		}
	})
}

// envFlags maps each environment variable that --help shows to its flag
// ("(env NAME" in the flag's usage).
func envFlags(help string) map[string]string {
	out := map[string]string{}
	flagRE := regexp.MustCompile(`(?m)^  (-[a-z-]+)`)
	envRE := regexp.MustCompile(`\(env ([A-Z_]+)`)
	for _, block := range strings.Split(help, "\n  -")[1:] {
		block = "  -" + block
		fl := flagRE.FindStringSubmatch(block)
		for _, m := range envRE.FindAllStringSubmatch(block, -1) {
			if fl != nil {
				out[m[1]] = "-" + fl[1]
			}
		}
	}
	return out
}
