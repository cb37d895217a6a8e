package ddclient

import (
	"fmt"
	"net/url"
	"strings"
)

// SeriesV3Auto is the setting that sends v3 series to Datadog's own sites
// and v2 to any other URL: the default of UseV3Series.
const SeriesV3Auto = "datadog_only"

// datadogSiteDomains are the domains of Datadog's sites (and of its staging
// sites, datad0g.*): every API host of a site is one of them or below one.
var datadogSiteDomains = []string{"datadoghq.com", "datadoghq.eu", "ddog-gov.com", "datad0g.com", "datad0g.eu"}

// UseV3Series says whether series posted to rawURL go as v3 columnar
// payloads (Config.SeriesV3), as the Datadog Agent's
// use_v3_api.series.enabled decides it (pkg/serializer/metrics.go,
// evalSeriesV3). setting, trimmed and in any case, is a boolean ("true",
// "1", "t", "yes", "on" or "false", "0", "f", "no", "off"), which holds for
// any URL, or "datadog_only" (also ""), which sends v3 to Datadog's sites
// only: another URL (a proxy, Observability Pipelines) may not accept v3.
// "datadog_only" is the Agent's default since DataDog/datadog-agent#53466.
//
// The Agent recognises Datadog by IsDatadogURL's regex
// ^app(\.mrf)?\.([a-z]{2,}\d{1,2}\.)?(datad(?:oghq|0g)\.(?:com|eu)|ddog-gov\.com)\.?$,
// which matches app.* hosts only; that is why DDOT adds its api.<site>
// endpoint explicitly (DataDog/datadog-agent#54997). nodescraper posts to
// api.<site>, so here a host is Datadog's when, lower-cased, without a
// trailing dot and without its port, it is one of the site domains or
// ends with "." and one: api.datadoghq.com, api.us3.datadoghq.com,
// app.datadoghq.eu, api.ddog-gov.com; not datadoghq.com.evil.io or
// mydatadoghq.com.
//
// An unknown setting is an error naming it and the allowed ones; so is a
// URL that does not parse when the setting needs its host.
func UseV3Series(setting, rawURL string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(setting)) {
	case "true", "1", "t", "yes", "on":
		return true, nil
	case "false", "0", "f", "no", "off":
		return false, nil
	case SeriesV3Auto, "":
		u, err := url.Parse(rawURL)
		if err != nil {
			return false, fmt.Errorf("v3 series %s: %w", SeriesV3Auto, err)
		}
		return isDatadogHost(u.Hostname()), nil
	}
	return false, fmt.Errorf("v3 series setting %q: want %s, true or false (or 1, t, yes, on / 0, f, no, off)", setting, SeriesV3Auto)
}

// isDatadogHost says whether host (without port) is one of Datadog's site
// domains or a name below one.
func isDatadogHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range datadogSiteDomains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}
