package target

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/prometheus/prometheus/model/labels"
)

// Key identifies a target's configuration: two targets with the same key
// are the same loop. Every field is length-prefixed (strings, lists and maps
// carry their length, optional parts a presence flag, numbers are varints),
// so a key reads back into exactly one configuration: no two configurations
// share a key.
func (t *Target) Key() string {
	b := keyBuf(make([]byte, 0, 256))
	b.str(t.URL)
	b.labels(t.Labels)
	b.labels(t.Discovered)
	b.num(int64(t.Interval))
	b.num(int64(t.Timeout))
	b.bool(t.HonorLabels)
	b.bool(t.HonorTimestamps)
	b.num(int64(len(t.MetricRelabel)))
	for _, c := range t.MetricRelabel {
		b.str(string(c.Action))
		b.num(int64(len(c.SourceLabels)))
		for _, l := range c.SourceLabels {
			b.str(string(l))
		}
		b.str(c.Separator)
		b.str(c.Regex.String())
		b.num(int64(c.Modulus))
		b.str(c.TargetLabel)
		b.str(c.Replacement)
		b.num(int64(c.NameValidationScheme)) // which target labels Process accepts
	}
	b.num(t.Limits.BodySize) // not Targets, KeepDroppedTargets: see Limits
	b.num(t.Limits.Samples)
	b.num(t.Limits.Labels)
	b.num(t.Limits.LabelNameLength)
	b.num(t.Limits.LabelValueLength)
	b.http(t.HTTP)
	b.bool(t.OwnCredentials)
	b.str(t.Source)
	b.str(t.Pool)
	b.str(string(t.Drop.Reason))
	b.str(t.Drop.Detail)
	b.bool(t.Cluster)
	b.str(t.Term)
	return string(b)
}

// keyBuf builds a target key from self-delimiting fields.
type keyBuf []byte

func (b *keyBuf) str(s string) {
	*b = binary.AppendUvarint(*b, uint64(len(s)))
	*b = append(*b, s...)
}

func (b *keyBuf) num(n int64) { *b = binary.AppendVarint(*b, n) }

func (b *keyBuf) bool(v bool) { b.num(int64(b2i(v))) }

func (b *keyBuf) strs(ss []string) {
	b.num(int64(len(ss)))
	for _, s := range ss {
		b.str(s)
	}
}

// labels encodes ls itself: Labels.Bytes differs between Prometheus' label
// implementations, and the slice one joins with separator bytes a value may
// hold.
func (b *keyBuf) labels(ls labels.Labels) {
	b.num(int64(ls.Len()))
	ls.Range(func(l labels.Label) {
		b.str(l.Name)
		b.str(l.Value)
	})
}

// http appends everything of h that changes how a target is scraped,
// secrets included (the key is never shown), so a rotated secret restarts
// the target's loop with the new credentials.
func (b *keyBuf) http(h *httpconfig.Config) {
	b.bool(h != nil)
	if h == nil {
		return
	}
	b.bool(h.FollowRedirects)
	b.bool(h.EnableHTTP2)
	b.bool(h.Authorization != nil)
	if a := h.Authorization; a != nil {
		b.str(a.Type)
		b.str(string(a.Credentials))
		b.str(a.CredentialsFile)
	}
	b.bool(h.BasicAuth != nil)
	if a := h.BasicAuth; a != nil {
		b.str(a.Username)
		b.str(string(a.Password))
	}
	b.bool(h.OAuth2 != nil)
	if o := h.OAuth2; o != nil {
		b.str(o.ClientID)
		b.str(string(o.ClientSecret))
		b.str(o.TokenURL)
		b.strs(o.Scopes)
		b.num(int64(len(o.EndpointParams)))
		for _, k := range slices.Sorted(maps.Keys(o.EndpointParams)) {
			b.str(k)
			b.str(o.EndpointParams[k])
		}
		b.tls(o.TLS)
		b.proxy(o.Proxy)
	}
	b.tls(h.TLS)
	b.proxy(h.Proxy)
}

func (b *keyBuf) tls(t httpconfig.TLS) {
	b.str(t.CA)
	b.str(t.Cert)
	b.str(string(t.Key))
	b.str(t.CAFile)
	b.str(t.CertFile)
	b.str(t.KeyFile)
	b.str(t.ServerName)
	b.bool(t.InsecureSkipVerify)
	b.num(int64(t.MinVersion))
	b.num(int64(t.MaxVersion))
}

func (b *keyBuf) proxy(p httpconfig.Proxy) {
	b.bool(p.URL != nil)
	if p.URL != nil {
		b.str(p.URL.String())
	}
	b.str(p.NoProxy)
	b.bool(p.FromEnvironment)
	b.num(int64(len(p.ConnectHeader)))
	for _, k := range slices.Sorted(maps.Keys(p.ConnectHeader)) {
		b.str(k)
		vs := p.ConnectHeader[k]
		b.num(int64(len(vs)))
		for _, v := range vs {
			b.str(string(v)) // the secret itself: %v would print "<secret>"
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Seed identifies the target's series in the delta store. It depends only on
// the URL and the target labels (and a Cluster target's Term), so a
// restarted agent finds the same state.
// The labels are encoded here, length-prefixed: Labels.Bytes overwrites its
// buffer (it would drop the URL) and its encoding may change between
// Prometheus versions.
func (t *Target) Seed() uint64 {
	// No label count, unlike keyBuf.labels: the seed is in checkpoints and
	// keeps its encoding.
	b := keyBuf(make([]byte, 0, 256))
	b.str(t.URL)
	t.Labels.Range(func(l labels.Label) {
		b.str(l.Name)
		b.str(l.Value)
	})
	if t.Term != "" {
		// After the labels, so the seeds of node targets keep their value;
		// a zero byte cannot start a label (names are not empty).
		b = append(b, 0)
		b.str(t.Term)
	}
	return xxhash.Sum64(b)
}
