package image

import (
	"archive/tar"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// caBundle is the host's bundle, the one `make image` takes.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// TestImageTarball builds the real agent statically, puts it in an image
// and reads the tarball back as a runtime would: its tag, entrypoint, user,
// labels, the files (a CA bundle Go can use, no shell), and the binary,
// taken out of the image, runs.
func TestImageTarball(t *testing.T) {
	if _, err := os.Stat(caBundle); err != nil {
		t.Fatalf("the host has no CA bundle to put in the image: %v (install ca-certificates)", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodescraper")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=9.8.7-test", "-o", bin, "../../cmd/nodescraper")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	img, err := Build(Config{Binary: bin, CACerts: caBundle, Version: "9.8.7-test", Revision: "abc123", Source: "https://example.test/ns", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "ghcr.io/nodescraper/nodescraper:9.8.7-test"
	path := filepath.Join(dir, "image.tar")
	if err := Write(path, ref, img); err != nil {
		t.Fatal(err)
	}

	tag, _ := name.NewTag(ref)
	back, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("read the tarball back as %s: %v", ref, err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != BinaryPath {
		t.Errorf("entrypoint %q", got)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("user %q os %q arch %q", cf.Config.User, cf.OS, cf.Architecture)
	}
	for k, want := range map[string]string{"org.opencontainers.image.version": "9.8.7-test", "org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.created": "2026-12-01T00:00:00Z", "org.opencontainers.image.title": "nodescraper"} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	files := map[string]*tar.Header{}
	contents := map[string][]byte{}
	rc := mutate.Extract(back)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		files[n] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			contents[n] = b
		}
	}
	for _, p := range []string{"/bin/sh", "/bin", "/usr", "/sbin"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s in the image: it should need no shell or userland", p)
		}
	}
	if h := files[BinaryPath]; h == nil || h.Mode&0o111 == 0 {
		t.Fatalf("%s missing or not executable: %+v", BinaryPath, h)
	}
	if h := files[StateDir]; h == nil || h.Uid != UID || h.Typeflag != tar.TypeDir {
		t.Errorf("%s: %+v, want a directory the unprivileged user owns", StateDir, h)
	}
	if h := files["/tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: %+v", h)
	}
	if !strings.Contains(string(contents["/etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd: %q", contents["/etc/passwd"])
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(contents[CAPath]) {
		t.Errorf("%s: no certificate Go can read", CAPath)
	}

	// The binary out of the image runs, statically.
	out := filepath.Join(dir, "from-image")
	if err := os.WriteFile(out, contents[BinaryPath], 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := exec.Command(out, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "9.8.7-test") {
		t.Errorf("the image's binary --version: %v: %s", err, v)
	}

	// The same inputs give the same image.
	again, err := Build(Config{Binary: bin, CACerts: caBundle, Version: "9.8.7-test", Revision: "abc123", Source: "https://example.test/ns", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: %s and %s", d1, d2)
	}
}

func TestBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable() // an ELF file
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no binary", Config{Binary: filepath.Join(dir, "none"), CACerts: caBundle}, "binary"},
		{"not a binary", Config{Binary: notELF, CACerts: caBundle}, "not an ELF executable"},
		{"no CA bundle", Config{Binary: self, CACerts: filepath.Join(dir, "none")}, "CA bundle"},
		{"empty CA bundle", Config{Binary: self, CACerts: empty}, "no PEM certificate"},
	} {
		if _, err := Build(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := Write(filepath.Join(dir, "x.tar"), "Not A Tag!", nil); err == nil {
		t.Error("a bad tag accepted")
	}
}
