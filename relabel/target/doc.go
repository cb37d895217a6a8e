// Package target defines what discovery hands the scraper: a Target (one
// endpoint to scrape, with its labels, schedule, limits and HTTP settings,
// or the reason it is dropped) and its Limits, as Prometheus'
// discovery/targetgroup is shared by discovery and scrape.
//
// Package relabel and package informer decide a target's fields from the
// monitors and the node's pods (or a file_sd file); package scrapeloop
// reads them. Key identifies a target's configuration (a changed key
// restarts its loop), Seed its series in the delta store.
package target
