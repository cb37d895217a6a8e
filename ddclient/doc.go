// Package ddclient sends metric points to Datadog's v2 series API. A series'
// JSON head (name, type, interval, tags, host) is encoded once and reused for
// every point; points are gathered into payloads that respect the intake's
// size limits, compressed (zstd or gzip, pure Go), and posted with the Datadog
// Agent's retry policy from a bounded in-memory queue.
package ddclient
