// Package image builds the agent's container image without Docker or a
// registry: one layer on an empty base holding the static binary, a CA
// bundle, the passwd/group entries of an unprivileged user and the
// directories the agent writes, with OCI labels, written as a tarball that
// `docker load`, `ctr images import` and `crane push` take
// (github.com/google/go-containerregistry does the format).
package image
