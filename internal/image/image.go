package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The unprivileged user the image runs as by default (distroless' nonroot).
const (
	UID  = 65532
	User = "65532:65532"
)

// Paths inside the image.
const (
	BinaryPath = "/nodescraper"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
	StateDir   = "/var/lib/nodescraper"
)

// Config describes one image.
type Config struct {
	// Binary is the static agent binary; CACerts a PEM bundle of roots.
	Binary, CACerts string
	// Version and Revision label the image; Source is the project's URL.
	Version, Revision, Source string
	// Created is the image's creation time, also every file's mtime: the
	// same inputs and time give the same image digest.
	Created time.Time
	// Arch is the binary's architecture (GOARCH); default runtime.GOARCH.
	Arch string
	// Title and Description label the image; default the agent's. Tests
	// package their own static binaries (a pause, an exporter) the same way.
	Title, Description string
	// Path is where the binary goes in the image, its entrypoint; default
	// BinaryPath.
	Path string
}

// Build returns the image.
func Build(cfg Config) (v1.Image, error) {
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	if cfg.Path == "" {
		cfg.Path = BinaryPath
	}
	if cfg.Title == "" {
		cfg.Title = "nodescraper"
		cfg.Description = "Scrapes the Prometheus targets of its node and sends them to Datadog"
	}
	bin, err := os.ReadFile(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: binary: %w", err)
	}
	if len(bin) < 4 || !bytes.Equal(bin[:4], []byte("\x7fELF")) {
		return nil, fmt.Errorf("image: binary %s is not an ELF executable", cfg.Binary)
	}
	ca, err := os.ReadFile(cfg.CACerts)
	if err != nil {
		return nil, fmt.Errorf("image: CA bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("image: CA bundle %s holds no PEM certificate", cfg.CACerts)
	}
	layer, err := rootfs(cfg, bin, ca)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", cfg.Arch
	cf.Created = v1.Time{Time: cfg.Created}
	cf.Author = "nodescraper"
	cf.Config = v1.Config{
		Entrypoint: []string{cfg.Path},
		User:       User,
		WorkingDir: "/",
		Env:        []string{"PATH=/", "SSL_CERT_FILE=" + CAPath},
		Labels: map[string]string{
			"org.opencontainers.image.title":       cfg.Title,
			"org.opencontainers.image.description": cfg.Description,
			"org.opencontainers.image.version":     cfg.Version,
			"org.opencontainers.image.revision":    cfg.Revision,
			"org.opencontainers.image.source":      cfg.Source,
			"org.opencontainers.image.created":     cfg.Created.UTC().Format(time.RFC3339),
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
		ExposedPorts: map[string]struct{}{"9105/tcp": {}},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return img, nil
}

// rootfs is the image's one layer.
func rootfs(cfg Config, bin, ca []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := cfg.Created
	dir := func(path string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mt, Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)), ModTime: mt, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
	err := errors.Join(
		dir("etc", 0o755, 0),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		dir("etc/ssl", 0o755, 0),
		dir("etc/ssl/certs", 0o755, 0),
		file(CAPath[1:], 0o644, ca),
		dir("home", 0o755, 0),
		dir("home/nonroot", 0o700, UID),
		// Go's os.TempDir, and the agent's default --state-dir (a hostPath
		// mount covers it in the chart).
		dir("tmp", 0o1777, 0),
		dir("var", 0o755, 0),
		dir("var/lib", 0o755, 0),
		dir(StateDir[1:], 0o700, UID),
		file(strings.TrimPrefix(cfg.Path, "/"), 0o755, bin),
		tw.Close(),
	)
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	return layer, nil
}

// Write writes img as a tarball tagged ref (docker save format: manifest.json,
// the config and the layer), which docker load and ctr images import read.
func Write(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image: tag %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("image: write %s: %w", path, err)
	}
	return nil
}
