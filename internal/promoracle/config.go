package promoracle

import (
	"fmt"
	"log/slog"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus-operator/prometheus-operator/pkg/assets"
	prompkg "github.com/prometheus-operator/prometheus-operator/pkg/prometheus"
)

// Config returns the Prometheus configuration the Operator generates for
// prom with the ServiceMonitors sms, as it writes it into the Prometheus
// config secret. Every monitor is taken as the Operator would after its
// selection: the caller passes those prom selects. The monitors may not
// reference Secrets or ConfigMaps (there is no store).
func Config(prom *monitoringv1.Prometheus, sms []*monitoringv1.ServiceMonitor) ([]byte, error) {
	logger := slog.New(slog.DiscardHandler)
	// The Operator checks once at start that the cluster serves
	// EndpointSlices; every supported Kubernetes does.
	cg, err := prompkg.NewConfigGenerator(logger, prom, prompkg.WithEndpointSliceSupport())
	if err != nil {
		return nil, fmt.Errorf("config generator: %w", err)
	}
	byKey := make(map[string]*monitoringv1.ServiceMonitor, len(sms))
	for _, sm := range sms {
		byKey[sm.Namespace+"/"+sm.Name] = sm
	}
	out, err := cg.GenerateServerConfiguration(prom, byKey, nil, nil, nil, assets.NewTestStoreBuilder(), nil, nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("generate configuration: %w", err)
	}
	return out, nil
}
