#!/usr/bin/env bash
# The README's first command (`make demo`): the whole data path on this
# machine, no cluster or Datadog account needed. It starts
#   - demoexporter: a simulated application's metrics on 127.0.0.1:9200,
#   - ddintake: the strict stand-in Datadog intake on 127.0.0.1:8129, which
#     prints a live summary of what arrives,
#   - nodescraper: scraping the exporter and its own /metrics every 10s and
#     sending to the intake.
# Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
work=$(mktemp -d)
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped; agent log kept at $work/nodescraper.log"
}
trap cleanup INT TERM EXIT

key=demo-api-key-0123456789abcdef0123
cat >"$work/targets.yaml" <<YAML
- targets: ["127.0.0.1:9200"]
  labels: {app: shop, env: demo}
- targets: ["127.0.0.1:9105"]
  labels: {app: nodescraper, job: nodescraper}
YAML

"$BIN/demoexporter" -listen 127.0.0.1:9200 -restart-every 90s 2>"$work/demoexporter.log" &
pids+=($!)
DD_API_KEY=$key "$BIN/nodescraper" \
  --static-targets "$work/targets.yaml" --node-name demo-node \
  --dd-url http://127.0.0.1:8129 --allow-insecure-datadog-url --listen 127.0.0.1:9105 --state-dir "$work/state" \
  --scrape-interval 10s --flush-interval 2s 2>"$work/nodescraper.log" &
pids+=($!)

cat <<TXT
nodescraper demo is running (Ctrl-C stops it):
  the agent's targets page:  http://127.0.0.1:9105/targets   (JSON: /api/v1/targets)
  the agent's own metrics:   http://127.0.0.1:9105/metrics
  the example application:   http://127.0.0.1:9200/metrics   (simulates a restart every 90s)
  the agent's log:           $work/nodescraper.log
  a dry run instead:         $BIN/nodescraper --static-targets $work/targets.yaml --dry-run
The stand-in Datadog intake prints what it receives below.

TXT
"$BIN/ddintake" -listen 127.0.0.1:8129 -api-key "$key" -summary-interval 10s &
pids+=($!)
wait -n "${pids[@]}" || true
