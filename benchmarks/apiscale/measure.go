package apiscale

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/nodescraper/nodescraper/internal/controlplane"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// procStat returns a process's CPU seconds (user + system) and resident
// memory in bytes.
func procStat(pid int) (cpu float64, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15, rss 24 (pages).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return float64(ut+st) / clockTicks, pages * int64(os.Getpagesize()), nil
}

// sumMetric adds up the samples of family name in a Prometheus text
// exposition whose labels contain every one of match ("verb=\"WATCH\"").
func sumMetric(text []byte, name string, match ...string) (float64, bool) {
	var sum float64
	found := false
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// Watches is what kube-apiserver reports about open watches.
type Watches struct {
	// Registered is apiserver_registered_watchers summed over kinds (the
	// watch cache's watchers); -1 when the metric is absent.
	Registered float64
	// LongRunning is apiserver_longrunning_requests{verb="WATCH"} summed.
	LongRunning float64
}

func watches(ctx context.Context, cp *controlplane.ControlPlane) (Watches, error) {
	b, err := cp.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return Watches{}, fmt.Errorf("kube-apiserver /metrics: %w", err)
	}
	w := Watches{Registered: -1}
	if v, ok := sumMetric(b, "apiserver_registered_watchers"); ok {
		w.Registered = v
	}
	w.LongRunning, _ = sumMetric(b, "apiserver_longrunning_requests", `verb="WATCH"`)
	return w, nil
}

// etcdDBSize is etcd_mvcc_db_total_size_in_bytes from etcd's /metrics.
func etcdDBSize(ctx context.Context, cp *controlplane.ControlPlane) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cp.EtcdURL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("etcd /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("etcd /metrics: %w", err)
	}
	v, ok := sumMetric(b, "etcd_mvcc_db_total_size_in_bytes")
	if !ok {
		return 0, fmt.Errorf("etcd /metrics: no etcd_mvcc_db_total_size_in_bytes")
	}
	return int64(v), nil
}
