package relabel

import (
	"errors"
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// scrapeClass is a checked scrape class.
type scrapeClass struct {
	name          string
	isDefault     bool
	relabel       []*promrelabel.Config
	metricRelabel []*promrelabel.Config
	tls           *monitoringv1.TLSConfig
	authz         *monitoringv1.Authorization
	attach        *monitoringv1.AttachMetadata
	fallback      *monitoringv1.ScrapeProtocol
}

// noClass is the class of monitors when no class applies.
var noClass = &scrapeClass{}

func compileScrapeClass(sc *monitoringv1.ScrapeClass, regexes *regexCache) (*scrapeClass, error) {
	if sc.Name == "" {
		return nil, errors.New("name is empty")
	}
	out := &scrapeClass{
		name:      sc.Name,
		isDefault: sc.Default != nil && *sc.Default,
		tls:       sc.TLSConfig,
		authz:     sc.Authorization,
		attach:    sc.AttachMetadata,
		fallback:  sc.FallbackScrapeProtocol,
	}
	var err error
	if out.relabel, err = convertRelabelings(sc.Relabelings, regexes); err != nil {
		return nil, fmt.Errorf("invalid relabelings: %w", err)
	}
	if out.metricRelabel, err = convertRelabelings(sc.MetricRelabelings, regexes); err != nil {
		return nil, fmt.Errorf("invalid metric relabelings: %w", err)
	}
	if err := sc.TLSConfig.Validate(); err != nil {
		return nil, fmt.Errorf("invalid TLS config: %w", err)
	}
	if err := sc.Authorization.Validate(); err != nil {
		return nil, fmt.Errorf("invalid authorization: %w", err)
	}
	// A class belongs to no namespace, so it cannot name Secrets or
	// ConfigMaps; the Operator documents files only for classes too.
	if t := sc.TLSConfig; t != nil {
		if t.CA != (monitoringv1.SecretOrConfigMap{}) || t.Cert != (monitoringv1.SecretOrConfigMap{}) || t.KeySecret != nil {
			return nil, errors.New("tlsConfig: only caFile, certFile and keyFile are supported in a scrape class")
		}
		if _, err := classTLS(t); err != nil {
			return nil, fmt.Errorf("tlsConfig: %w", err)
		}
	}
	if a := sc.Authorization; a != nil && a.Credentials != nil {
		return nil, errors.New("authorization: only credentialsFile is supported in a scrape class")
	}
	if sc.FallbackScrapeProtocol != nil {
		if err := validateProtocols([]monitoringv1.ScrapeProtocol{*sc.FallbackScrapeProtocol}); err != nil {
			return nil, fmt.Errorf("fallbackScrapeProtocol: %w", err)
		}
	}
	return out, nil
}

// class returns the scrape class a monitor names, or the default class. An
// unknown name is an error, as in the Operator's check of monitors.
func (g *Generator) class(name *string) (*scrapeClass, error) {
	if name != nil && *name != "" {
		c, ok := g.classes[*name]
		if !ok {
			return nil, fmt.Errorf("scrapeClass %q not found in the agent's scrape classes", *name)
		}
		return c, nil
	}
	if g.defaultClass != nil {
		return g.defaultClass, nil
	}
	return noClass, nil
}
