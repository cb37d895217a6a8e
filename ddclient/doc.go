// Package ddclient sends scraped samples to Datadog. Client is the scrape
// loops' backend (scrapeloop.Backend): each target's appender maps samples
// to Datadog series (names, types, tags; see Mapping) and encodes them
// straight from the parser into payload buffers shared by all targets:
// Datadog's v3 columnar series (v3.go, appender_v3.go: names, tags and tag
// sets are per-payload dictionaries, so a tag is written once per payload,
// not once per point) or v2 series JSON, chosen per URL as the Datadog
// Agent chooses (UseV3Series). Payloads hold at most MaxPointsPerPayload
// points and are split to fit the intake's limits, compressed (zstd, or
// gzip for v2; pure Go) and posted by SendConcurrency workers with the
// Datadog Agent's retry policy. Through datadog-api-client-go it also sends
// each target's health service check and, with an application key, metric
// metadata.
//
// Every byte waiting to be sent counts against one memory bound; past it,
// while Datadog fails, and behind what the disk spool (package spool)
// already holds, payloads go to the spool, sent oldest first when Datadog
// answers again, by this process or the next. At shutdown Drain lets POSTs
// in flight finish within the flush timeout and spools the rest.
//
// What is kept per metric name a target sends is bounded: an appender's
// shapes live as long as the series that use them (shapes.go), and the
// metadata waiting to be sent is a cache of MetadataMaxNames names, least
// recently met evicted first (metacache.go); both count what they evict.
//
// Files, along the data path: mapping.go, tagrules.go, tags.go and
// kubetags.go (the Prometheus → Datadog mapping), appender.go, shapes.go,
// encode.go and report.go (encoding), buffer.go and batch.go (buffers into
// compressed payloads), send.go (workers, posts, retries, spool refill),
// drain.go (shutdown), apikey.go (the API key), api.go and metacache.go
// (service checks and metadata), client.go (Config, New, Run); Printer (printer.go) prints
// instead of sending, for a dry run. v3.go writes Datadog's v3 columnar
// series payload (v3Writer), appender_v3.go fills it, seriesapi.go says
// which API a URL gets. fakeintake is the strict stand-in for
// Datadog that tests and demos post to.
package ddclient
