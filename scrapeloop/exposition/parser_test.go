package exposition

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

// got renders every sample of input as one line: family/type/role name
// {labels} value [@ts] [created=ms], so cases read like the payload.
func got(t *testing.T, input string, f Format) (string, error) {
	t.Helper()
	var p Parser
	p.Reset([]byte(input), f)
	var b strings.Builder
	var ls []Label
	for p.Next() {
		b.WriteString(string(p.Family()) + "/" + p.Type().String() + "/" + p.Role().String() + " " + string(p.Name()) + "{")
		ls = p.Labels(ls[:0])
		for i, l := range ls {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(string(l.Name) + "=" + string(l.Value))
		}
		b.WriteString("} ")
		b.WriteString(formatValue(p.Value()))
		if ts, ok := p.Timestamp(); ok {
			b.WriteString(" @" + formatValue(float64(ts)))
		}
		if ms, ok := p.Created(); ok {
			b.WriteString(" created=" + formatValue(float64(ms)))
		}
		b.WriteString("\n")
	}
	return b.String(), p.Err()
}

func formatValue(f float64) string {
	switch {
	case math.IsNaN(f):
		if math.Float64bits(f) != normalNaN {
			return "NaN(non-canonical)"
		}
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func TestParse(t *testing.T) {
	f := func(name, input string, format Format, want string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			got, err := got(t, input, format)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != want {
				t.Errorf("input:\n%s\ngot:\n%s\nwant:\n%s", input, got, want)
			}
		})
	}
	prom, om := FormatPrometheus, FormatOpenMetrics

	f("text counter both names", `# HELP http_requests Requests.
# TYPE http_requests counter
http_requests{code="200"} 10
http_requests_total{code="500"} 2 1700000000000
other 1
`, prom, `http_requests/counter/total http_requests{code=200} 10
http_requests/counter/total http_requests_total{code=500} 2 @1700000000000
other/unknown/value other{} 1
`)
	f("text histogram and summary", `# TYPE lat histogram
lat_bucket{le="0.5"} 1
lat_bucket{le="+Inf"} 3
lat_sum 1.5
lat_count 3
# TYPE rpc summary
rpc{quantile="0.99"} 0.2
rpc_sum 4
rpc_count 9
rpc_created 5
`, prom, `lat/histogram/bucket lat_bucket{le=0.5} 1
lat/histogram/bucket lat_bucket{le=+Inf} 3
lat/histogram/sum lat_sum{} 1.5
lat/histogram/count lat_count{} 3
rpc/summary/quantile rpc{quantile=0.99} 0.2
rpc/summary/sum rpc_sum{} 4
rpc/summary/count rpc_count{} 9
rpc_created/unknown/value rpc_created{} 5
`)
	f("text leniency", "  spaced { a = \"1\" b=\"2\" , } 3  \n\n# free comment\n#x\nneg-1\nnan NaN\ninf -Inf 5\n", prom,
		`spaced/unknown/value spaced{a=1,b=2} 3
neg/unknown/value neg{} -1
nan/unknown/value nan{} NaN
inf/unknown/value inf{} -Inf @5
`)
	f("text escapes and quoted names", `{"my.metric", "label.name"="a\"b\\c\nd", x="\q"} 1
# HELP esc a\\b\nc\"d
esc 2
`, prom, "my.metric/unknown/value my.metric{label.name=a\"b\\c\nd,x=\\q} 1\nesc/unknown/value esc{} 2\n")
	// Values near the one-word integer path's edges: 1 to 8 digits, leading
	// zeros, a timestamp or blanks after the value, signs, a last line
	// without newline and the payload's last bytes.
	f("text integer values", "a 0\nb 7\nc 42\nd 123456\ne 1234567\nf 12345678\ng 007\n"+
		"h 5 1700000000000\ni 12 \nj +3\nk -3\nl 1e3\nm{x=\"y\"} 99\nt 1 1000000000000000000\nn 4",
		prom, `a/unknown/value a{} 0
b/unknown/value b{} 7
c/unknown/value c{} 42
d/unknown/value d{} 123456
e/unknown/value e{} 1234567
f/unknown/value f{} 12345678
g/unknown/value g{} 7
h/unknown/value h{} 5 @1700000000000
i/unknown/value i{} 12
j/unknown/value j{} 3
k/unknown/value k{} -3
l/unknown/value l{} 1000
m/unknown/value m{x=y} 99
t/unknown/value t{} 1 @1000000000000000000
n/unknown/value n{} 4
`)
	// Values past the 32 bytes the word scan covers take IndexByte and a
	// separate check: escapes and UTF-8 there still count.
	long := strings.Repeat("0123456789", 4)
	f("text long label values", "a{x=\""+long+"\",y=\""+long+"\\\"q\",z=\""+long+"é\"} 1\n",
		prom, "a/unknown/value a{x="+long+",y="+long+"\"q,z="+long+"é} 1\n")
	f("text NUL at line start ends the payload", "a 1\n\x00b 2\n", prom, "a/unknown/value a{} 1\n")

	f("om families, units, created", `# TYPE req_seconds counter
# UNIT req_seconds seconds
# HELP req_seconds Requests.
req_seconds_total{a="x"} 1 1.5
req_seconds_created{a="x"} 1700000000.123
req_seconds_total{a="y"} 2
# TYPE h histogram
h_bucket{le="1"} 0
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
h_created 10
# TYPE g gaugehistogram
g_bucket{le="+Inf"} 2
g_gcount 2
g_gsum 1
# TYPE i info
i_info{v="1"} 1
# TYPE s stateset
s{s="a"} 1
# TYPE q summary
q{quantile="0.5"} 1 # {trace="x"} 1 2
q_count 2
# EOF
`, om, `req_seconds/counter/total req_seconds_total{a=x} 1 @1500 created=1700000000123
req_seconds/counter/created req_seconds_created{a=x} 1700000000.123
req_seconds/counter/total req_seconds_total{a=y} 2
h/histogram/bucket h_bucket{le=1} 0 created=10000
h/histogram/bucket h_bucket{le=+Inf} 2 created=10000
h/histogram/sum h_sum{} 3 created=10000
h/histogram/count h_count{} 2 created=10000
h/histogram/created h_created{} 10
g/gaugehistogram/bucket g_bucket{le=+Inf} 2
g/gaugehistogram/gcount g_gcount{} 2
g/gaugehistogram/gsum g_gsum{} 1
i/info/value i_info{v=1} 1
s/stateset/value s{s=a} 1
q/summary/quantile q{quantile=0.5} 1
q/summary/count q_count{} 2
`)
}

func TestUnitAndHelp(t *testing.T) {
	var p Parser
	p.Reset([]byte("# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n# HELP a_seconds x\\ny\\\\z\\\"q\na_seconds 1\n# EOF\n"), FormatOpenMetrics)
	if !p.Next() {
		t.Fatal(p.Err())
	}
	if string(p.Unit()) != "seconds" || string(p.Help()) != "x\ny\\z\"q" {
		t.Errorf("unit %q help %q", p.Unit(), p.Help())
	}
	if string(p.Series()) != "a_seconds" {
		t.Errorf("series %q", p.Series())
	}
	p.Reset([]byte("# HELP t a\\\"b\\\\c\\nd\nt 1\n"), FormatPrometheus)
	if !p.Next() {
		t.Fatal(p.Err())
	}
	if string(p.Help()) != "a\\\"b\\c\nd" || p.Unit() != nil {
		t.Errorf("text help %q unit %q", p.Help(), p.Unit())
	}
}

func TestSeriesIsRaw(t *testing.T) {
	var p Parser
	p.Reset([]byte("foo{a=\"b\",c=\"d\\\"\"} 1 2\n"), FormatPrometheus)
	if !p.Next() {
		t.Fatal(p.Err())
	}
	if got := string(p.Series()); got != `foo{a="b",c="d\""}` {
		t.Errorf("series %q", got)
	}
}

// TestLabelText: the pairs' text comes back only when it is compact, so a
// caller can copy it for the pairs Label returns one by one.
func TestLabelText(t *testing.T) {
	for _, tc := range []struct {
		format Format
		line   string
		want   string // "" for nil
	}{
		{FormatPrometheus, `a{b="1",c="two"} 1`, `b="1",c="two"`},
		{FormatPrometheus, `a{b="1"} 1`, `b="1"`},
		{FormatPrometheus, `a{b="1",} 1`, `b="1"`},
		{FormatPrometheus, `a{b=""} 1`, `b=""`},
		{FormatPrometheus, `a 1`, ""},
		{FormatPrometheus, `a{} 1`, ""},
		{FormatPrometheus, `a{b="1", c="2"} 1`, ""},
		{FormatPrometheus, `a{b = "1"} 1`, ""},
		{FormatPrometheus, `a{ b="1"} 1`, `b="1"`},
		{FormatPrometheus, `a{b="x\"y"} 1`, ""},
		{FormatPrometheus, `a{b="1",c="x\ny"} 1`, ""},
		{FormatPrometheus, `{"a.b",c="1"} 1`, `c="1"`},
		{FormatPrometheus, `{"a.b","c.d"="1"} 1`, ""},
		{FormatPrometheus, `a{b="1","c.d"="2"} 1`, ""},
		{FormatOpenMetrics, `a{b="1",c="2"} 1`, `b="1",c="2"`},
		{FormatOpenMetrics, `a_total{b="1"} 1 # {t="x"} 2`, `b="1"`},
	} {
		input := tc.line + "\n"
		if tc.format == FormatOpenMetrics {
			input += "# EOF\n"
		}
		var p Parser
		p.Reset([]byte(input), tc.format)
		if !p.Next() {
			t.Errorf("%q: %v", tc.line, p.Err())
			continue
		}
		got := p.LabelText()
		if (got == nil) != (tc.want == "") || string(got) != tc.want {
			t.Errorf("%q: LabelText %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	f := func(input string, format Format, line, col int, msg, near string) {
		t.Helper()
		_, err := got(t, input, format)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("%q: want *ParseError, got %v", input, err)
		}
		if pe.Line != line || pe.Col != col || !strings.Contains(pe.Msg, msg) || pe.Near != near {
			t.Errorf("%q: got %+v, want line %d col %d msg %q near %s", input, *pe, line, col, msg, near)
		}
	}
	prom, om := FormatPrometheus, FormatOpenMetrics
	f("a 1\nb{c=\"d\" 2\n", prom, 2, 9, "expected label name", `"2"`)
	f("a 1\nb x\n", prom, 2, 3, "invalid value", `"x"`)
	f("a 1 1.5\n", prom, 1, 6, "expected end of line after timestamp", `".5"`)
	f("# TYPE a counte\n", prom, 1, 10, "invalid metric type", `"counte"`)
	f("a{x=\""+strings.Repeat("x", 40)+"\xff\"} 1\n", prom, 1, 5, "invalid UTF-8", `"\"`+strings.Repeat("x", 39)+`"...`)
	f("a 1 99999999999999999999\n", prom, 1, 5, "invalid timestamp", `"99999999999999999999"`) // past int64
	f("a 1\n", om, 2, 1, "does not end with # EOF", `""`)
	f("a 1\n\n# EOF\n", om, 2, 1, "blank line", `""`)
	f("a  1\n# EOF\n", om, 1, 2, "expected ' ' and value", `"  1"`)
	f("a{b=\""+strings.Repeat("x", 100)+"\n", prom, 1, 5, "unterminated", `"\"`+strings.Repeat("x", 39)+`"...`)
	f("# EOF\na 1\n", om, 2, 1, "after # EOF", `"a 1"`)
	// an unquoted name is never matched against a quoted family name
	f("# TYPE \"a.b\" counter\na.b 1\n", prom, 2, 2, "invalid value", `".b 1"`)
	f("# HELP \"a.b\" x\n# TYPE a.b counter\n", prom, 2, 10, "invalid metric type", `"b counter"`)
}

// TestZeroAlloc: parsing a warm payload with every accessor allocates nothing.
func TestZeroAlloc(t *testing.T) {
	data := []byte(`# HELP x Help with \\ escape.
# TYPE x counter
x_total{a="1",b="esc\"aped"} 1 # {t="1"} 2 3
x_created{a="1",b="esc\"aped"} 1.5
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 1
h_count 1
h_sum 0.5
{"quoted.name",z="q"} NaN
# EOF
`)
	var p Parser
	var ls []Label
	run := func() {
		p.Reset(data, FormatOpenMetrics)
		for p.Next() {
			ls = p.Labels(ls[:0])
			_, _ = p.Series(), p.Family()
			_, _ = p.Help(), p.Unit()
			_, _ = p.Created()
			_, _ = p.Timestamp()
			_ = p.Name()
		}
		if p.Err() != nil {
			t.Fatal(p.Err())
		}
	}
	for _, strict := range []bool{false, true} {
		p.SetStrict(strict)
		run()
		if n := testing.AllocsPerRun(100, run); n != 0 {
			t.Errorf("strict=%v: %v allocs per run, want 0", strict, n)
		}
	}
}

func TestFormatFor(t *testing.T) {
	for ct, want := range map[string]Format{
		"application/openmetrics-text; version=1.0.0; charset=utf-8": FormatOpenMetrics,
		"application/openmetrics-text":                               FormatOpenMetrics,
		"Application/OpenMetrics-Text;version=0.0.1":                 FormatOpenMetrics,
		"text/plain; version=0.0.4; charset=utf-8":                   FormatPrometheus,
		"":                 FormatPrometheus,
		"application/json": FormatPrometheus,
	} {
		if got := FormatFor(ct); got != want {
			t.Errorf("FormatFor(%q) = %v, want %v", ct, got, want)
		}
	}
}
