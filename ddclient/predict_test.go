package ddclient

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPredictionBounded: a target whose series change every one of 40
// labels at every series (the worst case for the predictions of
// appender_v3.go) gets its tags right, and the appender holds no more for
// predictions than maxPredicted positions × maxChanges changes, whatever
// the number of series and labels.
func TestPredictionBounded(t *testing.T) {
	const series, nl = 12_000, 40
	var b strings.Builder
	b.WriteString("# TYPE hostile counter\n")
	for i := range series {
		b.WriteString("hostile{")
		for k := range nl {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `l%02d="v%d_%d"`, k, i, k)
		}
		fmt.Fprintf(&b, "} %d\n", i)
	}
	sink := newCaptureSinkV2()
	sink.v3 = true
	tg := benchTarget()
	s := newScraper(t, sink, tg, prom)
	s.scrape(b.String(), time.Now().UnixMilli())
	s.scrape(b.String(), time.Now().UnixMilli()+15_000)
	a := s.app.(*appender)
	held := 0
	for _, c := range a.v3.pos {
		held += cap(c.prev) + cap(c.cur)
	}
	if len(a.v3.pos) > maxPredicted || held > maxPredicted*2*2*maxChanges { // append's slack at most doubles
		t.Errorf("predictions hold %d positions, %d entries: past %d positions of %d changes", len(a.v3.pos), held, maxPredicted, maxChanges)
	}
	got := 0
	for _, p := range sink.payloads {
		for _, sr := range decodeV3(t, p) {
			i := -1 // the series' number, from its l00 tag
			for _, tag := range sr.Tags {
				fmt.Sscanf(tag, "l00:v%d_0", &i)
			}
			want := map[string]bool{}
			for k := range nl {
				want[fmt.Sprintf("l%02d:v%d_%d", k, i, k)] = true
			}
			for _, tag := range sr.Tags {
				delete(want, tag)
			}
			if len(want) > 0 {
				t.Fatalf("series %d: tags %v lack %d of its labels", i, sr.Tags, len(want))
			}
			got++
		}
	}
	if got != 2*series {
		t.Fatalf("%d series points at the intake, want %d", got, 2*series)
	}
}
