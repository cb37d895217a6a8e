// Package charts holds nodescraper's Helm chart (nodescraper/) and its tests;
// it has no Go code of its own. The tests run the helm that `make helm`
// installs: helm lint and helm template over the defaults and several values
// sets, assertions on the rendered objects, the values schema's refusals,
// the rendered agent flags against the agent's own parser, and every
// rendered set applied to a real kube-apiserver (server-side dry-run), then
// installed with helm to check the RBAC from the chart's ServiceAccount.
// TestOnNode installs the chart on a real node (kubelet, containerd) beside
// the control plane, upgrades it through the DaemonSet controller (from a
// root agent to the default non-root one), restarts it and uninstalls it,
// checking the stand-in intake's sums against the workload.
// TestPodSecurityLevel asks a real kube-apiserver's PodSecurity admission
// which level the rendered pod needs.
package charts
