package informer

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// snapshot is one consistent read of the caches for a rebuild.
type snapshot struct {
	node     *corev1.Node
	pods     map[string][]*corev1.Pod // by namespace
	podByKey map[string]*corev1.Pod
	allowed  map[string]bool // hosts a target may point at
	nsLabels map[string]map[string]string
	// services are the Services with endpoints among this node's pods, by
	// namespace and sorted by name: computed once per rebuild, so that a
	// job's cost follows the node's pods, not the cluster's Services.
	services map[string][]svcEndpoints
	// svcByKey are the watched Services by namespace/name.
	svcByKey map[string]*corev1.Service
	// groups memoizes, per object, what roles discover of it: the jobs of
	// a rebuild (often many monitors in one namespace) share them.
	groups map[groupKey][]group

	// apiServer are the API server's hosts (see apiServerHosts): with
	// allowed, where the agent's own token may go.
	apiServer map[string]bool
}

// groupKey names the groups one role discovers of one Service or pod.
type groupKey struct {
	obj  any // *corev1.Service or *corev1.Pod
	role relabel.Role
}

// memo returns the groups of key, made by f on the rebuild's first ask.
func (s *snapshot) memo(key groupKey, f func() []group) []group {
	if g, ok := s.groups[key]; ok {
		return g
	}
	g := f()
	for i := range g {
		g[i].memo = &groupMemo{}
	}
	s.groups[key] = g
	return g
}

// svcEndpoints is a Service and its endpoints on this node.
type svcEndpoints struct {
	svc *corev1.Service
	eps []endpoint
}

func (k *Kube) snapshot() *snapshot {
	s := &snapshot{pods: map[string][]*corev1.Pod{}, podByKey: map[string]*corev1.Pod{}, allowed: map[string]bool{}, nsLabels: map[string]map[string]string{},
		groups: map[groupKey][]group{}}
	if obj, ok, _ := k.nodes.GetStore().GetByKey(k.cfg.NodeName); ok {
		s.node = obj.(*corev1.Node)
		for _, a := range s.node.Status.Addresses {
			s.allowed[a.Address] = true
		}
	}
	for _, o := range k.pods.GetStore().List() {
		p := o.(*corev1.Pod)
		s.pods[p.Namespace] = append(s.pods[p.Namespace], p)
		s.podByKey[p.Namespace+"/"+p.Name] = p
		for _, ip := range p.Status.PodIPs {
			s.allowed[ip.IP] = true
		}
		if p.Status.PodIP != "" {
			s.allowed[p.Status.PodIP] = true
		}
	}
	for _, ps := range s.pods {
		slices.SortFunc(ps, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	}
	s.apiServer = k.apiServerHosts()
	if k.cfg.NodeAddrs != nil {
		hosts := make([]string, 0, len(s.allowed))
		for h := range s.allowed {
			hosts = append(hosts, h)
		}
		k.cfg.NodeAddrs.Replace(hosts)
	}
	if k.namespaces != nil {
		for _, o := range k.namespaces.GetStore().List() {
			ns := o.(*corev1.Namespace)
			s.nsLabels[ns.Name] = ns.Labels
		}
	}
	return s
}

// loadServices reads the Service watches into s once they listed: the
// Services with endpoints among this node's pods, and all by key for the
// EndpointSlices that name them.
func (s *snapshot) loadServices(byKey map[string]*corev1.Service) {
	s.svcByKey = byKey
	s.services = map[string][]svcEndpoints{}
	for _, svc := range byKey {
		pods := s.pods[svc.Namespace]
		if len(pods) == 0 {
			continue
		}
		if eps := serviceEndpoints(svc, pods, s.zone()); len(eps) > 0 {
			s.services[svc.Namespace] = append(s.services[svc.Namespace], svcEndpoints{svc: svc, eps: eps})
		}
	}
	for _, list := range s.services {
		slices.SortFunc(list, func(a, b svcEndpoints) int { return strings.Compare(a.svc.Name, b.svc.Name) })
	}
}

func (s *snapshot) zone() string {
	if s.node == nil {
		return ""
	}
	return s.node.Labels[corev1.LabelTopologyZone]
}

// rebuild computes the node's target set from the caches. ok is false when
// a Service watch the set needs has not listed yet within its bound: the
// set is then not to be emitted.
func (k *Kube) rebuild(ctx context.Context) (ts []target.Target, ok bool) {
	s := k.snapshot()
	jobs, mons, rejected, refs := k.generateAll(s)
	k.refs.end(ctx, refs)
	k.setRejected(rejected)
	want := k.serviceWatchKeys(s, mons)
	if !k.svcs.ensure(ctx, want) {
		return nil, false
	}
	s.loadServices(k.svcs.byKey(want))
	var out []target.Target
	for _, j := range jobs {
		out = append(out, k.jobTargets(s, j)...)
	}
	// Stopped only now: until a set without them is built, the last one
	// emitted needed them.
	k.svcs.retain(want)
	return sortTargets(out), true
}

// generateAll generates the monitors this agent takes (reusing the previous
// rebuild's where unchanged): their jobs, what the ServiceMonitors among
// them read of Services, the rejected ones, and the Secrets and ConfigMaps
// read.
func (k *Kube) generateAll(s *snapshot) (jobs []*relabel.Job, mons []monitorServices, rejected []Rejection, refs []relabel.ObjectRef) {
	k.refs.begin()
	gens := make(map[string]generated, len(k.generated))
	handle := func(kind relabel.Kind, obj metav1.Object, gen func() (*relabel.Monitor, error)) *relabel.Monitor {
		ns, name := obj.GetNamespace(), obj.GetName()
		if !k.gen.Selects(kind, ns, obj.GetLabels(), s.nsLabels[ns]) {
			return nil
		}
		m, err := k.generate(gens, kind, obj, gen)
		if m != nil {
			refs = append(refs, m.Refs...)
		}
		if err != nil {
			rejected = append(rejected, Rejection{Kind: kind, Namespace: ns, Name: name, Reason: err.Error()})
			return nil
		}
		jobs = append(jobs, m.Jobs...)
		return m
	}
	for _, o := range k.sms.GetStore().List() {
		sm := o.(*monitoringv1.ServiceMonitor)
		m := handle(relabel.ServiceMonitorKind, sm, func() (*relabel.Monitor, error) {
			return k.gen.ServiceMonitor(sm, k.refs)
		})
		if m == nil {
			continue
		}
		if ms, ok := serviceSelector(m, &sm.Spec.Selector); ok {
			mons = append(mons, ms)
		}
	}
	for _, o := range k.pms.GetStore().List() {
		pm := o.(*monitoringv1.PodMonitor)
		handle(relabel.PodMonitorKind, pm, func() (*relabel.Monitor, error) {
			return k.gen.PodMonitor(pm, k.refs)
		})
	}
	k.generated = gens
	return jobs, mons, rejected, refs
}

// sortTargets sorts a target set and keeps one target per label set within
// a job, as Prometheus does; a dropped target is known by its discovered
// labels.
func sortTargets(out []target.Target) []target.Target {
	slices.SortFunc(out, func(a, b target.Target) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Drop.Reason), string(b.Drop.Reason)); c != 0 {
			return c
		}
		if c := strings.Compare(a.URL, b.URL); c != 0 {
			return c
		}
		if c := labels.Compare(a.Labels, b.Labels); c != 0 {
			return c
		}
		return labels.Compare(a.Discovered, b.Discovered)
	})
	return slices.CompactFunc(out, func(a, b target.Target) bool {
		return a.Source == b.Source && a.Drop.Reason == b.Drop.Reason && a.URL == b.URL && labels.Equal(a.Labels, b.Labels) &&
			(a.Drop.Reason == "" || labels.Equal(a.Discovered, b.Discovered))
	})
}

// generated is a monitor's jobs (or why it is rejected) as generated from
// one version of it.
type generated struct {
	uid types.UID
	rv  string
	m   *relabel.Monitor
	err error
}

// generate returns gen's result for obj, reusing the previous rebuild's when
// obj is the same version and reads no Secret or ConfigMap (whose values
// would be read again). Generating compiles every relabeling regex: with
// hundreds of monitors, doing it at each rebuild cost each agent more than
// the rest of the rebuild. The reused ones are recorded in next.
func (k *Kube) generate(next map[string]generated, kind relabel.Kind, obj metav1.Object, gen func() (*relabel.Monitor, error)) (*relabel.Monitor, error) {
	key := string(kind) + "/" + obj.GetNamespace() + "/" + obj.GetName()
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	if g, ok := k.generated[key]; ok && rv != "" && g.uid == uid && g.rv == rv {
		next[key] = g
		return g.m, g.err
	}
	m, err := gen()
	if m != nil && len(m.Refs) == 0 {
		next[key] = generated{uid: uid, rv: rv, m: m, err: err}
	}
	return m, err
}

func (k *Kube) setRejected(r []Rejection) {
	slices.SortFunc(r, func(a, b Rejection) int {
		return strings.Compare(string(a.Kind)+a.Namespace+"/"+a.Name, string(b.Kind)+b.Namespace+"/"+b.Name)
	})
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rejected = r
	k.rejectedCount.Store(int64(len(r)))
	now := map[string]string{}
	for _, x := range r {
		id := string(x.Kind) + " " + x.Namespace + "/" + x.Name
		now[id] = x.Reason
		// Logged when the reason changes, not on every rebuild.
		if k.lastLog[id] != x.Reason {
			k.log.Error("monitor rejected", "monitor", id, "reason", x.Reason)
		}
	}
	for id := range k.lastLog {
		if _, ok := now[id]; !ok {
			k.log.Info("monitor no longer rejected", "monitor", id)
		}
	}
	k.lastLog = now
}

// selects applies the job's role selectors (selectorMechanism RoleSelector).
func selects(j *relabel.Job, role relabel.Role, lbls map[string]string) bool {
	for _, rs := range j.SD.Selectors {
		if rs.Role == role && rs.Selector != nil && !rs.Selector.Matches(k8slabels.Set(lbls)) {
			return false
		}
	}
	return true
}

func inNamespaces(j *relabel.Job, ns string) bool {
	return j.SD.Namespaces == nil || slices.Contains(j.SD.Namespaces, ns)
}

// jobTargets discovers the job's label sets on this node and relabels them.
func (k *Kube) jobTargets(s *snapshot, j *relabel.Job) []target.Target {
	var groups []group
	switch j.SD.Role {
	case relabel.RolePod:
		for ns, pods := range s.pods {
			if !inNamespaces(j, ns) {
				continue
			}
			for _, p := range pods {
				if selects(j, relabel.RolePod, p.Labels) {
					groups = append(groups, s.memo(groupKey{p, relabel.RolePod}, func() []group { return []group{podGroup(p)} })...)
				}
			}
		}
	case relabel.RoleEndpoints, relabel.RoleEndpointSlice:
		groups = k.serviceGroups(s, j)
	}
	var out []target.Target
	drop := func(shown labels.Labels, url string, reason target.DropReason, detail string) {
		out = append(out, target.Target{
			URL: url, Discovered: shown, Source: j.Name, Pool: j.Name,
			Drop: target.Drop{Reason: reason, Detail: detail},
		})
	}
	for _, g := range groups {
		for i, t := range g.targets {
			full, shown := g.sets(i)
			if j.SD.AttachNodeMetadata && s.node != nil {
				if l := g.common.clone().merge(t); onNode(j.SD.Role, l, k.cfg.NodeName) {
					l.merge(nodeMeta(s.node))
					full, shown = labels.FromMap(l), discovered(l)
				}
			}
			tg, err := j.Target(full)
			if errors.Is(err, relabel.ErrDropped) {
				drop(shown, "", target.DroppedByRelabeling, "")
				continue
			}
			if err != nil {
				drop(shown, "", target.DroppedInvalid, err.Error())
				continue
			}
			if d := k.ownership(s, j.SD.Role, shown, &tg); d.Reason != "" {
				k.dropped.Inc()
				drop(shown, tg.URL, d.Reason, d.Detail)
				continue
			}
			if host := urlHost(tg.URL); tg.OwnCredentials && !s.allowed[host] && !s.apiServer[host] {
				k.dropped.Inc()
				drop(shown, tg.URL, target.DroppedRefused, "the agent's own service-account token goes only to this node's addresses, its pods' and the API server's, and "+
					host+" is none of them (--allow-other-addresses does not change this)")
				continue
			}
			tg.Discovered = shown
			out = append(out, tg)
		}
	}
	limitTargets(out, j.Scrape.Limits.Targets)
	return out
}

// urlHost is the host of a target's URL, without its port.
func urlHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// limitTargets applies a monitor's targetLimit to its pool's targets ts:
// Prometheus scrapes none of a pool over its limit, so when more than limit
// of ts would run, every one is dropped (DroppedLimit). Here the limit
// applies to the pool's targets on this node. limit 0 means none.
func limitTargets(ts []target.Target, limit int64) {
	active := 0
	for _, t := range ts {
		if t.Drop.Reason == "" {
			active++
		}
	}
	if limit <= 0 || int64(active) <= limit {
		return
	}
	detail := fmt.Sprintf("targetLimit %d exceeded: the pool has %d targets on this node", limit, active)
	for i, t := range ts {
		if t.Drop.Reason == "" {
			ts[i] = target.Target{
				URL: t.URL, Discovered: t.Discovered, Source: t.Source, Pool: t.Pool,
				Drop: target.Drop{Reason: target.DroppedLimit, Detail: detail},
			}
		}
	}
}

// onNode reports whether Prometheus attaches this node's metadata to a
// target: role pod by the pod's node; the endpoint roles by the endpoint's
// node name, which the extra targets for uncovered container ports lack.
func onNode(role relabel.Role, l lset, node string) bool {
	switch role {
	case relabel.RolePod:
		return l[meta+"pod_node_name"] == node
	case relabel.RoleEndpointSlice:
		return l[meta+"endpointslice_endpoint_node_name"] == node
	default:
		return l[meta+"endpoint_node_name"] == node
	}
}

// serviceGroups gives, per Service, what role endpoints or endpointslice
// would discover on this node: the emulated controller slices of selector
// Services and the real slices of the others (selectorless or custom).
func (k *Kube) serviceGroups(s *snapshot, j *relabel.Job) []group {
	var groups []group
	for ns, list := range s.services {
		if !inNamespaces(j, ns) {
			continue
		}
		for _, se := range list {
			groups = k.serviceGroup(s, groups, j, se.svc, se.eps)
		}
	}
	// Slices not written by the endpointslice controller (mirrored from
	// custom Endpoints, or written by another controller).
	for _, o := range k.slices.GetStore().List() {
		es := o.(*discoveryv1.EndpointSlice)
		if !inNamespaces(j, es.Namespace) || len(es.Endpoints) == 0 {
			continue
		}
		var svc *corev1.Service
		if name, ok := es.Labels[discoveryv1.LabelServiceName]; ok {
			svc = s.svcByKey[es.Namespace+"/"+name]
		}
		if svc != nil && !selects(j, relabel.RoleService, svc.Labels) {
			continue
		}
		eps := sliceEndpoints(es, s)
		if j.SD.Role == relabel.RoleEndpointSlice {
			if selects(j, relabel.RoleEndpointSlice, es.Labels) {
				groups = append(groups, endpointSliceGroup(es.Namespace, es.Name, es.Labels, es.Annotations, string(es.AddressType), svc, eps))
			}
			continue
		}
		if svc == nil {
			continue // role endpoints reads Endpoints objects, named after their Service
		}
		var withPorts []endpoint
		for _, ep := range eps {
			ok := ep.ready != nil
			for _, p := range ep.ports {
				ok = ok && p.Port != nil && p.Name != nil && p.Protocol != nil
			}
			if ok {
				withPorts = append(withPorts, ep)
			}
		}
		g := endpointsGroup(svc, withPorts)
		groups = append(groups, g)
	}
	return groups
}

// serviceGroup appends to groups what job j discovers of svc, whose
// endpoints on this node are eps.
func (k *Kube) serviceGroup(s *snapshot, groups []group, j *relabel.Job, svc *corev1.Service, eps []endpoint) []group {
	if !selects(j, relabel.RoleService, svc.Labels) {
		return groups
	}
	if j.SD.Role == relabel.RoleEndpointSlice {
		sl := sliceLabels(svc)
		if !selects(j, relabel.RoleEndpointSlice, sl) {
			return groups
		}
		return append(groups, s.memo(groupKey{svc, relabel.RoleEndpointSlice}, func() []group {
			// The controller's slice name is random (generateName); this
			// stands in for it.
			byType := map[string][]endpoint{}
			for _, ep := range eps {
				at := addressType(ep.addr)
				byType[at] = append(byType[at], ep)
			}
			var gs []group
			for at, e := range byType {
				gs = append(gs, endpointSliceGroup(svc.Namespace, svc.Name+"-"+k.cfg.NodeName, sl, nil, at, svc, e))
			}
			return gs
		})...)
	}
	if !selects(j, relabel.RoleEndpoints, endpointsLabels(svc)) {
		return groups
	}
	return append(groups, s.memo(groupKey{svc, relabel.RoleEndpoints}, func() []group {
		var in []endpoint
		for _, ep := range eps {
			if inEndpoints(svc, ep) {
				in = append(in, ep)
			}
		}
		return []group{endpointsGroup(svc, in)}
	})...)
}

// sliceEndpoints turns a real slice's endpoints into ours, resolving pod
// references among this node's pods.
func sliceEndpoints(es *discoveryv1.EndpointSlice, s *snapshot) []endpoint {
	var out []endpoint
	for _, e := range es.Endpoints {
		for _, addr := range e.Addresses {
			ep := endpoint{
				addr: addr, ports: es.Ports,
				ready: e.Conditions.Ready, serving: e.Conditions.Serving, terminating: e.Conditions.Terminating,
				hostname: e.Hostname, nodeName: e.NodeName, zone: e.Zone, topology: e.DeprecatedTopology,
			}
			if r := e.TargetRef; r != nil {
				ep.targetKind, ep.targetName = r.Kind, r.Name
				if r.Kind == "Pod" {
					ep.pod = s.podByKey[es.Namespace+"/"+r.Name]
				}
			}
			out = append(out, ep)
		}
	}
	return out
}

// discovered is what a target carries of its discovered labels: all but the
// objects' annotations, which change often (kubectl, controllers) and would
// restart the target's loop at each change, and which no backend reads.
func discovered(l lset) labels.Labels {
	b := labels.NewScratchBuilder(len(l))
	for k, v := range l {
		if strings.Contains(k, "_annotation_") || strings.Contains(k, "_annotationpresent_") {
			continue
		}
		b.Add(k, v)
	}
	b.Sort()
	return b.Labels()
}
