package informer

import (
	"github.com/nodescraper/nodescraper/relabel"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// trustedNamespacesLanded says whether relabel.Settings.TrustedNamespaces
// (issue 25, another branch) is merged. Until then AllowFileReferences
// stands in for it, trusting every namespace, and the untrusted-namespace
// case is skipped. At merge: set it, and use TrustedNamespaces below.
const trustedNamespacesLanded = false

// kubePrometheusSettings are the agents' settings for kube-prometheus: its
// Prometheus resource's serviceDiscoveryRole, and its namespace trusted with
// the agent's own service-account token and CA.
func kubePrometheusSettings() relabel.Settings {
	return relabel.Settings{
		ServiceDiscoveryRole: monitoringv1.EndpointSliceRole,
		AllowFileReferences:  true, // stands in for TrustedNamespaces: []string{"monitoring"}
	}
}
