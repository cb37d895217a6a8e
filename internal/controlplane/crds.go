package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	crdyaml "github.com/prometheus-operator/prometheus-operator/example"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// monitorCRDs are the CustomResourceDefinitions the agent reads, as shipped
// by the prometheus-operator module pinned in go.mod (its example package
// embeds the same manifests the Operator's bundle.yaml installs).
var monitorCRDs = []string{
	"servicemonitors.monitoring.coreos.com",
	"podmonitors.monitoring.coreos.com",
}

// loadMonitorCRDs picks monitorCRDs out of the embedded manifest stream.
func loadMonitorCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var all bytes.Buffer
	if err := crdyaml.PrintAll(&all); err != nil {
		return nil, fmt.Errorf("read prometheus-operator CRDs: %w", err)
	}
	want := make(map[string]bool, len(monitorCRDs))
	for _, name := range monitorCRDs {
		want[name] = true
	}
	r := k8syaml.NewYAMLReader(bufio.NewReader(&all))
	var crds []*apiextensionsv1.CustomResourceDefinition
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("split prometheus-operator CRDs: %w", err)
		}
		// Decoding is the slow part (the Prometheus CRD alone is ~1 MB);
		// decode only documents that can be one of ours.
		if !bytes.Contains(doc, []byte("monitors.monitoring.coreos.com")) {
			continue
		}
		crd := new(apiextensionsv1.CustomResourceDefinition)
		if err := yaml.Unmarshal(doc, crd); err != nil {
			return nil, fmt.Errorf("decode prometheus-operator CRD: %w", err)
		}
		if want[crd.Name] {
			crds = append(crds, crd)
			delete(want, crd.Name)
		}
	}
	if len(want) > 0 {
		return nil, fmt.Errorf("prometheus-operator CRDs: missing %v", want)
	}
	return crds, nil
}

// installMonitorCRDs creates the monitor CRDs and waits until the apiserver
// reports them Established, i.e. serving their REST endpoints.
func installMonitorCRDs(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	crds, err := loadMonitorCRDs()
	if err != nil {
		return err
	}
	client, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apiextensions client: %w", err)
	}
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		if _, err := api.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, crd := range crds {
		err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			got, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil // transient; the deadline reports it
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", crd.Name, err)
		}
	}
	return nil
}

// warmMonitorCRDs makes a first write to each monitor resource, as a
// server-side dry run that stores nothing. kube-apiserver builds its CEL
// environment for the CRDs' validation rules on the first write, ~2 s on a
// busy 2-core machine; paying it during the start keeps the tests' own
// requests and timings free of it.
func (cp *ControlPlane) warmMonitorCRDs(ctx context.Context) error {
	opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	sm := ServiceMonitor(metav1.NamespaceDefault, "warm-up", map[string]string{"app": "none"}, monitoringv1.Endpoint{Port: "metrics"})
	if _, err := cp.Monitoring.MonitoringV1().ServiceMonitors(sm.Namespace).Create(ctx, sm, opts); err != nil {
		return fmt.Errorf("dry-run create ServiceMonitor: %w", err)
	}
	port := "metrics"
	pm := PodMonitor(metav1.NamespaceDefault, "warm-up", map[string]string{"app": "none"}, monitoringv1.PodMetricsEndpoint{Port: &port})
	if _, err := cp.Monitoring.MonitoringV1().PodMonitors(pm.Namespace).Create(ctx, pm, opts); err != nil {
		return fmt.Errorf("dry-run create PodMonitor: %w", err)
	}
	return nil
}
