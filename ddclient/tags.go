package ddclient

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// MaxTagLength is the longest tag Datadog keeps ("key:value", 200
// characters); the intake cuts longer ones, which would merge series whose
// long values share their first 200 characters.
const MaxTagLength = 200

// tagHashLen is what a shortened tag ends with: "~" and 16 hex digits of the
// whole tag's hash, so distinct long values stay distinct series.
const tagHashLen = 17

// appendTagBytes appends the tag prefix+name:value as a JSON string. It is
// the hot path of every point: plain ASCII within the length limit is copied
// as is.
func (a *appender) appendTagBytes(b []byte, prefix string, name, value []byte) []byte {
	if len(prefix)+len(name)+1+len(value) <= MaxTagLength && plainJSON(name) && plainJSON(value) {
		return appendPlainTag(b, prefix, name, value)
	}
	return a.appendTag(b, prefix, string(name), string(value))
}

// appendTag appends prefix+name:value as a JSON string, shortened to
// MaxTagLength with a hash suffix (counted) when longer.
func (a *appender) appendTag(b []byte, prefix, name, value string) []byte {
	a.scr = tagText(a, a.scr[:0], prefix, name, value)
	return appendJSONString(b, string(a.scr))
}

// tagText appends the tag prefix+name:value to b as it is, shortened to
// MaxTagLength with a hash suffix (counted) when longer.
func tagText[T string | []byte](a *appender, b []byte, prefix string, name, value T) []byte {
	start := len(b)
	b = append(append(append(append(b, prefix...), name...), ':'), value...)
	if len(b)-start <= MaxTagLength {
		return b
	}
	tag := b[start:]
	h := xxhash.Sum64(tag)
	cut := MaxTagLength - tagHashLen
	for cut > 0 && !utf8.RuneStart(tag[cut]) {
		cut--
	}
	b = append(b[:start+cut], '~')
	for i := 15; i >= 0; i-- {
		b = append(b, hex[h>>(4*uint(i))&0xf])
	}
	if a.m != nil {
		a.m.shortened.Inc()
	}
	return b
}

// v3TagText appends the tag as the v3 dictionary holds it: tagText's, its
// invalid UTF-8 replaced by U+FFFD as the v2 JSON carries it.
func v3TagText[T string | []byte](a *appender, b []byte, prefix string, name, value T) []byte {
	start := len(b)
	b = tagText(a, b, prefix, name, value)
	if utf8.Valid(b[start:]) {
		return b
	}
	a.scr = append(a.scr[:0], b[start:]...)
	b = b[:start]
	for s := a.scr; len(s) > 0; {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return b
}

// plainJSON reports whether s needs no escaping in a JSON string and is
// ASCII (so valid UTF-8): no control characters, quotes, backslashes or
// bytes ≥ 0x80. Eight bytes at a time.
func plainJSON(s []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for len(s) >= 8 {
		w := binary.LittleEndian.Uint64(s)
		ctl := (w - 0x2020202020202020) &^ w // high bit set where a byte < 0x20 (or ≥ 0x80, caught below)
		q := w ^ 0x2222222222222222          // zero where '"'
		bs := w ^ 0x5c5c5c5c5c5c5c5c         // zero where '\\'
		if (ctl|(q-ones)&^q|(bs-ones)&^bs|w)&highs != 0 {
			return false
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}
