// Which series API an intake serves: both (the default), or only one, so a
// test run proves which version its sender used.

package fakeintake

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// ReasonWrongSeriesAPI: a series payload came to the path of the version
// Config.SeriesAPI does not serve.
const ReasonWrongSeriesAPI Reason = "wrong_series_api"

// SeriesAPIEnv is the agent's environment variable (flag
// --use-v3-api-series) choosing the series API it sends to: datadog_only
// (the default), true or false.
const SeriesAPIEnv = "DD_USE_V3_API_SERIES_ENABLED"

// SeriesAPIFromEnv is the series API an agent with this process's
// environment sends to a loopback intake (see SeriesAPIFor).
func SeriesAPIFromEnv() string { return SeriesAPIFor(os.Getenv(SeriesAPIEnv)) }

// SeriesAPIFor is the series API an agent whose SeriesAPIEnv is setting sends
// to a loopback intake: SeriesV3 when setting is true, 1, t, yes or on (any
// case, spaces trimmed), else SeriesV2. Under the default, datadog_only, the
// agent sends v3 to Datadog's own sites only, so a loopback URL, such as
// every test's intake, gets v2.
func SeriesAPIFor(setting string) string {
	switch strings.ToLower(strings.TrimSpace(setting)) {
	case "true", "1", "t", "yes", "on":
		return SeriesV3
	}
	return SeriesV2
}

// checkSeriesAPI validates Config.SeriesAPI.
func checkSeriesAPI(v string) error {
	switch v {
	case "", SeriesV2, SeriesV3:
		return nil
	}
	return fmt.Errorf("intake config: SeriesAPI %q: want %q, %q or \"\" (both)", v, SeriesV2, SeriesV3)
}

// wrongSeriesAPI refuses a series request to the path of version when the
// intake serves only the other one: 404, as a proxy without the route
// answers, before any other check or fault. It reports whether it refused.
func (in *Intake) wrongSeriesAPI(w http.ResponseWriter, r *http.Request, version string) bool {
	if in.cfg.SeriesAPI == "" || in.cfg.SeriesAPI == version {
		return false
	}
	serves := SeriesPath
	if in.cfg.SeriesAPI == SeriesV3 {
		serves = SeriesV3Path
	}
	// Read what is left (bounded), as serveSeries does, so the sender sees
	// the answer instead of a reset connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
	in.refuse(w, r, &rejection{http.StatusNotFound, ReasonWrongSeriesAPI,
		fmt.Sprintf("no such endpoint %s: this intake serves only the %s series API (POST %s)", r.URL.Path, in.cfg.SeriesAPI, serves)})
	return true
}
