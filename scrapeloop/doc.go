// Package scrapeloop runs one loop per target: a jittered schedule, the HTTP
// fetch into pooled body buffers, the zero-allocation parse (sub-package
// exposition), the series cache and delta step (one deltastore.Table slot per
// series), metric relabeling, and the hand-off of points to an Appender. It
// knows nothing of the destination: a Backend (Datadog's client in package
// ddclient, or the dry-run printer) classifies each new series once and
// encodes its points. Manager starts and stops loops as the target set changes.
//
// Targets that are not scraped are kept as dropped targets with the reason:
// those discovery dropped (Target.Drop), those whose settings a loop refuses,
// and duplicates of a running target. The manager serves all of them on the
// targets page (TargetsHandler) and in the shape of Prometheus'
// /api/v1/targets (APITargetsHandler), with per-pool metrics whose number
// grows with the pools, not the targets.
//
// A body that provably is not whole (shorter than its Content-Length, a
// chunked or gzip stream without its end, OpenMetrics without "# EOF", an
// unframed text body ending within a line) fails its scrape before any delta
// is taken, counted in nodescraper_scrape_incomplete_bodies_total{reason}.
// One cut at a line boundary cannot be told from a whole one: its missing
// series keep their delta state (deltastore, "Absent series").
package scrapeloop
