package controlplane

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// No kubelet, scheduler or CNI runs here: the helpers below write what they
// would. A Node gets its addresses and Ready condition; a Pod is created
// already bound (spec.nodeName) and its status is written as the kubelet
// would once the containers run, with a 127.0.0.x IP where a test exporter
// can listen.

// CreateNode creates a Ready Node whose InternalIP is ip.
func (cp *ControlPlane) CreateNode(ctx context.Context, name string, ip netip.Addr, labels map[string]string) (*corev1.Node, error) {
	l := map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux"}
	for k, v := range labels {
		l[k] = v
	}
	node, err := cp.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node.Status = corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ip.String()},
			{Type: corev1.NodeHostName, Address: name},
		},
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Capacity:    capacity,
		Allocatable: capacity,
	}
	node, err = cp.Kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of node %s: %w", name, err)
	}
	return node, nil
}

// Pod returns a pod bound to node with one container "app" that has ports.
func Pod(namespace, name, node string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	automount := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: &automount,
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.invalid/app:test", // never pulled: no kubelet
				Ports: ports,
			}},
		},
	}
}

// PodStatus is the status CreatePod and SetPodStatus write.
type PodStatus struct {
	// IP is the pod IP. For hostNetwork pods leave it zero: the node's
	// InternalIP is used, as the kubelet does.
	IP netip.Addr
	// Phase defaults to Running.
	Phase corev1.PodPhase
	// NotReady clears the Ready and ContainersReady conditions.
	NotReady bool
}

// CreatePod creates pod, which must be bound to an existing node
// (spec.nodeName), creating its namespace when missing, and writes st as
// its status. The returned pod carries the written status.
func (cp *ControlPlane) CreatePod(ctx context.Context, pod *corev1.Pod, st PodStatus) (*corev1.Pod, error) {
	if pod.Spec.NodeName == "" {
		return nil, fmt.Errorf("create pod %s/%s: spec.nodeName is empty (no scheduler runs here)", pod.Namespace, pod.Name)
	}
	if err := cp.ensureNamespace(ctx, pod.Namespace); err != nil {
		return nil, err
	}
	created, err := cp.Kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return cp.writePodStatus(ctx, created, st)
}

// SetPodStatus rewrites the status of an existing pod.
func (cp *ControlPlane) SetPodStatus(ctx context.Context, namespace, name string, st PodStatus) (*corev1.Pod, error) {
	pod, err := cp.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	return cp.writePodStatus(ctx, pod, st)
}

func (cp *ControlPlane) writePodStatus(ctx context.Context, pod *corev1.Pod, st PodStatus) (*corev1.Pod, error) {
	node, err := cp.Kube.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: node %s: %w", pod.Namespace, pod.Name, pod.Spec.NodeName, err)
	}
	hostIP := nodeInternalIP(node)
	if hostIP == "" {
		return nil, fmt.Errorf("pod %s/%s: node %s has no InternalIP", pod.Namespace, pod.Name, node.Name)
	}
	podIP := st.IP.String()
	switch {
	case pod.Spec.HostNetwork:
		if st.IP.IsValid() && podIP != hostIP {
			return nil, fmt.Errorf("pod %s/%s: hostNetwork pod IP %s differs from node IP %s", pod.Namespace, pod.Name, podIP, hostIP)
		}
		podIP = hostIP
	case !st.IP.IsValid():
		return nil, fmt.Errorf("pod %s/%s: no pod IP given", pod.Namespace, pod.Name)
	}
	phase := st.Phase
	if phase == "" {
		phase = corev1.PodRunning
	}
	ready := corev1.ConditionTrue
	if st.NotReady || phase != corev1.PodRunning {
		ready = corev1.ConditionFalse
	}
	start := pod.CreationTimestamp
	cond := func(t corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: start}
	}
	pod.Status = corev1.PodStatus{
		Phase:     phase,
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		PodIP:     podIP,
		PodIPs:    []corev1.PodIP{{IP: podIP}},
		StartTime: &start,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue),
			cond(corev1.PodInitialized, corev1.ConditionTrue),
			cond(corev1.ContainersReady, ready),
			cond(corev1.PodReady, ready),
		},
	}
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready == corev1.ConditionTrue}
		if phase == corev1.PodRunning {
			started := true
			cs.Started = &started
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: start}
		} else if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			cs.State.Terminated = &corev1.ContainerStateTerminated{StartedAt: start, FinishedAt: metav1.NewTime(time.Now())}
		}
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, cs)
	}
	updated, err := cp.Kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return updated, nil
}

func nodeInternalIP(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// Service returns a ClusterIP Service selecting pods by selector.
func Service(namespace, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

// ServicePort returns a TCP service port named name that targets targetPort
// (a number or a container port name).
func ServicePort(name string, port int32, targetPort string) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.Parse(targetPort)}
}

// ServiceMonitor returns a ServiceMonitor selecting Services by label.
func ServiceMonitor(namespace, name string, selector map[string]string, endpoints ...monitoringv1.Endpoint) *monitoringv1.ServiceMonitor {
	return &monitoringv1.ServiceMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: monitoringv1.ServiceMonitorSpec{
			Selector:  metav1.LabelSelector{MatchLabels: selector},
			Endpoints: endpoints,
		},
	}
}

// PodMonitor returns a PodMonitor selecting pods by label.
func PodMonitor(namespace, name string, selector map[string]string, endpoints ...monitoringv1.PodMetricsEndpoint) *monitoringv1.PodMonitor {
	return &monitoringv1.PodMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: monitoringv1.PodMonitorSpec{
			Selector:            metav1.LabelSelector{MatchLabels: selector},
			PodMetricsEndpoints: endpoints,
		},
	}
}

// Secret returns an Opaque Secret with data.
func Secret(namespace, name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
		StringData: data,
	}
}

// Create creates each object, creating its namespace first when missing.
// It takes the kinds the agent reads besides Nodes and Pods (which have
// their own helpers): Namespace, Service, EndpointSlice, Secret, ConfigMap,
// ServiceAccount, ServiceMonitor and PodMonitor.
func (cp *ControlPlane) Create(ctx context.Context, objs ...runtime.Object) error {
	for _, obj := range objs {
		if err := cp.create(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

func (cp *ControlPlane) create(ctx context.Context, obj runtime.Object) error {
	meta, ok := obj.(metav1.Object)
	if !ok {
		return fmt.Errorf("create %T: not a Kubernetes object", obj)
	}
	ns, name := meta.GetNamespace(), meta.GetName()
	if _, isNS := obj.(*corev1.Namespace); !isNS {
		if err := cp.ensureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	var err error
	opts := metav1.CreateOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = cp.Kube.CoreV1().Namespaces().Create(ctx, o, opts)
		if err == nil {
			err = cp.ensureDefaultServiceAccount(ctx, o.Name)
		}
	case *corev1.Service:
		_, err = cp.Kube.CoreV1().Services(ns).Create(ctx, o, opts)
	case *discoveryv1.EndpointSlice:
		_, err = cp.Kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, o, opts)
	case *corev1.Secret:
		_, err = cp.Kube.CoreV1().Secrets(ns).Create(ctx, o, opts)
	case *corev1.ConfigMap:
		_, err = cp.Kube.CoreV1().ConfigMaps(ns).Create(ctx, o, opts)
	case *corev1.ServiceAccount:
		_, err = cp.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, o, opts)
	case *monitoringv1.ServiceMonitor:
		_, err = cp.Monitoring.MonitoringV1().ServiceMonitors(ns).Create(ctx, o, opts)
	case *monitoringv1.PodMonitor:
		_, err = cp.Monitoring.MonitoringV1().PodMonitors(ns).Create(ctx, o, opts)
	default:
		return fmt.Errorf("create %T %s/%s: kind not supported by Create", obj, ns, name)
	}
	if err != nil {
		return fmt.Errorf("create %T %s/%s: %w", obj, ns, name, err)
	}
	return nil
}

// ensureNamespace creates namespace ns and its "default" ServiceAccount if
// missing. The ServiceAccount admission plugin refuses pods whose account
// does not exist, and without kube-controller-manager nobody creates it.
// Namespaces seen once are remembered, so creating many pods costs no extra
// requests (a test that deletes a namespace cannot reuse its name here).
func (cp *ControlPlane) ensureNamespace(ctx context.Context, ns string) error {
	if ns == "" {
		return nil // cluster-scoped
	}
	cp.mu.Lock()
	known := cp.namespaces[ns]
	cp.mu.Unlock()
	if known {
		return nil
	}
	_, err := cp.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	if err := cp.ensureDefaultServiceAccount(ctx, ns); err != nil {
		return err
	}
	cp.mu.Lock()
	cp.namespaces[ns] = true
	cp.mu.Unlock()
	return nil
}

func (cp *ControlPlane) ensureDefaultServiceAccount(ctx context.Context, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if _, err := cp.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/default: %w", ns, err)
	}
	return nil
}

// GrantClusterRole creates a ClusterRole with rules bound to ServiceAccount
// namespace/name (both named "<namespace>-<name>"), as a Helm chart's RBAC
// would, so a test can check the agent works with exactly those rights.
func (cp *ControlPlane) GrantClusterRole(ctx context.Context, namespace, name string, rules []rbacv1.PolicyRule) error {
	roleName := namespace + "-" + name
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: roleName}, Rules: rules}
	if _, err := cp.Kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create cluster role %s: %w", roleName, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: roleName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
	}
	if _, err := cp.Kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create cluster role binding %s: %w", roleName, err)
	}
	return nil
}
