package informer

import (
	"strings"
)

// datadogTags derives the Datadog tags the Datadog agent would give a target
// from its discovered labels: namespace, service, pod, container, the pod's
// owners, and the unified service tags from tags.datadoghq.com/* pod labels.
func datadogTags(l lset) []string {
	var tags []string
	add := func(tag, label string) {
		if v := l[label]; v != "" {
			tags = append(tags, tag+":"+v)
		}
	}
	add("kube_namespace", meta+"namespace")
	add("kube_service", meta+"service_name")
	add("pod_name", meta+"pod_name")
	add("kube_container_name", meta+"pod_container_name")
	kind, name := l[meta+"pod_controller_kind"], l[meta+"pod_controller_name"]
	switch kind {
	case "ReplicaSet":
		tags = append(tags, "kube_replica_set:"+name)
		// A Deployment names its ReplicaSets <deployment>-<pod-template-hash>.
		if h := l[meta+"pod_label_pod_template_hash"]; h != "" {
			if d, ok := strings.CutSuffix(name, "-"+h); ok {
				tags = append(tags, "kube_deployment:"+d)
			}
		}
	case "DaemonSet":
		tags = append(tags, "kube_daemon_set:"+name)
	case "StatefulSet":
		tags = append(tags, "kube_stateful_set:"+name)
	case "Job":
		tags = append(tags, "kube_job:"+name)
		// A CronJob names its Jobs <cronjob>-<scheduled minute>.
		if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
			tags = append(tags, "kube_cronjob:"+name[:i])
		}
	}
	add("env", meta+"pod_label_tags_datadoghq_com_env")
	add("service", meta+"pod_label_tags_datadoghq_com_service")
	add("version", meta+"pod_label_tags_datadoghq_com_version")
	return tags
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
