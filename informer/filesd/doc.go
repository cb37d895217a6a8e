// Package filesd is discovery without Kubernetes: the targets of a file in
// Prometheus' file_sd format (JSON or YAML, a list of {targets, labels}),
// read at start and re-read whenever its content changes. An entry that is
// not a valid target is dropped alone, with its reason, as Prometheus'
// file_sd does; a file that cannot be read or parsed keeps the previous
// targets. The agent's local mode (--static-targets) runs on it.
package filesd
