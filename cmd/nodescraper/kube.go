package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/nodescraper/nodescraper/informer"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// newKubeDiscovery builds the ServiceMonitor/PodMonitor discovery from the
// flags. The API server is reached with client-go's default loading rules:
// --kubeconfig (KUBECONFIG) when given, else ~/.kube/config if it exists,
// else in-cluster credentials.
func newKubeDiscovery(c *config, nodeAddrs *target.NodeAddrs, logger *slog.Logger) (*informer.Kube, error) {
	rc, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	sel := relabel.Selection{}
	if sel.Selector, err = labelSelector("--monitor-selector", c.monitorSelector); err != nil {
		return nil, err
	}
	if sel.NamespaceSelector, err = labelSelector("--monitor-namespace-selector", c.monitorNSSelector); err != nil {
		return nil, err
	}
	for _, ns := range strings.Split(c.monitorNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			sel.Namespaces = append(sel.Namespaces, ns)
		}
	}
	settings := relabel.Settings{
		ServiceMonitors: sel, PodMonitors: sel,
		ScrapeInterval: c.interval, ScrapeTimeout: c.timeout,
		ServiceDiscoveryRole: monitoringv1.ServiceDiscoveryRole(c.sdRole),
		TrustedNamespaces:    splitList(c.trustedNamespaces),
		ServiceAccountDir:    c.serviceAccountDir,
		AllowedProxyURLs:     splitList(c.allowedProxyURLs),
		AllowedTokenURLs:     splitList(c.allowedTokenURLs),
	}
	c.caps.apply(&settings)
	k, err := informer.NewKube(informer.KubeConfig{
		Rest:                rc,
		NodeName:            c.nodeName,
		Settings:            settings,
		AllowOtherAddresses: c.allowOtherAddrs,
		NodeAddrs:           nodeAddrs,
		Lease:               c.leaseConfig(),
		Logger:              logger,
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// restConfig is how the agent reaches the API server: client-go's default
// loading rules, --kubeconfig (KUBECONFIG) when given, else ~/.kube/config
// if it exists, else in-cluster credentials.
func (c *config) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (--kubeconfig or in-cluster): %w", err)
	}
	rc.UserAgent = "nodescraper/" + c.nodeName
	return rc, nil
}

// leaseConfig is the cluster Lease's election, nil without --cluster-lease.
func (c *config) leaseConfig() *informer.LeaseConfig {
	if c.clusterLease == "" {
		return nil
	}
	ns, name, _ := c.lease() // validated
	return &informer.LeaseConfig{
		Namespace: ns, Name: name, Identity: c.nodeName,
		LeaseDuration: c.leaseDuration, RenewDeadline: c.leaseRenew, RetryPeriod: c.leaseRetry,
	}
}

// labelSelector parses a flag's label selector; empty selects everything.
func labelSelector(flag, s string) (*metav1.LabelSelector, error) {
	if s == "" {
		return nil, nil
	}
	ls, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flag, s, err)
	}
	return ls, nil
}
