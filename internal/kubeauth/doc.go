// Package kubeauth guards HTTP handlers with the cluster's own
// authentication and authorization, as kube-rbac-proxy and
// controller-runtime's metrics filter do: the request's bearer token is
// reviewed with a TokenReview (authentication.k8s.io/v1), then the user it
// names with a SubjectAccessReview (authorization.k8s.io/v1) for the
// request's path as a non-resource URL and its verb. Decisions are cached
// briefly, keyed by a hash of the token, in a cache of bounded size.
package kubeauth
