// Package scrapeloop runs one loop per target: a jittered schedule, the HTTP
// fetch into pooled body buffers, the zero-allocation parse (sub-package
// exposition), the series cache and delta step (one deltastore.Table slot per
// series), metric relabeling, and the hand-off of points to an Appender. It
// knows nothing of the destination: a Backend (Datadog's client in package
// ddclient, or the dry-run printer) classifies each new series once and
// encodes its points. Manager starts and stops loops as the target set changes.
package scrapeloop
