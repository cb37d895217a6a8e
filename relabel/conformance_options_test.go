package relabel

// The settings of a golden job and of a generated Job, flattened to the same
// keys so that the conformance test can compare them one by one.

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// expectedOptions derives the settings Prometheus applies to a golden job:
// the job's own values, else the global section, else Prometheus' defaults.
func expectedOptions(t *testing.T, e *expectedJob, g expectedGlobal, store Store) map[string]string {
	t.Helper()
	o := map[string]string{}
	if len(e.SD) != 1 {
		t.Fatalf("%s: %d kubernetes_sd_configs", e.JobName, len(e.SD))
	}
	sd := e.SD[0]
	o["sd.role"] = sd.Role
	o["sd.namespaces"] = strings.Join(sd.Namespaces.Names, ",")
	var sels []string
	for _, s := range sd.Selectors {
		sels = append(sels, s.Role+":"+s.Label+":"+s.Field)
	}
	o["sd.selectors"] = strings.Join(sels, ";")
	o["sd.attach_node"] = strconv.FormatBool(sd.AttachMetadata.Node)

	interval := parseDur(t, e.ScrapeInterval, parseDur(t, g.ScrapeInterval, time.Minute))
	o["interval"] = interval.String()
	o["timeout"] = parseDur(t, e.ScrapeTimeout, min(parseDur(t, g.ScrapeTimeout, 10*time.Second), interval)).String()
	o["scheme"] = or(e.Scheme, "http")
	o["metrics_path"] = or(e.MetricsPath, "/metrics")
	o["params"] = fmt.Sprint(e.Params)
	o["honor_labels"] = strconv.FormatBool(e.HonorLabels)
	o["honor_timestamps"] = strconv.FormatBool(e.HonorTimestamps == nil || *e.HonorTimestamps)
	o["track_timestamps_staleness"] = strconv.FormatBool(e.TrackTimestampsStaleness)
	o["enable_compression"] = "true"
	limit := func(job, global int64) string {
		if job != 0 {
			return strconv.FormatInt(job, 10)
		}
		return strconv.FormatInt(global, 10)
	}
	el, gl := e.Limits, g.Limits
	o["sample_limit"] = limit(el.SampleLimit, gl.SampleLimit)
	o["target_limit"] = limit(el.TargetLimit, gl.TargetLimit)
	o["label_limit"] = limit(el.LabelLimit, gl.LabelLimit)
	o["label_name_length_limit"] = limit(el.LabelNameLengthLimit, gl.LabelNameLengthLimit)
	o["label_value_length_limit"] = limit(el.LabelValueLengthLimit, gl.LabelValueLengthLimit)
	o["keep_dropped_targets"] = limit(el.KeepDroppedTargets, gl.KeepDroppedTargets)
	o["body_size_limit"] = limit(parseBytes(t, el.BodySizeLimit), parseBytes(t, gl.BodySizeLimit))
	native := e.ScrapeNativeHistograms != nil && *e.ScrapeNativeHistograms
	protocols := e.ScrapeProtocols
	if protocols == nil {
		protocols = g.ScrapeProtocols
	}
	if protocols == nil {
		protocols = []string{"OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4"}
		if native {
			protocols = append([]string{"PrometheusProto"}, protocols...)
		}
	}
	o["scrape_protocols"] = strings.Join(protocols, ",")
	o["fallback_scrape_protocol"] = e.FallbackScrapeProtocol
	o["native.scrape"] = strconv.FormatBool(native)
	o["native.bucket_limit"] = strconv.FormatInt(e.NativeHistogramBucketLimit, 10)
	o["native.min_bucket_factor"] = strconv.FormatFloat(e.NativeHistogramMinBucketFactor, 'g', -1, 64)
	classic := e.AlwaysScrapeClassicHistograms
	if classic == nil {
		classic = e.ScrapeClassicHistograms
	}
	o["native.always_scrape_classic"] = strconv.FormatBool(classic != nil && *classic)
	o["native.convert_nhcb"] = strconv.FormatBool(e.ConvertClassicToNHCB)
	httpOptions(o, fromPromHTTP(t, &e.HTTP, store))
	return o
}

// fromPromHTTP maps Prometheus' HTTP client settings onto the agent's type;
// TLS files the Operator wrote from Secrets and ConfigMaps
// (/etc/prometheus/certs/<0 secret|1 configmap>_<ns>_<name>_<key>) are
// replaced by the values they hold.
func fromPromHTTP(t *testing.T, h *config.HTTPClientConfig, store Store) httpconfig.Config {
	t.Helper()
	out := httpconfig.Config{FollowRedirects: h.FollowRedirects, EnableHTTP2: h.EnableHTTP2,
		TLS: fromPromTLS(t, h.TLSConfig, store), Proxy: fromPromProxy(h.ProxyConfig)}
	if a := h.Authorization; a != nil {
		out.Authorization = &httpconfig.Authorization{Type: a.Type, Credentials: httpconfig.Secret(a.Credentials), CredentialsFile: a.CredentialsFile}
	}
	if b := h.BasicAuth; b != nil {
		out.BasicAuth = &httpconfig.BasicAuth{Username: b.Username, Password: httpconfig.Secret(b.Password)}
	}
	if o := h.OAuth2; o != nil {
		out.OAuth2 = &httpconfig.OAuth2{ClientID: o.ClientID, ClientSecret: httpconfig.Secret(o.ClientSecret), TokenURL: o.TokenURL,
			Scopes: o.Scopes, EndpointParams: o.EndpointParams, TLS: fromPromTLS(t, o.TLSConfig, store), Proxy: fromPromProxy(o.ProxyConfig)}
	}
	return out
}

func fromPromTLS(t *testing.T, c config.TLSConfig, store Store) httpconfig.TLS {
	t.Helper()
	out := httpconfig.TLS{CA: c.CA, Cert: c.Cert, Key: httpconfig.Secret(c.Key), CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
		ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: uint16(c.MinVersion), MaxVersion: uint16(c.MaxVersion)}
	asset := func(file *string) string {
		rest, ok := strings.CutPrefix(*file, "/etc/prometheus/certs/")
		if !ok {
			return ""
		}
		*file = ""
		p := strings.SplitN(rest, "_", 4)
		if len(p) != 4 {
			t.Fatalf("TLS asset %q: want <from>_<ns>_<name>_<key>", rest)
		}
		var v string
		var err error
		if p[0] == "0" {
			var b []byte
			b, err = store.SecretKey(p[1], p[2], p[3])
			v = string(b)
		} else {
			v, err = store.ConfigMapKey(p[1], p[2], p[3])
		}
		if err != nil {
			t.Fatalf("TLS asset %q: %v", rest, err)
		}
		return v
	}
	if v := asset(&out.CAFile); v != "" {
		out.CA = v
	}
	if v := asset(&out.CertFile); v != "" {
		out.Cert = v
	}
	if v := asset(&out.KeyFile); v != "" {
		out.Key = httpconfig.Secret(v)
	}
	return out
}

func fromPromProxy(p config.ProxyConfig) httpconfig.Proxy {
	out := httpconfig.Proxy{URL: p.ProxyURL.URL, NoProxy: p.NoProxy, FromEnvironment: p.ProxyFromEnvironment}
	if len(p.ProxyConnectHeader) > 0 {
		out.ConnectHeader = map[string][]httpconfig.Secret{}
		for k, vs := range p.ProxyConnectHeader {
			for _, v := range vs {
				out.ConnectHeader[k] = append(out.ConnectHeader[k], httpconfig.Secret(v))
			}
		}
	}
	return out
}

// jobOptions flattens a job's settings with the keys expectedOptions uses.
func jobOptions(j *Job) map[string]string {
	o := map[string]string{}
	o["sd.role"] = string(j.SD.Role)
	o["sd.namespaces"] = strings.Join(j.SD.Namespaces, ",")
	var sels []string
	for _, s := range j.SD.Selectors {
		sels = append(sels, string(s.Role)+":"+s.Label+":")
	}
	o["sd.selectors"] = strings.Join(sels, ";")
	o["sd.attach_node"] = strconv.FormatBool(j.SD.AttachNodeMetadata)
	s := &j.Scrape
	o["interval"] = s.Interval.String()
	o["timeout"] = s.Timeout.String()
	o["scheme"] = s.Scheme
	o["metrics_path"] = s.MetricsPath
	o["params"] = fmt.Sprint(map[string][]string(s.Params))
	o["honor_labels"] = strconv.FormatBool(s.HonorLabels)
	o["honor_timestamps"] = strconv.FormatBool(s.HonorTimestamps)
	o["track_timestamps_staleness"] = strconv.FormatBool(s.TrackTimestampsStaleness)
	o["enable_compression"] = strconv.FormatBool(s.EnableCompression)
	o["sample_limit"] = strconv.FormatInt(s.Limits.Samples, 10)
	o["target_limit"] = strconv.FormatInt(s.Limits.Targets, 10)
	o["label_limit"] = strconv.FormatInt(s.Limits.Labels, 10)
	o["label_name_length_limit"] = strconv.FormatInt(s.Limits.LabelNameLength, 10)
	o["label_value_length_limit"] = strconv.FormatInt(s.Limits.LabelValueLength, 10)
	o["keep_dropped_targets"] = strconv.FormatInt(s.Limits.KeepDroppedTargets, 10)
	o["body_size_limit"] = strconv.FormatInt(s.Limits.BodySize, 10)
	o["scrape_protocols"] = strings.Join(s.ScrapeProtocols, ",")
	o["fallback_scrape_protocol"] = s.FallbackProtocol
	n := s.NativeHistograms
	o["native.scrape"] = strconv.FormatBool(n.Scrape)
	o["native.bucket_limit"] = strconv.FormatInt(n.BucketLimit, 10)
	o["native.min_bucket_factor"] = strconv.FormatFloat(n.MinBucketFactor, 'g', -1, 64)
	o["native.always_scrape_classic"] = strconv.FormatBool(n.AlwaysScrapeClassic)
	o["native.convert_nhcb"] = strconv.FormatBool(n.ConvertClassicToNHCB)
	httpOptions(o, j.HTTP)
	return o
}

func httpOptions(o map[string]string, h httpconfig.Config) {
	o["http.follow_redirects"] = strconv.FormatBool(h.FollowRedirects)
	o["http.enable_http2"] = strconv.FormatBool(h.EnableHTTP2)
	o["http.authorization"] = ""
	if a := h.Authorization; a != nil {
		o["http.authorization"] = fmt.Sprintf("type=%s credentials=%s file=%s", a.Type, string(a.Credentials), a.CredentialsFile)
	}
	o["http.basic_auth"] = ""
	if b := h.BasicAuth; b != nil {
		o["http.basic_auth"] = b.Username + ":" + string(b.Password)
	}
	o["http.oauth2"] = ""
	if a := h.OAuth2; a != nil {
		o["http.oauth2"] = fmt.Sprintf("id=%s secret=%s url=%s scopes=%q params=%v", a.ClientID, string(a.ClientSecret), a.TokenURL, a.Scopes, a.EndpointParams)
		tlsOptions(o, "http.oauth2.tls.", a.TLS)
		proxyOptions(o, "http.oauth2.proxy.", a.Proxy)
	}
	tlsOptions(o, "http.tls.", h.TLS)
	proxyOptions(o, "http.proxy.", h.Proxy)
}

func tlsOptions(o map[string]string, p string, c httpconfig.TLS) {
	o[p+"ca"] = c.CA
	o[p+"cert"] = c.Cert
	o[p+"key"] = string(c.Key)
	o[p+"files"] = c.CAFile + "|" + c.CertFile + "|" + c.KeyFile
	o[p+"server_name"] = c.ServerName
	o[p+"insecure_skip_verify"] = strconv.FormatBool(c.InsecureSkipVerify)
	o[p+"versions"] = fmt.Sprint(c.MinVersion, c.MaxVersion)
}

func proxyOptions(o map[string]string, p string, c httpconfig.Proxy) {
	o[p+"url"] = ""
	if c.URL != nil {
		o[p+"url"] = c.URL.String()
	}
	o[p+"no_proxy"] = c.NoProxy
	o[p+"from_environment"] = strconv.FormatBool(c.FromEnvironment)
	var hs []string
	for k, vs := range c.ConnectHeader {
		for _, v := range vs {
			hs = append(hs, k+"="+string(v))
		}
	}
	sort.Strings(hs)
	o[p+"connect_header"] = strings.Join(hs, ",")
}

func parseDur(t *testing.T, s string, def time.Duration) time.Duration {
	t.Helper()
	if s == "" {
		return def
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

func parseBytes(t *testing.T, s string) int64 {
	t.Helper()
	if s == "" {
		return 0
	}
	// Prometheus' units.Base2Bytes: KB and KiB alike are 1024.
	mult := map[string]int64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	for _, u := range []string{"KB", "MB", "GB", "TB", "B"} {
		if n, ok := strings.CutSuffix(s, u); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("byte size %q: %v", s, err)
			}
			return v * mult[u]
		}
	}
	t.Fatalf("byte size %q", s)
	return 0
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
