// Package charts holds nodescraper's Helm chart (nodescraper/) and its tests;
// it has no Go code of its own. The tests run the helm that `make helm`
// installs: helm lint and helm template over the defaults and several values
// sets, assertions on the rendered objects, the values schema's refusals,
// the rendered agent flags against the agent's own parser, and every
// rendered set applied to a real kube-apiserver (server-side dry-run), then
// installed with helm to check the RBAC from the chart's ServiceAccount.
package charts
