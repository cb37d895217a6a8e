package exposition

import (
	"bytes"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// normalNaN is the NaN bit pattern Prometheus stores (value.NormalNaN); every
// parsed NaN is mapped to it so values compare bit for bit.
const normalNaN uint64 = 0x7ff8000000000001

// exactPow10 holds the powers of ten that float64 represents exactly.
var exactPow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

// parseFloat parses a sample value as Prometheus does: strconv.ParseFloat
// without the Go 1.13 additions (hex mantissas, underscores). Short decimal
// numbers, the vast majority of real values, take an exact fast path: a
// mantissa below 2^53 scaled by an exactly representable power of ten is
// correctly rounded by one IEEE multiplication or division, which is also
// what strconv does for them, so results are bit-identical.
func parseFloat(b []byte) (float64, bool) {
	if f, end, ok := parseFloatFast(b, 0); ok && end == len(b) {
		return f, true
	}
	if bytes.ContainsAny(b, "pP_") {
		return 0, false
	}
	f, err := strconv.ParseFloat(yoloString(b), 64)
	if err != nil {
		return 0, false
	}
	if math.IsNaN(f) {
		f = math.Float64frombits(normalNaN)
	}
	return f, true
}

// parseFloatFast parses the plain decimal number starting at b[i] and
// returns it with the index just past it. ok is false when the bytes there
// need the general parser (too many digits, big exponents, Inf, NaN...).
// One function: its exponent loop split out would cost 91 against the
// inliner's budget of 80 (-gcflags=-m=2), a call per value with an exponent.
func parseFloatFast(b []byte, i int) (f float64, end int, ok bool) {
	if i+24 <= len(b) {
		if f, end, ok := parseFloatWords(b, i); ok {
			return f, end, true
		}
	}
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	sawDigit := false
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		sawDigit = true
		if mant == 0 && c == 0 {
			continue // leading zeros do not count towards precision
		}
		if digits >= 18 {
			return 0, 0, false
		}
		mant = mant*10 + uint64(c)
		digits++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b); i++ {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			sawDigit = true
			exp--
			if mant == 0 && c == 0 {
				continue
			}
			if digits >= 18 {
				return 0, 0, false
			}
			mant = mant*10 + uint64(c)
			digits++
		}
	}
	if !sawDigit {
		return 0, 0, false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		e, n := 0, 0
		for ; i < len(b); i++ {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			if e > 1000 {
				return 0, 0, false
			}
			e = e*10 + int(c)
			n++
		}
		if n == 0 {
			return 0, 0, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	f, ok = exactFloat(mant, exp, neg)
	return f, i, ok
}

// parseTextTimestamp parses the text format's timestamp: decimal digits only,
// milliseconds.
func parseTextTimestamp(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		ts, err := strconv.ParseInt(yoloString(b), 10, 64)
		return ts, err == nil
	}
	var ts int64
	for _, c := range b {
		c -= '0'
		if c > 9 {
			return 0, false
		}
		ts = ts*10 + int64(c)
	}
	return ts, true
}

// omSecondsToMillis converts an OpenMetrics timestamp in seconds the way
// Prometheus does (truncating float multiplication), so both agree exactly.
// It also returns the seconds, which strict validation compares exactly.
func omSecondsToMillis(b []byte) (int64, float64, bool) {
	f, ok := parseFloat(b)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, 0, false
	}
	return int64(f * 1000), f, true
}

// pow10u holds 10^k for k up to 8.
var pow10u = [...]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// parseFloatWords is parseFloatFast for the shape most float values have,
// [sign] 1-7 digits [. 0-7 digits] [e|E [sign] digits]: each run of digits
// is counted and converted within one word (notDigits, swarDigits), so the
// branches taken do not depend on the digits. It needs 24 readable bytes
// from i and returns ok false, for the loop to decide, on anything else.
func parseFloatWords(b []byte, i int) (f float64, end int, ok bool) {
	base := unsafe.Pointer(unsafe.SliceData(b))
	neg := false
	if c := byteAt(base, i); c == '-' || c == '+' {
		neg = c == '-'
		i++
	}
	w := load64(base, i)
	x := w ^ swarLo*'0'
	k := bits.TrailingZeros64(notDigits(x)) >> 3
	if k == 0 || k == 8 {
		return 0, 0, false
	}
	mant := swarDigits(x, k)
	i += k
	exp := 0
	if byte(w>>(8*k)) == '.' {
		i++
		w = load64(base, i)
		x = w ^ swarLo*'0'
		k = bits.TrailingZeros64(notDigits(x)) >> 3
		if k == 8 {
			return 0, 0, false
		}
		if k > 0 {
			mant = mant*pow10u[k] + swarDigits(x, k)
		}
		exp = -k
		i += k
	}
	if c := byteAt(base, i); c == 'e' || c == 'E' {
		i++
		eneg := false
		if c := byteAt(base, i); c == '-' || c == '+' {
			eneg = c == '-'
			i++
		}
		w = load64(base, i)
		x = w ^ swarLo*'0'
		k = bits.TrailingZeros64(notDigits(x)) >> 3
		if k == 0 || k > 3 {
			return 0, 0, false
		}
		e := int(swarDigits(x, k))
		if eneg {
			e = -e
		}
		exp += e
		i += k
	}
	f, ok = exactFloat(mant, exp, neg)
	return f, i, ok
}

// exactFloat returns ±mant·10^exp when one IEEE operation rounds it
// correctly, as strconv's result is: a mantissa up to 2^53 scaled by a power
// of ten that float64 holds exactly. ok is false otherwise.
func exactFloat(mant uint64, exp int, neg bool) (f float64, ok bool) {
	if mant > 1<<53 {
		return 0, false
	}
	f = float64(mant)
	switch {
	case mant == 0 || exp == 0:
	case exp > 0 && exp <= 22:
		f *= exactPow10[exp]
	case exp < 0 && exp >= -22:
		f /= exactPow10[-exp]
	default:
		return 0, false
	}
	if neg {
		f = -f
	}
	return f, true
}
