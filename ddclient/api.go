package ddclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
)

// Bounds of what waits for the Datadog API besides series.
const (
	// maxPendingChecks bounds the service checks waiting to be sent (one
	// per target and scrape); past it the oldest are dropped and counted.
	maxPendingChecks = 10_000
	// checksPerRequest bounds one POST /api/v1/check_run.
	checksPerRequest = 1000
	// checkMaxAge is how old a service check Datadog still takes.
	checkMaxAge = 10 * time.Minute
	// metadataPerRound bounds the metadata edits of one flush: one PUT per
	// metric name, paced so a new exporter's hundreds of names do not hit
	// the API's rate limit at once.
	metadataPerRound = 20
)

// apiClient sends what goes through datadog-api-client-go: the targets'
// health service checks (POST /api/v1/check_run) and metric metadata (PUT
// /api/v1/metrics/{metric_name}, which needs an application key). Both are
// sent from one goroutine of Client.Run, every flush interval.
type apiClient struct {
	c       *Client
	api     *datadog.APIClient
	server  map[string]string // the server variables of URL
	checks  *datadogV1.ServiceChecksApi
	metrics *datadogV1.MetricsApi

	checksSent, checksDropped *metrics.Counter
	metaSent, metaFailed      *metrics.Counter

	mu      sync.Mutex
	pending []datadogV1.ServiceCheck
	meta    *metaCache // by Datadog metric name
	// metaBlocked: until then no metadata is sent (a rate limit, a refused key).
	metaBlocked time.Time
}

func newAPIClient(c *Client) (*apiClient, error) {
	u, err := url.Parse(c.cfg.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("ddclient: URL %q is not an http(s) base URL", c.cfg.URL)
	}
	cfg := datadog.NewConfiguration()
	cfg.HTTPClient = c.cfg.HTTPClient
	cfg.UserAgent = "nodescraper"
	api := datadog.NewAPIClient(cfg)
	set := c.m.set
	a := &apiClient{
		c: c, api: api,
		// Server 1 of every operation is "{protocol}://{name}": any base URL.
		server:        map[string]string{"protocol": u.Scheme, "name": u.Host + strings.TrimSuffix(u.Path, "/")},
		checks:        datadogV1.NewServiceChecksApi(api),
		metrics:       datadogV1.NewMetricsApi(api),
		checksSent:    set.NewCounter(`nodescraper_dd_service_checks_sent_total`),
		checksDropped: set.NewCounter(`nodescraper_dd_service_checks_dropped_total`),
		metaSent:      set.NewCounter(`nodescraper_dd_metadata_updates_total{result="sent"}`),
		metaFailed:    set.NewCounter(`nodescraper_dd_metadata_updates_total{result="failed"}`),
		meta:          newMetaCache(c.cfg.MetadataMaxNames, set.NewCounter(`nodescraper_dd_metadata_evicted_total`)),
	}
	set.NewGauge(`nodescraper_dd_metadata_names`, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(a.meta.len())
	})
	return a, nil
}

// ctx carries the server and the keys; appKey is "" for none.
func (a *apiClient) ctx(parent context.Context, appKey string) context.Context {
	ctx := context.WithValue(parent, datadog.ContextServerIndex, 1)
	ctx = context.WithValue(ctx, datadog.ContextServerVariables, a.server)
	keys := map[string]datadog.APIKey{"apiKeyAuth": {Key: *a.c.key.Load()}}
	if appKey != "" {
		keys["appKeyAuth"] = datadog.APIKey{Key: appKey}
	}
	return context.WithValue(ctx, datadog.ContextAPIKeys, keys)
}

// addCheck implements checkSink.
func (c *Client) addCheck(sc datadogV1.ServiceCheck) {
	if !c.cfg.ServiceChecks {
		return
	}
	a := c.api
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) >= maxPendingChecks {
		n := len(a.pending) - maxPendingChecks + 1
		a.pending = append(a.pending[:0], a.pending[n:]...)
		a.checksDropped.Add(n)
	}
	a.pending = append(a.pending, sc)
}

// run sends checks and metadata every flush interval until ctx ends.
func (a *apiClient) run(ctx context.Context) {
	t := time.NewTicker(a.c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.sendChecks(ctx)
		a.sendMetadata(ctx)
	}
}

// sendChecks posts the pending service checks; what fails for a reason a
// retry may fix waits for the next round, what Datadog would no longer take
// is dropped and counted.
func (a *apiClient) sendChecks(ctx context.Context) {
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	oldest := a.c.cfg.Now().Add(-checkMaxAge).Unix()
	fresh := batch[:0]
	for _, sc := range batch {
		if sc.GetTimestamp() >= oldest {
			fresh = append(fresh, sc)
		}
	}
	a.checksDropped.Add(len(batch) - len(fresh))
	for len(fresh) > 0 {
		n := min(len(fresh), checksPerRequest)
		rctx, cancel := context.WithTimeout(a.ctx(ctx, ""), a.c.cfg.RequestTimeout)
		_, resp, err := a.checks.SubmitServiceCheck(rctx, fresh[:n])
		cancel()
		if err != nil {
			if status := statusOf(resp); status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge {
				a.c.cfg.Logger.Error("Datadog rejected service checks; dropping them", "status", status, "checks", n, "err", apiErr(err))
				a.checksDropped.Add(n)
				fresh = fresh[n:]
				continue
			}
			a.c.cfg.Logger.Warn("sending service checks failed; retrying next flush", "checks", len(fresh), "err", apiErr(err))
			a.mu.Lock()
			a.pending = append(fresh, a.pending...)
			if over := len(a.pending) - maxPendingChecks; over > 0 {
				a.pending = a.pending[over:]
				a.checksDropped.Add(over)
			}
			a.mu.Unlock()
			return
		}
		a.checksSent.Add(n)
		fresh = fresh[n:]
	}
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// apiErr adds the answer's body to the client's error.
func apiErr(err error) error {
	var ge datadog.GenericOpenAPIError
	if errors.As(err, &ge) && len(ge.Body()) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ge.Body())))
	}
	return err
}

// observeMetadata records the metadata of a Datadog metric name each time
// an appender meets it (makes its shape), to be sent MetadataDelay after
// its first sight (the metric must exist in Datadog first); a changed HELP
// or UNIT sends it again. The names are held in a bounded cache (see
// metaCache): an evicted name's metadata may be sent again.
func (c *Client) observeMetadata(name string, md datadogV1.MetricMetadata) {
	if c.cfg.AppKey == "" && c.cfg.AppKeyFile == "" {
		return
	}
	a := c.api
	a.mu.Lock()
	defer a.mu.Unlock()
	a.meta.observe(name, md, c.cfg.Now().Add(c.cfg.MetadataDelay))
}

func sameMetadata(a, b datadogV1.MetricMetadata) bool {
	return a.GetType() == b.GetType() && a.GetUnit() == b.GetUnit() && a.GetDescription() == b.GetDescription()
}

// appKey is the application key: AppKeyFile's content when set (read
// again every round, so a rotated Secret is taken), else AppKey.
func (c *Client) appKey() (string, error) {
	if c.cfg.AppKeyFile == "" {
		return c.cfg.AppKey, nil
	}
	b, err := os.ReadFile(c.cfg.AppKeyFile)
	if err != nil {
		return "", fmt.Errorf("application key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("application key file %s is empty", c.cfg.AppKeyFile)
	}
	return key, nil
}

// sendMetadata sends the metadata that is due: once per name, again every
// MetadataInterval; a metric Datadog does not know yet (404) is tried again
// MetadataDelay later.
func (a *apiClient) sendMetadata(ctx context.Context) {
	now := a.c.cfg.Now()
	a.mu.Lock()
	if now.Before(a.metaBlocked) {
		a.mu.Unlock()
		return
	}
	var due []string
	for name, st := range a.meta.byName {
		if !now.Before(st.next) {
			due = append(due, name)
			if len(due) == metadataPerRound {
				break
			}
		}
	}
	a.mu.Unlock()
	if len(due) == 0 {
		return
	}
	key, err := a.c.appKey()
	if err != nil {
		a.c.cfg.Logger.Warn("metric metadata not sent", "err", err)
		return
	}
	for _, name := range due {
		a.mu.Lock()
		st := a.meta.get(name)
		var md datadogV1.MetricMetadata
		if st != nil {
			md = st.md
		}
		a.mu.Unlock()
		if st == nil {
			continue // evicted meanwhile
		}
		rctx, cancel := context.WithTimeout(a.ctx(ctx, key), a.c.cfg.RequestTimeout)
		_, resp, err := a.metrics.UpdateMetricMetadata(rctx, name, md)
		cancel()
		next := now.Add(a.c.cfg.MetadataInterval)
		block := time.Time{}
		switch status := statusOf(resp); {
		case err == nil:
			a.metaSent.Inc()
		case status == http.StatusNotFound:
			next = now.Add(a.c.cfg.MetadataDelay) // not in Datadog yet
		case status == http.StatusForbidden || status == http.StatusUnauthorized:
			a.metaFailed.Inc()
			a.c.cfg.Logger.Error("Datadog refused the keys for metric metadata (check the application key)", "metric", name, "status", status)
			block = now.Add(a.c.cfg.MetadataDelay)
			next = block
		case status == http.StatusTooManyRequests:
			block = now.Add(a.c.cfg.MetadataDelay)
			next = block
		default:
			a.metaFailed.Inc()
			a.c.cfg.Logger.Warn("sending metric metadata failed", "metric", name, "status", status, "err", apiErr(err))
			next = now.Add(a.c.cfg.MetadataDelay)
		}
		a.mu.Lock()
		if st := a.meta.get(name); st != nil && sameMetadata(st.md, md) {
			st.next, st.sent = next, st.sent || err == nil
		}
		if !block.IsZero() {
			a.metaBlocked = block
		}
		a.mu.Unlock()
		if !block.IsZero() || ctx.Err() != nil {
			return
		}
	}
}

// metadataSink takes the metadata of the metric names appenders meet; the
// Client is one.
type metadataSink interface {
	observeMetadata(name string, md datadogV1.MetricMetadata)
}

// metadataFor is the Datadog metadata of a mapped series: its type, the
// family's # HELP as description, and the unit of # UNIT, or else of the
// name's Prometheus base-unit suffix (foo_seconds, foo_bytes_total), for
// the metrics that measure in it (not a histogram's bucket and count, which
// count observations). Units Datadog does not list are left out.
func metadataFor(met metric, s *scrapeloop.Series) (datadogV1.MetricMetadata, bool) {
	var md datadogV1.MetricMetadata
	if met.typ == Count {
		md.SetType("count")
	} else {
		md.SetType("gauge")
	}
	if len(s.Help) > 0 {
		md.SetDescription(string(s.Help))
	}
	counts := s.Role == exposition.RoleBucket || s.Role == exposition.RoleCount
	if !counts {
		unit := string(s.Unit)
		if unit == "" {
			unit = unitSuffix(string(s.Family))
		}
		if u, ok := datadogUnits[unit]; ok {
			md.SetUnit(u)
		}
	}
	return md, md.Description != nil || md.Unit != nil
}

// datadogUnits maps Prometheus' base units (and common scaled ones) to
// Datadog's unit names.
var datadogUnits = map[string]string{
	"seconds": "second", "milliseconds": "millisecond", "microseconds": "microsecond", "nanoseconds": "nanosecond",
	"bytes": "byte", "bits": "bit", "ratio": "fraction", "percent": "percent",
}

// unitSuffix is the unit a Prometheus name ends with, before _total.
func unitSuffix(family string) string {
	family = strings.TrimSuffix(family, "_total")
	i := strings.LastIndexByte(family, '_')
	if i < 0 {
		return ""
	}
	return family[i+1:]
}
