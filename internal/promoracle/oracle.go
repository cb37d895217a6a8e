package promoracle

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
)

// Target is one active target of Prometheus: its scrape job, its labels
// (those a scraped series gets, without the reserved __ ones) and the
// address discovered, before relabeling.
type Target struct {
	Job        string
	Labels     labels.Labels
	Discovered string
}

func (t Target) String() string { return t.Job + " " + t.Labels.String() }

// Oracle runs Prometheus' service discovery for the scrape jobs of a
// configuration and keeps the active targets.
type Oracle struct {
	jobs   map[string]*config.ScrapeConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	targets []Target
	dropped int
}

// Start loads the Prometheus configuration cfg, points its Kubernetes
// service discovery at the API server of the kubeconfig file (the
// generated configuration says in-cluster) and runs the discovery until
// Stop.
func Start(cfg []byte, kubeconfig string) (*Oracle, error) {
	logger := slog.New(slog.DiscardHandler)
	c, err := config.Load(string(cfg), logger)
	if err != nil {
		return nil, fmt.Errorf("load generated configuration: %w", err)
	}
	o := &Oracle{jobs: map[string]*config.ScrapeConfig{}}
	sd := map[string]discovery.Configs{}
	for _, sc := range c.ScrapeConfigs {
		for _, d := range sc.ServiceDiscoveryConfigs {
			k, ok := d.(*kubernetes.SDConfig)
			if !ok {
				return nil, fmt.Errorf("job %s: service discovery %s, want kubernetes", sc.JobName, d.Name())
			}
			k.KubeConfig = kubeconfig
		}
		o.jobs[sc.JobName] = sc
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	reg := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("discovery metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	// Prometheus sends updates every 5 s; a test need not wait that long.
	m := discovery.NewManager(ctx, logger, reg, sdMetrics, discovery.Updatert(100*time.Millisecond))
	if err := m.ApplyConfig(sd); err != nil {
		cancel()
		return nil, fmt.Errorf("apply discovery configuration: %w", err)
	}
	o.wg.Go(func() { _ = m.Run() })
	o.wg.Go(func() { o.receive(ctx, m.SyncCh()) })
	return o, nil
}

// Jobs returns the configuration's scrape jobs, sorted.
func (o *Oracle) Jobs() []string {
	return slices.Sorted(maps.Keys(o.jobs))
}

// Stop ends the discovery and waits for it.
func (o *Oracle) Stop() {
	o.cancel()
	o.wg.Wait()
}

func (o *Oracle) receive(ctx context.Context, ch <-chan map[string][]*targetgroup.Group) {
	for {
		select {
		case <-ctx.Done():
			return
		case groups := <-ch:
			targets, dropped := o.build(groups)
			o.mu.Lock()
			o.targets, o.dropped = targets, dropped
			o.mu.Unlock()
		}
	}
}

// build turns the discovered groups into targets as Prometheus' scrape
// manager does (scrape.TargetsFromGroup), keeping the active ones.
func (o *Oracle) build(groups map[string][]*targetgroup.Group) (active []Target, dropped int) {
	lb := labels.NewBuilder(labels.EmptyLabels())
	var ts []*scrape.Target
	for job, gs := range groups {
		sc := o.jobs[job]
		for _, g := range gs {
			// A target with an invalid label set is an error in
			// Prometheus too: it is neither active nor dropped there.
			ts, _ = scrape.TargetsFromGroup(g, sc, ts, lb)
			for _, t := range ts {
				if t.Labels(lb).IsEmpty() {
					dropped++
					continue
				}
				active = append(active, Target{Job: job, Labels: t.Labels(lb), Discovered: t.DiscoveredLabels(lb).Get("__address__")})
			}
		}
	}
	slices.SortFunc(active, func(a, b Target) int { return strings.Compare(a.String(), b.String()) })
	return active, dropped
}

// Targets returns the active targets of the latest discovery update, sorted
// by job and labels, and how many discovered targets relabeling dropped.
func (o *Oracle) Targets() (active []Target, dropped int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.targets, o.dropped
}
