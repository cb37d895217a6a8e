package exposition

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestParseFloatAgainstStrconv: the word-at-a-time and digit-loop fast
// paths give strconv's exact bits and the right token end, for a table of
// edge cases and for many generated decimal numbers, with and without room
// for word loads after the token.
func TestParseFloatAgainstStrconv(t *testing.T) {
	cases := []string{
		"0", "1", "-0", "+0", "-0.0", "1.", "0.5", ".5", "-.5", "1e3", "1E3", "1e-05", "1e+06",
		"1.5e-05", "9007199254740992", "9007199254740993", "12345678", "1234567.1234567",
		"0.000000000123", "123456789012345678", "1e22", "1e23", "1e-22", "1e-23", "4.2950062e+09",
		"2.7755575615628914e-17", "1.8446744073709552e+19", "1e308", "1e309", "1e-400", "00001.5000",
		"1e", "1e+", "1.2.3", "--1", "+-1", "1e0001",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		return b.String()
	}
	for range 20000 {
		s := []string{"", "-", "+"}[rng.IntN(3)] + digits(1+rng.IntN(9))
		if rng.IntN(2) == 0 {
			s += "." + digits(rng.IntN(10))
		}
		if rng.IntN(2) == 0 {
			s += []string{"e", "E"}[rng.IntN(2)] + []string{"", "-", "+"}[rng.IntN(3)] + digits(1+rng.IntN(3))
		}
		cases = append(cases, s)
	}
	for _, c := range cases {
		want, err := strconv.ParseFloat(c, 64)
		for _, tail := range []string{"", "\n", " 1700000000000\n" + strings.Repeat("x", 30)} {
			got, ok := parseFloat([]byte(c + tail)[:len(c)])
			if ok != (err == nil) || ok && math.Float64bits(got) != math.Float64bits(want) {
				t.Errorf("parseFloat(%q): %v %v, strconv %v %v", c, got, ok, want, err)
			}
			b := []byte(c + tail)
			// The fast path may stop early (the caller checks what follows);
			// what it took must be a number, with strconv's bits.
			if f, end, ok := parseFloatFast(b, 0); ok {
				pw, perr := strconv.ParseFloat(string(b[:end]), 64)
				if end > len(c) || perr != nil || math.Float64bits(f) != math.Float64bits(pw) || end == len(c) && err != nil {
					t.Errorf("parseFloatFast(%q+%q) = %v, end %d; strconv of %q: %v %v", c, tail, f, end, b[:end], pw, perr)
				}
			}
		}
	}
}
