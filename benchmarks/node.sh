#!/bin/sh
# node.sh [nodebench flags] — the end-to-end node benchmark (cmd/nodebench).
#
# Runs from this directory so results/ and testdata/ (the generated
# kube-state-metrics payload) land here. Examples:
#
#   ./node.sh -build                                  # build ../bin/nodescraper, run every scenario
#   ./node.sh -scenarios scale-10k -interval 3s       # a quick check
#   ./node.sh -agent old=/tmp/old/nodescraper -agent new=../bin/nodescraper -scenarios scaling
#
# See README.md, "End-to-end node benchmark".
set -eu
cd "$(dirname "$0")"
bin=$(mktemp -d)/nodebench
trap 'rm -r "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/nodebench
"$bin" "$@"
