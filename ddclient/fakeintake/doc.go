// Package fakeintake is a strict stand-in for Datadog's metrics intake
// (POST /api/v2/series, the v3 columnar POST /api/intake/metrics/v3/series
// and GET /api/v1/validate), service checks (POST /api/v1/check_run) and
// metric metadata (PUT /api/v1/metrics/{metric_name}, application key
// required), for tests and demos where no Datadog account is reachable.
//
// It checks what the real intake checks (API key, Content-Encoding, the
// 512,000-byte compressed and 5,242,880-byte uncompressed limits, the accepted
// timestamp window) and decodes every body into datadog-api-client-go's
// datadogV2.MetricPayload, refusing what does not decode or is invalid for the
// model. v3 bodies are decoded with agent-payload's intake_v3.Payload, their
// dictionaries and columns checked strictly, and stored as the same
// MetricSeries (Stats.SeriesVersions tells which version came);
// Config.SeriesAPI serves one version only, so that a test proves which one
// its sender used. Where Datadog would silently accept something that is
// almost surely a sender bug (unknown fields, a count without interval) it
// refuses by default; Config relaxes each such check. Accepted series stay queryable (Points, Sum, Last,
// WaitFor) and faults (408, 429, 5xx, hangs) can be scripted per request.
package fakeintake
