package fakeintake

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// Point is one accepted point with the series it came in.
type Point struct {
	Metric    string
	Timestamp int64 // seconds
	Value     float64
	Type      datadogV2.MetricIntakeType
	Interval  int64 // seconds; 0 when the series had none
	Unit      string
	Tags      []string
	Resources []datadogV2.MetricResource
}

// Host returns the name of the first resource of type "host", or "".
func (p Point) Host() string {
	for _, r := range p.Resources {
		if r.GetType() == "host" {
			return r.GetName()
		}
	}
	return ""
}

// MetricCount is how much of one metric was accepted.
type MetricCount struct {
	Metric string
	Series int64
	Points int64
}

// Reject is one refused request, kept in Stats.LastRejects.
type Reject struct {
	Time    time.Time
	Status  int
	Reason  Reason
	Message string
}

// lastRejects is how many refused requests Stats keeps for display.
const lastRejects = 16

// Stats counts what the intake answered. Byte and series counts cover accepted
// payloads only.
type Stats struct {
	Accepted          int64            // requests answered 202
	Rejected          map[Reason]int64 // refused requests by reason
	Faults            int64            // requests an injected fault applied to
	Series            int64            // series accepted
	Points            int64            // points accepted
	CompressedBytes   int64            // accepted bodies as sent
	UncompressedBytes int64            // accepted bodies decoded
	Encodings         map[string]int64 // accepted payloads by Content-Encoding ("identity" when none)
	// SeriesVersions counts accepted series payloads by the intake version
	// they came to: SeriesV2 (JSON, /api/v2/series) or SeriesV3 (columnar,
	// /api/intake/metrics/v3/series). Both are stored alike.
	SeriesVersions map[string]int64
	// DuplicatePoints counts points whose metric, tags, resources and
	// timestamp were already received: Datadog keeps one value per series and
	// timestamp, so a sender that counts on both loses data.
	DuplicatePoints int64
	EvictedSeries   int64    // series dropped from the store by MaxStoredSeries
	ServiceChecks   int64    // service checks accepted (POST /api/v1/check_run)
	MetadataUpdates int64    // metadata edits accepted (PUT /api/v1/metrics/{name})
	Metrics         int      // distinct metric names accepted
	LastRejects     []Reject // most recent refusals, oldest first
}

// RejectedTotal is the number of refused requests of every reason.
func (s Stats) RejectedTotal() int64 {
	var n int64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

func newStats() Stats {
	return Stats{Rejected: map[Reason]int64{}, Encodings: map[string]int64{}, SeriesVersions: map[string]int64{}}
}

type storedSeries struct {
	s      datadogV2.MetricSeries
	filter map[string]bool // its tags, plus host:<name> for each host resource
	keys   []uint64        // identities of its points, for duplicate counting
}

// store keeps accepted series in arrival order, indexed by metric name.
type store struct {
	max      int
	queue    []*storedSeries // arrival order; queue[head:] is live
	head     int
	byMetric map[string][]*storedSeries
	totals   map[string]*MetricCount // survives eviction
	seen     map[uint64]int          // point identity → stored copies
	seed     maphash.Seed
}

func newStore(max int) store {
	return store{max: max, byMetric: map[string][]*storedSeries{}, totals: map[string]*MetricCount{}, seen: map[uint64]int{}, seed: maphash.MakeSeed()}
}

// add stores s and returns how many of its points were duplicates.
func (st *store) add(s datadogV2.MetricSeries) (dups int64, evicted int64) {
	ss := &storedSeries{s: s, filter: make(map[string]bool, len(s.Tags)+1)}
	for _, t := range s.Tags {
		ss.filter[t] = true
	}
	for _, r := range s.Resources {
		if r.GetType() == "host" {
			ss.filter["host:"+r.GetName()] = true
		}
	}
	id := st.identity(&s)
	for _, p := range s.Points {
		k := st.pointKey(id, p.GetTimestamp())
		if st.seen[k] > 0 {
			dups++
		}
		st.seen[k]++
		ss.keys = append(ss.keys, k)
	}
	st.queue = append(st.queue, ss)
	st.byMetric[s.Metric] = append(st.byMetric[s.Metric], ss)
	mc := st.totals[s.Metric]
	if mc == nil {
		mc = &MetricCount{Metric: s.Metric}
		st.totals[s.Metric] = mc
	}
	mc.Series++
	mc.Points += int64(len(s.Points))
	for st.max > 0 && len(st.queue)-st.head > st.max {
		st.evictOldest()
		evicted++
	}
	return dups, evicted
}

func (st *store) evictOldest() {
	old := st.queue[st.head]
	st.queue[st.head] = nil
	st.head++
	if st.head > len(st.queue)/2 { // compact so the backing array does not grow forever
		st.queue = slices.Clone(st.queue[st.head:])
		st.head = 0
	}
	// Series of one metric are stored in arrival order too: the oldest is first.
	m := st.byMetric[old.s.Metric]
	if len(m) == 1 {
		delete(st.byMetric, old.s.Metric)
	} else {
		m[0] = nil
		st.byMetric[old.s.Metric] = m[1:]
	}
	for _, k := range old.keys {
		if st.seen[k]--; st.seen[k] <= 0 {
			delete(st.seen, k)
		}
	}
}

// identity hashes what Datadog tells series apart by: name, tag set, resources.
func (st *store) identity(s *datadogV2.MetricSeries) uint64 {
	var h maphash.Hash
	h.SetSeed(st.seed)
	h.WriteString(s.Metric)
	for _, t := range slices.Sorted(slices.Values(s.Tags)) {
		h.WriteByte(0)
		h.WriteString(t)
	}
	h.WriteByte(1)
	res := make([]string, 0, len(s.Resources))
	for _, r := range s.Resources {
		res = append(res, r.GetType()+"\x00"+r.GetName())
	}
	slices.Sort(res)
	for _, r := range res {
		h.WriteByte(0)
		h.WriteString(r)
	}
	return h.Sum64()
}

func (st *store) pointKey(id uint64, ts int64) uint64 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], id)
	binary.LittleEndian.PutUint64(b[8:], uint64(ts))
	return maphash.Bytes(st.seed, b[:])
}

// matches reports whether the series carries every tag in tags. As in a
// Datadog query, "host:<name>" also matches a resource of type host.
func (ss *storedSeries) matches(tags []string) bool {
	for _, t := range tags {
		if !ss.filter[t] {
			return false
		}
	}
	return true
}

// accept counts and stores an accepted payload.
func (in *Intake) accept(rcv *received, _ time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.countLocked(rcv)
	st := &in.stats
	for _, s := range rcv.payload.Series {
		st.Series++
		st.Points += int64(len(s.Points))
		dups, evicted := in.store.add(s)
		st.DuplicatePoints += dups
		st.EvictedSeries += evicted
	}
	st.Metrics = len(in.store.totals)
	in.notifyLocked()
}

// countLocked counts an accepted request's payload and bytes.
func (in *Intake) countLocked(rcv *received) {
	st := &in.stats
	st.Accepted++
	st.CompressedBytes += rcv.compressed
	st.UncompressedBytes += rcv.uncompressed
	st.Encodings[rcv.encoding]++
	st.SeriesVersions[cmp.Or(rcv.version, SeriesV2)]++
}

func (in *Intake) recordReject(rej *rejection) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stats.Rejected[rej.reason]++
	in.stats.LastRejects = append(in.stats.LastRejects, Reject{Time: in.now(), Status: rej.status, Reason: rej.reason, Message: rej.msg})
	if n := len(in.stats.LastRejects); n > lastRejects {
		in.stats.LastRejects = slices.Clone(in.stats.LastRejects[n-lastRejects:])
	}
	in.notifyLocked()
}

func (in *Intake) notify() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.notifyLocked()
}

// notifyLocked wakes every WaitFor; in.mu must be held.
func (in *Intake) notifyLocked() {
	close(in.changed)
	in.changed = make(chan struct{})
}

// Stats returns a copy of the counters.
func (in *Intake) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.stats
	s.Rejected = maps.Clone(s.Rejected)
	s.Encodings = maps.Clone(s.Encodings)
	s.SeriesVersions = maps.Clone(s.SeriesVersions)
	s.LastRejects = slices.Clone(s.LastRejects)
	return s
}

// Reset forgets every stored series and zeroes the counters; pending faults stay.
func (in *Intake) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.store = newStore(in.cfg.MaxStoredSeries)
	in.stats = newStats()
	in.checks, in.metadata = nil, nil
	in.notifyLocked()
}

// Series returns copies of the stored series in arrival order. Their slices
// are copied; pointer fields (Interval, Type, Metadata...) are shared: read,
// do not write through them.
func (in *Intake) Series() []datadogV2.MetricSeries {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]datadogV2.MetricSeries, 0, len(in.store.queue)-in.store.head)
	for _, ss := range in.store.queue[in.store.head:] {
		s := ss.s
		s.Points = slices.Clone(s.Points)
		s.Tags = slices.Clone(s.Tags)
		s.Resources = slices.Clone(s.Resources)
		out = append(out, s)
	}
	return out
}

// Metrics returns the sorted names of the stored metrics.
func (in *Intake) Metrics() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Sorted(maps.Keys(in.store.byMetric))
}

// TopMetrics returns the n metrics with the most accepted points (all when
// n <= 0), most first, names breaking ties. Counts survive eviction.
func (in *Intake) TopMetrics(n int) []MetricCount {
	in.mu.Lock()
	out := make([]MetricCount, 0, len(in.store.totals))
	for _, mc := range in.store.totals {
		out = append(out, *mc)
	}
	in.mu.Unlock()
	slices.SortFunc(out, func(a, b MetricCount) int {
		return cmp.Or(cmp.Compare(b.Points, a.Points), strings.Compare(a.Metric, b.Metric))
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Points returns the points of metric from every stored series that carries
// all of tags ("host:<name>" also matches the host resource), in arrival
// order. Tags and Resources are shared by the points of one series: do not
// modify them.
func (in *Intake) Points(metric string, tags ...string) []Point {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []Point
	for _, ss := range in.store.byMetric[metric] {
		if !ss.matches(tags) {
			continue
		}
		s := &ss.s
		tagsCopy, res := slices.Clone(s.Tags), slices.Clone(s.Resources)
		for _, p := range s.Points {
			out = append(out, Point{
				Metric: s.Metric, Timestamp: p.GetTimestamp(), Value: p.GetValue(),
				Type: s.GetType(), Interval: s.GetInterval(), Unit: s.GetUnit(),
				Tags: tagsCopy, Resources: res,
			})
		}
	}
	return out
}

// Sum adds the values of Points(metric, tags...): for a count, the total
// increase the sender reported.
func (in *Intake) Sum(metric string, tags ...string) float64 {
	var sum float64
	for _, p := range in.Points(metric, tags...) {
		sum += p.Value
	}
	return sum
}

// Last returns the point with the latest timestamp among Points(metric,
// tags...), the later arrival winning a tie: for a gauge, what Datadog shows.
func (in *Intake) Last(metric string, tags ...string) (Point, bool) {
	pts := in.Points(metric, tags...)
	if len(pts) == 0 {
		return Point{}, false
	}
	last := pts[0]
	for _, p := range pts[1:] {
		if p.Timestamp >= last.Timestamp {
			last = p
		}
	}
	return last, true
}

// WaitFor blocks until cond returns true or ctx ends. cond runs once at the
// start and again after every request the intake answers (accepted or
// refused); it may call any method of in.
func (in *Intake) WaitFor(ctx context.Context, cond func(*Intake) bool) error {
	for {
		// Take the channel before evaluating cond, so a change between the two
		// still wakes us.
		in.mu.Lock()
		ch := in.changed
		in.mu.Unlock()
		if cond(in) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("intake: wait for condition: %w", context.Cause(ctx))
		}
	}
}
