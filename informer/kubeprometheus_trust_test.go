package informer

import (
	"github.com/nodescraper/nodescraper/relabel"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// kubePrometheusSettings are the agents' settings for kube-prometheus: its
// Prometheus resource's serviceDiscoveryRole, and its namespace trusted with
// the agent's own service-account token and CA.
func kubePrometheusSettings() relabel.Settings {
	return relabel.Settings{
		ServiceDiscoveryRole: monitoringv1.EndpointSliceRole,
		TrustedNamespaces:    []string{"monitoring"},
	}
}
