package exposition

import "testing"

// TestReuseAgreesWithTextparse: runs of lines sharing prefixes of every
// length, with blanks, missing commas, quoted names, escapes and errors
// after the shared part, parse exactly as textparse parses them.
func TestReuseAgreesWithTextparse(t *testing.T) {
	for _, c := range reuseCases {
		t.Run(c.name, func(t *testing.T) {
			want, werr := parseWithTextparse([]byte(c.input), c.f)
			var p Parser
			got, gerr := parseWithUs(&p, []byte(c.input), c.f)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("textparse err=%v, ours err=%v", werr, gerr)
			}
			diffRecs(t, want, got)
		})
	}
}

// reuseCases also seed FuzzParse.
var reuseCases = []struct {
	name  string
	input string
	f     Format
}{
	{"buckets", "h_bucket{a=\"1\",b=\"2\",le=\"0.1\"} 1\nh_bucket{a=\"1\",b=\"2\",le=\"0.2\"} 2\nh_bucket{a=\"1\",b=\"2\",le=\"+Inf\"} 3\n", FormatPrometheus},
	{"value differs first", "m{a=\"x\",b=\"y\"} 1\nm{a=\"z\",b=\"y\"} 2\nm{a=\"z\",b=\"yy\"} 3\nm{a=\"z\",b=\"yy\",c=\"\"} 4\nm{a=\"z\"} 5\nm{} 6\nm 7\n", FormatPrometheus},
	{"name prefix", "foo{a=\"1\"} 1\nfoo_bar{a=\"1\"} 2\nfoo{a=\"1\"} 3\nfo{a=\"1\"} 4\n", FormatPrometheus},
	{"blanks and no commas", "m{a=\"1\" , b=\"2\"} 1\nm{a=\"1\" , b=\"3\"} 2\nm{a=\"1\"  b=\"3\"} 3\nm{a=\"1\",b=\"3\" } 4\nm {a=\"1\"} 5\n", FormatPrometheus},
	{"quoted names", "{\"m.x\",a=\"1\"} 1\n{\"m.x\",a=\"2\"} 2\nm{\"a.b\"=\"1\",c=\"2\"} 3\nm{\"a.b\"=\"1\",c=\"3\"} 4\n", FormatPrometheus},
	{"escapes", "m{a=\"x\\\"y\",b=\"1\"} 1\nm{a=\"x\\\"y\",b=\"2\"} 2\nm{a=\"x\",b=\"2\"} 3\nm{a=\"x\",b=\"2\\\\\"} 4\n", FormatPrometheus},
	{"error after shared part", "m{a=\"1\",b=\"2\"} 1\nm{a=\"1\",b=2} 2\n", FormatPrometheus},
	{"error in second label name", "m{a=\"1\",b=\"2\"} 1\nm{a=\"1\",b-c=\"2\"} 2\n", FormatPrometheus},
	{"om buckets", "# TYPE h histogram\nh_bucket{a=\"1\",le=\"1\"} 0\nh_bucket{a=\"1\",le=\"+Inf\"} 1\nh_count{a=\"1\"} 1\nh_sum{a=\"1\"} 0\n# EOF\n", FormatOpenMetrics},
	{"om trailing comma", "m{a=\"1\",b=\"2\"} 1\nm{a=\"1\",b=\"2\",} 2\nm{a=\"1\",} 3\n# EOF\n", FormatOpenMetrics},
	{"om exemplar", "# TYPE c counter\nc_total{a=\"1\"} 1 # {t=\"1\"} 1\nc_total{a=\"1\"} 2 # {t=\"2\"} 1 5\n# EOF\n", FormatOpenMetrics},
	// names checked against the previous line's name at the same index:
	// a quoted name, blanks after a name, a longer or shorter name, and a
	// name-like byte run that is not followed by '="'
	{"name hints", "m{\"a.b\"=\"1\",b=\"2\"} 1\nn{a.b=\"1\"} 2\n", FormatPrometheus},
	{"name hints ok", "m{\"ab\"=\"1\",b=\"2\"} 1\nn{ab=\"1\",b =\"2\"} 2\no{ab =\"3\",b=\"2\"} 3\np{abc=\"3\",b=\"2\"} 4\nq{a=\"3\",bb=\"2\"} 5\nr{a=\"3\",bb=\"2\",c=\"\"} 6\n", FormatPrometheus},
	{"last label then more", "m{a=\"1\"} 1\nm{a=\"1\" } 2\nm{a=\"1\" ,b=\"2\"} 3\nm{a=\"1\" ,b=\"2\"}4\n", FormatPrometheus},
}

// TestCommonPrefix checks the word-at-a-time comparison against a byte loop
// for a difference at every position of inputs around the 8- and 32-byte
// step sizes.
func TestCommonPrefix(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 40, 64, 71, 100} {
		a := make([]byte, n)
		for i := range a {
			a[i] = byte('a' + i%26)
		}
		for diff := 0; diff <= n; diff++ {
			b := append([]byte(nil), a...)
			if diff < n {
				b[diff] ^= 0x20
			}
			for _, bl := range []int{n, diff} {
				want := 0
				for want < min(n, bl) && a[want] == b[want] {
					want++
				}
				if got := commonPrefix(a, b[:bl]); got != want {
					t.Errorf("n=%d diff=%d len(b)=%d: got %d, want %d", n, diff, bl, got, want)
				}
			}
		}
	}
}

// TestLabelsCapped: label bytes handed out are capped at their length, so a
// caller appending to one cannot overwrite the payload.
func TestLabelsCapped(t *testing.T) {
	for _, in := range []string{"a{b=\"c\",d=\"e\"} 1\n", "a{b=\"c\\\\\",d=\"e\"} 1\n"} {
		var p Parser
		p.Reset([]byte(in), FormatPrometheus)
		if !p.Next() {
			t.Fatalf("%q: %v", in, p.Err())
		}
		for _, l := range p.Labels(nil) {
			if cap(l.Name) != len(l.Name) || cap(l.Value) != len(l.Value) {
				t.Errorf("%q: label %q=%q has spare capacity", in, l.Name, l.Value)
			}
		}
	}
}
