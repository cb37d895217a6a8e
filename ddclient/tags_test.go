package ddclient

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"
)

// plainJSONRef is plainJSON byte by byte.
func plainJSONRef(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// TestPlainJSONEveryByte puts every byte value at every position of strings
// of length 0..40 over several backgrounds, among them the bytes next to the
// ones the SWAR test looks for (0x1f/0x20, 0x21/0x23 around '"', 0x5b/0x5d
// around '\\', 0x7f/0x80), where a borrow or carry would show.
func TestPlainJSONEveryByte(t *testing.T) {
	backgrounds := []string{"a", " ", "!", "#", "[", "]", "~", "\x7f", "!#[] ~\x7f0Az"}
	for _, bg := range backgrounds {
		for n := 0; n <= 40; n++ {
			base := []byte(strings.Repeat(bg, n+1)[:n])
			if !plainJSON(base) || !plainJSONRef(base) {
				t.Fatalf("background %q length %d is not plain", bg, n)
			}
			s := make([]byte, n)
			for pos := 0; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					copy(s, base)
					s[pos] = byte(c)
					if got, want := plainJSON(s), plainJSONRef(s); got != want {
						t.Fatalf("plainJSON(%q) = %v, want %v (byte %#x at %d of %d)", s, got, want, c, pos, n)
					}
				}
			}
		}
	}
}

// TestPlainJSONTwoBytes places two bytes from the interesting set at every
// pair of positions of a 17-byte string: two words and a tail.
func TestPlainJSONTwoBytes(t *testing.T) {
	interesting := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7e, 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	const n = 17
	s := make([]byte, n)
	for i := range n {
		for j := range n {
			for _, a := range interesting {
				for _, b := range interesting {
					for k := range s {
						s[k] = 'x'
					}
					s[i], s[j] = a, b
					if got, want := plainJSON(s), plainJSONRef(s); got != want {
						t.Fatalf("plainJSON(%q) = %v, want %v", s, got, want)
					}
				}
			}
		}
	}
}

func TestPlainJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcXYZ019 !#[]~_-:./\x7f\"\\\x00\x1f\x80\xc3\xa9\xff")
	buf := make([]byte, 80)
	for range 200_000 {
		n := r.IntN(len(buf) + 1)
		s := buf[:n]
		mostlyPlain := r.IntN(2) == 0
		for i := range s {
			switch {
			case mostlyPlain && r.IntN(40) != 0:
				s[i] = byte(0x20 + r.IntN(0x5f))
			case r.IntN(4) == 0:
				s[i] = byte(r.IntN(256))
			default:
				s[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		if got, want := plainJSON(s), plainJSONRef(s); got != want {
			t.Fatalf("plainJSON(%q) = %v, want %v", s, got, want)
		}
	}
}

// tagAppender is an appender with counters, for the tag functions.
func tagAppender() (*appender, *metrics.Set) {
	set := metrics.NewSet()
	return &appender{m: newEncodeMetrics(set)}, set
}

// decodeTag decodes one encoded tag.
func decodeTag(t *testing.T, b []byte) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("tag %s is not a JSON string: %v", b, err)
	}
	return s
}

// TestTagShortening checks the tag length rule on values around the limit:
// ASCII, 2-, 3- and 4-byte runes at every alignment to the cut, and the
// JSON-escaped ones.
func TestTagShortening(t *testing.T) {
	a, set := tagAppender()
	type tc struct{ prefix, name, value string }
	var cases []tc
	for _, unit := range []string{"a", "é", "日", "😀", `"`, "\n", "\x01"} {
		for n := 150; n <= 230; n++ {
			for lead := range 4 {
				v := strings.Repeat("x", lead) + strings.Repeat(unit, n)
				cases = append(cases, tc{"", "key", v})
			}
		}
	}
	cases = append(cases, tc{"exported_", "job", longValue("job", 300)}, tc{"", longValue("name", 300), "v"})
	shortened := 0
	for _, c := range cases {
		full := c.prefix + c.name + ":" + c.value
		for _, path := range []string{"string", "bytes"} {
			var enc []byte
			if path == "string" {
				enc = a.appendTag(nil, c.prefix, c.name, c.value)
			} else {
				enc = a.appendTagBytes(nil, c.prefix, []byte(c.name), []byte(c.value))
			}
			got := decodeTag(t, enc)
			if len(full) <= MaxTagLength {
				if got != full {
					t.Fatalf("%s: %q (%d bytes) changed to %q", path, full, len(full), got)
				}
				continue
			}
			shortened++
			if len(got) > MaxTagLength || !utf8.ValidString(got) {
				t.Fatalf("%s: %q shortened to %d bytes, valid UTF-8 %v", path, full, len(got), utf8.ValidString(got))
			}
			i := strings.LastIndexByte(got, '~')
			if i < 0 {
				t.Fatalf("%s: %q shortened without a hash", path, got)
			}
			head, hash := got[:i], got[i+1:]
			if hash != fmt.Sprintf("%016x", xxhash.Sum64String(full)) {
				t.Fatalf("%s: %q: hash part %q, want the xxhash of the whole tag", path, got, hash)
			}
			// The head is the longest prefix that fits and ends at a rune start.
			if !strings.HasPrefix(full, head) || len(head) > MaxTagLength-17 || len(head) < MaxTagLength-17-3 || !utf8.RuneStart(full[len(head)]) {
				t.Fatalf("%s: head %q of %q", path, head, full)
			}
		}
	}
	if got := metricValue(t, set, "nodescraper_dd_tags_shortened_total"); got != float64(shortened) || shortened == 0 {
		t.Errorf("shortened counter %v, want %d", got, shortened)
	}
}

// TestTagShorteningDistinct checks that long values sharing their first 200
// bytes stay distinct tags, and that the same value always gives the same.
func TestTagShorteningDistinct(t *testing.T) {
	a, _ := tagAppender()
	seen := map[string]string{}
	common := longValue("common-prefix", 250)
	for i := range 2000 {
		v := fmt.Sprintf("%s-%d", common, i)
		tag := decodeTag(t, a.appendTag(nil, "", "k", v))
		if other, dup := seen[tag]; dup {
			t.Fatalf("%q and %q both give %q", other, v, tag)
		}
		seen[tag] = v
		if again := decodeTag(t, a.appendTagBytes(nil, "", []byte("k"), []byte(v))); again != tag {
			t.Fatalf("%q gives %q and %q", v, tag, again)
		}
	}
	// An exported_ prefix is part of the tag: same value, other tag.
	if x, y := decodeTag(t, a.appendTag(nil, "exported_", "k", common)), decodeTag(t, a.appendTag(nil, "", "k", common)); x == y {
		t.Errorf("exported_k and k give the same tag %q", x)
	}
}

// TestTagInvalidUTF8 checks that invalid UTF-8 (which only target labels can
// carry: the parser refuses it) becomes U+FFFD per byte, within 200
// characters when shortened.
func TestTagInvalidUTF8(t *testing.T) {
	a, _ := tagAppender()
	for _, v := range []string{"bad \xff", "\xc3", "\xe6\x97", strings.Repeat("\xff", 300), strings.Repeat("é\xff", 150), "ok" + strings.Repeat("\x80", 300)} {
		got := decodeTag(t, a.appendTag(nil, "", "k", v))
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > MaxTagLength {
			t.Errorf("%q → %q: valid %v, %d runes", v, got, utf8.ValidString(got), utf8.RuneCountInString(got))
		}
		if len("k:"+v) <= MaxTagLength && got != wantTag("k", v) {
			t.Errorf("%q → %q, want %q", v, got, wantTag("k", v))
		}
	}
}
