// Command mkimage writes the agent's container image as a tarball (see
// package internal/image); `make image` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nodescraper/nodescraper/internal/image"
)

func main() {
	bin := flag.String("binary", "bin/nodescraper", "static agent binary (CGO_ENABLED=0)")
	ca := flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA certificates to put in the image")
	ref := flag.String("tag", "ghcr.io/nodescraper/nodescraper:dev", "image reference the tarball carries")
	out := flag.String("out", "bin/nodescraper-image.tar", "tarball to write")
	version := flag.String("version", "dev", "org.opencontainers.image.version")
	revision := flag.String("revision", "", "org.opencontainers.image.revision (git commit)")
	arch := flag.String("arch", "", "the binary's GOARCH (default this machine's)")
	flag.Parse()
	// SOURCE_DATE_EPOCH (reproducible builds) or now.
	created := time.Now().UTC().Truncate(time.Second)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fail(fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err))
		}
		created = time.Unix(sec, 0).UTC()
	}
	img, err := image.Build(image.Config{Binary: *bin, CACerts: *ca, Version: *version, Revision: *revision,
		Source: "https://github.com/nodescraper/nodescraper", Created: created, Arch: *arch})
	if err != nil {
		fail(err)
	}
	if err := image.Write(*out, *ref, img); err != nil {
		fail(err)
	}
	d, err := img.Digest()
	if err != nil {
		fail(err)
	}
	fmt.Printf("%s: %s (%s)\n", *out, *ref, d)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}
