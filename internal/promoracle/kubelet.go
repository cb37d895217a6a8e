package promoracle

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus-operator/prometheus-operator/pkg/kubelet"
	"k8s.io/client-go/kubernetes"
)

// RunKubeletController runs the Operator's own kubelet controller as
// kube-prometheus deploys it (--kubelet-service=kube-system/kubelet
// --kubelet-endpoints=true --kubelet-endpointslice=true): it writes the
// Service, Endpoints and EndpointSlices of kube-system/kubelet from the
// cluster's Nodes every period. The returned stop ends it and waits.
func RunKubeletController(kube kubernetes.Interface, period time.Duration) (stop func(), err error) {
	c, err := kubelet.New(slog.New(slog.DiscardHandler), kube, nil, "kubelet", "kube-system", "", nil, nil,
		kubelet.WithNodeAddressPriority("internal"), kubelet.WithSyncPeriod(period), kubelet.WithHTTPMetrics(true),
		kubelet.WithEndpointSlice(), kubelet.WithEndpoints())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(ctx) })
	return func() { cancel(); wg.Wait() }, nil
}
