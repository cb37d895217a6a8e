// Package scrapeloop runs one loop per target: a jittered schedule, the HTTP
// fetch, the zero-allocation parse (sub-package exposition), the series cache
// that skips label work for series seen before, metric relabeling, the delta
// step and the hand-off of Datadog points. Manager starts and stops loops as
// the target set changes.
package scrapeloop
