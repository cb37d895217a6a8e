package promoracle

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus-operator/prometheus-operator/pkg/assets"
	prompkg "github.com/prometheus-operator/prometheus-operator/pkg/prometheus"
)

// Config returns the Prometheus configuration the Operator generates for
// prom with the ServiceMonitors sms, as Prometheus' pod number shard reads
// it: the Operator writes $(SHARD) and $(POD_NAME) into the config secret,
// and the config-reloader beside Prometheus expands them from its
// environment (SHARD, POD_NAME <prometheus-name>-<shard's replica>). Every monitor is taken as the Operator would after its
// selection: the caller passes those prom selects. The monitors may not
// reference Secrets or ConfigMaps (there is no store).
func Config(prom *monitoringv1.Prometheus, sms []*monitoringv1.ServiceMonitor, shard int) ([]byte, error) {
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
	pod := fmt.Sprintf("prometheus-%s-%d", prom.Name, 0)
	if shard > 0 {
		pod = fmt.Sprintf("prometheus-%s-shard-%d-%d", prom.Name, shard, 0)
	}
	out = bytes.ReplaceAll(out, []byte("$(SHARD)"), []byte(strconv.Itoa(shard)))
	return bytes.ReplaceAll(out, []byte("$(POD_NAME)"), []byte(pod)), nil
}
