// Package ddclient is the Datadog side of the agent: the whole Prometheus →
// Datadog mapping (metric names and types, the .count/.bucket/.sum/.quantile
// rules, upper_bound and quantile tags, the namespace prefix, character and
// tag-length rules, Kubernetes tags; see Mapping), the v2 series wire format
// and its transport. Client is the scrape loops' backend: each target's
// appender encodes points straight from the parser into payload buffers
// shared by all targets, which are split to respect the intake's size
// limits, compressed (zstd or gzip, pure Go), and posted by a few
// concurrent workers with the Datadog Agent's retry policy.
//
// Besides series, through datadog-api-client-go: each target's health
// service check after every scrape (<namespace>.openmetrics.health, as the
// OpenMetrics check sends it) and, with an application key, metric metadata
// (type, HELP, unit) once per metric name and again every day (api.go).
// Kubernetes tags follow the Datadog Agent's tagger and its cardinality
// levels (kubetags.go); Prometheus labels become tags by the rules of
// tagRules (tagrules.go).
//
// Every byte waiting to be sent (open batches, queued, in-flight and
// retried payloads) counts against one memory bound; past it, and behind
// whatever the disk spool (package spool) already holds, payloads go to the
// spool, which is sent oldest first when Datadog answers again, by this
// process or the next. At shutdown, POSTs in flight are let finish within
// the flush timeout and the rest is spooled.
package ddclient
