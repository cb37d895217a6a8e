package exposition

import (
	"encoding/binary"
	"unsafe"
)

// yoloString views b as a string without copying. The caller must not keep
// the string past the life of b, and b must not change while it is used;
// it exists so strconv can read payload bytes without an allocation.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// byteAt, load16 and load64 read the payload at base+i without bounds
// checks, little-endian; the caller has checked that i+1, i+2 or i+8 bytes
// are there. They let the hot loops check the length once per word.
func byteAt(base unsafe.Pointer, i int) byte { return *(*byte)(unsafe.Add(base, i)) }

func load16(base unsafe.Pointer, i int) uint16 {
	return binary.LittleEndian.Uint16((*[2]byte)(unsafe.Add(base, i))[:])
}

func load64(base unsafe.Pointer, i int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(base, i))[:])
}

// equalAt reports whether the n bytes at base+a and base+b are equal,
// comparing a word at a time, the last one masked; the caller has checked
// that n+8 bytes are readable at both offsets.
func equalAt(base unsafe.Pointer, a, b, n int) bool {
	for n >= 8 {
		if load64(base, a) != load64(base, b) {
			return false
		}
		a, b, n = a+8, b+8, n-8
	}
	return (load64(base, a)^load64(base, b))&(1<<(8*uint(n))-1) == 0
}
