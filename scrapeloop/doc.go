// Package scrapeloop scrapes targets and hands their samples on. One loop
// per target fetches its exposition, parses it, and hands each sample to an
// Appender: a gauge's value, or a counter's increase since the previous
// scrape (the delta state is a deltastore.Table slot per series). It knows
// nothing of where samples go: a Backend (Datadog's client in package
// ddclient, or the dry-run printer) makes each target's Appender and
// classifies each new series once. Manager starts and stops loops as the
// target set (target.Target, from discovery) changes; each loop builds its
// HTTP client from the target's httpconfig.Config. A credentials file is
// read at each scrape, as a projected service-account token rotates; the
// agent's own token (target.Target.OwnCredentials) goes only to the
// target's host, never on a redirect to another one. With
// Config.NodeAddrs, every connection a scrape opens is checked when it is
// dialed, after DNS (see reach): a monitor's relabeling, a redirect, a
// proxy or a token endpoint cannot take the agent off the node. An error
// quotes what a target sent only briefly, and PublicError, what leaves the
// node, not at all.
//
// A target is scraped at a fixed phase within its interval, its hash modulo
// the interval, so that a node's targets do not scrape together; the offset
// is not random, and stays the same across restarts. Bodies are read into
// pooled buffers and parsed without allocating (sub-package exposition); a
// series seen before is found by the hash of its raw bytes and skips label
// work, metric relabeling and classification.
//
// Targets that are not scraped are kept as dropped targets with the reason:
// those discovery dropped (target.Target.Drop), those whose settings a loop refuses,
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
