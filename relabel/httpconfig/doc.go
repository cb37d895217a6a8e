// Package httpconfig holds how a target's scrapes connect: authorization,
// basic auth, OAuth2, TLS, proxy, redirects and HTTP/2, as Prometheus'
// HTTP client settings (prometheus/common/config.HTTPClientConfig) hold
// them once loaded, with Secret and ConfigMap values already read.
//
// Package relabel decides these settings from a monitor (and the agent's
// scrape classes); package scrapeloop builds its HTTP clients from them.
// Own types keep prometheus/common/config (and the client_golang registry it
// links) out of the agent. Secrets print as "<secret>".
package httpconfig
