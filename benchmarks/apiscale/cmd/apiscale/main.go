// Command apiscale measures many agents' discovery against one simulated
// cluster on the real control plane (see package apiscale) and prints one
// Markdown table row per phase.
//
//	cd benchmarks && go run ./apiscale/cmd/apiscale -nodes 1000 -pods 30 -local 1000 -wire 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nodescraper/nodescraper/benchmarks/apiscale"
	"github.com/nodescraper/nodescraper/internal/controlplane"
)

func main() {
	var (
		spec     apiscale.Spec
		local    = flag.Int("local", 0, "node-local agents (informer.Kube), one per node from node-0000")
		wide     = flag.Int("wide", 0, "cluster-wide comparison agents (client-go informers)")
		wire     = flag.Int("wire", 0, "cluster-wide comparison agents at the wire (a reflector's requests, nothing decoded)")
		baseline = flag.Bool("baseline", true, "first measure the churn with no agents")
		cfg      apiscale.Config
		rssLimit = flag.Float64("apiserver-rss-limit", 16, "end a phase when kube-apiserver's RSS exceeds this many GiB (0: no limit)")
		inflight = flag.String("apiserver-flags", "", "extra kube-apiserver flags, comma-separated (e.g. --max-requests-inflight=800)")
		out      = flag.String("out", "", "append the table rows to this file")
		wideRate = flag.Float64("wide-start-rate", 0, "agents started per second in the cluster-wide phases (0: -start-rate)")
	)
	flag.IntVar(&spec.Nodes, "nodes", 250, "Node objects")
	flag.IntVar(&spec.PodsPerNode, "pods", 30, "pods per node")
	flag.IntVar(&spec.PodsPerService, "pods-per-service", 10, "pods per Service")
	flag.IntVar(&spec.ServicesPerMonitor, "services-per-monitor", 10, "app Services per ServiceMonitor")
	flag.IntVar(&spec.Namespaces, "namespaces", 10, "namespaces; each holds a block of consecutive app Services, so its pods lie on a run of consecutive nodes")
	flag.IntVar(&spec.AllServices, "services", 0, "Services in all (0: one per -pods-per-service pods); those beyond the app Services have no selector, no pods and no monitor")
	flag.Float64Var(&cfg.StartRate, "start-rate", 50, "agents started per second")
	flag.DurationVar(&cfg.Churn, "churn", 2*time.Minute, "churn per phase (the Service stream runs in its second half)")
	flag.Float64Var(&cfg.PodChurnRate, "pod-churn", 5, "pod replacements per second")
	flag.Float64Var(&cfg.ServiceChurnRate, "service-churn", 10, "Service updates per second")
	flag.Parse()
	cfg.Spec = spec
	if *baseline {
		cfg.Phases = append(cfg.Phases, apiscale.Phase{Mode: apiscale.NodeLocal})
	}
	if *local > 0 {
		cfg.Phases = append(cfg.Phases, apiscale.Phase{Mode: apiscale.NodeLocal, Agents: *local})
	}
	if *wide > 0 {
		cfg.Phases = append(cfg.Phases, apiscale.Phase{Mode: apiscale.ClusterWide, Agents: *wide, StartRate: *wideRate})
	}
	if *wire > 0 {
		cfg.Phases = append(cfg.Phases, apiscale.Phase{Mode: apiscale.ClusterWideWire, Agents: *wire, StartRate: *wideRate})
	}
	cfg.APIServerRSSLimit = int64(*rssLimit * (1 << 30))
	cfg.Logf = log.Printf
	if err := run(cfg, *inflight, *out); err != nil {
		log.Fatal(err)
	}
}

func run(cfg apiscale.Config, apiserverFlags, out string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cpCfg := controlplane.Config{ControllerManager: true, StartTimeout: 2 * time.Minute}
	if apiserverFlags != "" {
		cpCfg.APIServerFlags = strings.Split(apiserverFlags, ",")
	}
	cp, err := controlplane.Start(ctx, cpCfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			log.Printf("stop control plane: %v", err)
		}
	}()
	log.Printf("control plane %s up: %v", cp.Admin.Host, cp.Timings)
	res, err := apiscale.Run(ctx, cp, cfg)
	var b strings.Builder
	fmt.Fprintf(&b, "\n<!-- %s: %s -->\n%s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(os.Args[1:], " "), apiscale.Header)
	for _, r := range res {
		b.WriteString(r.Row() + "\n")
	}
	fmt.Print(b.String())
	if out != "" {
		f, ferr := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		if _, ferr := f.WriteString(b.String()); ferr != nil {
			return ferr
		}
	}
	if err != nil {
		log.Printf("control plane logs (tail):\n%s", cp.Logs(20))
	}
	return err
}
