package relabel

import (
	"fmt"
	"slices"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
)

// Store gives the values of Secret and ConfigMap keys. The informer implements
// it over its caches; a monitor's references are always looked up in the
// monitor's own namespace, as the Operator does. Errors should say whether the
// object or the key is missing; they are wrapped with the monitor and field.
type Store interface {
	SecretKey(namespace, name, key string) ([]byte, error)
	ConfigMapKey(namespace, name, key string) (string, error)
}

// RefKind is the kind of object a monitor reads credentials from.
type RefKind string

// The kinds of objects a monitor can reference.
const (
	SecretRef    RefKind = "Secret"
	ConfigMapRef RefKind = "ConfigMap"
)

// ObjectRef names a Secret or ConfigMap a monitor reads. The informer uses the
// list to fetch only what monitors need and to rebuild a monitor when one of
// its objects changes (secret rotation) or appears (a monitor rejected for a
// missing secret recovers).
type ObjectRef struct {
	Kind      RefKind
	Namespace string
	Name      string
}

func (r ObjectRef) String() string {
	return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name)
}

// MapStore is a Store over maps keyed by "namespace/name": for tests and for
// callers that already hold the objects.
type MapStore struct {
	Secrets    map[string]map[string][]byte
	ConfigMaps map[string]map[string]string
}

// SecretKey implements Store.
func (s MapStore) SecretKey(namespace, name, key string) ([]byte, error) {
	obj, ok := s.Secrets[namespace+"/"+name]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s not found", namespace, name)
	}
	v, ok := obj[key]
	if !ok {
		return nil, fmt.Errorf("key %q in secret %s/%s not found", key, namespace, name)
	}
	return v, nil
}

// ConfigMapKey implements Store.
func (s MapStore) ConfigMapKey(namespace, name, key string) (string, error) {
	obj, ok := s.ConfigMaps[namespace+"/"+name]
	if !ok {
		return "", fmt.Errorf("configmap %s/%s not found", namespace, name)
	}
	v, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("key %q in configmap %s/%s not found", key, namespace, name)
	}
	return v, nil
}

// refs collects the Secrets and ConfigMaps of one monitor, deduplicated and
// sorted.
type refs struct {
	ns  string
	set map[ObjectRef]struct{}
}

func (r *refs) secret(sel *corev1.SecretKeySelector) {
	if sel != nil && sel.Name != "" {
		r.add(ObjectRef{Kind: SecretRef, Namespace: r.ns, Name: sel.Name})
	}
}

func (r *refs) secretOrConfigMap(sel monitoringv1.SecretOrConfigMap) {
	r.secret(sel.Secret)
	if sel.ConfigMap != nil && sel.ConfigMap.Name != "" {
		r.add(ObjectRef{Kind: ConfigMapRef, Namespace: r.ns, Name: sel.ConfigMap.Name})
	}
}

func (r *refs) add(o ObjectRef) {
	if r.set == nil {
		r.set = map[ObjectRef]struct{}{}
	}
	r.set[o] = struct{}{}
}

func (r *refs) safeTLS(c *monitoringv1.SafeTLSConfig) {
	if c == nil {
		return
	}
	r.secretOrConfigMap(c.CA)
	r.secretOrConfigMap(c.Cert)
	r.secret(c.KeySecret)
}

func (r *refs) proxy(p monitoringv1.ProxyConfig) {
	for _, sels := range p.ProxyConnectHeader {
		for i := range sels {
			r.secret(&sels[i])
		}
	}
}

func (r *refs) http(h *monitoringv1.HTTPConfigWithoutTLS) {
	if h.Authorization != nil {
		r.secret(h.Authorization.Credentials)
	}
	if h.BasicAuth != nil {
		r.secret(&h.BasicAuth.Username)
		r.secret(&h.BasicAuth.Password)
	}
	if o := h.OAuth2; o != nil {
		r.secretOrConfigMap(o.ClientID)
		r.secret(&o.ClientSecret)
		r.safeTLS(o.TLSConfig)
		r.proxy(o.ProxyConfig)
	}
	//lint:ignore SA1019 deprecated, but the Operator still serves it
	r.secret(h.BearerTokenSecret)
}

func (r *refs) list() []ObjectRef {
	out := make([]ObjectRef, 0, len(r.set))
	for o := range r.set {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b ObjectRef) int {
		return strings.Compare(a.String(), b.String())
	})
	return out
}
