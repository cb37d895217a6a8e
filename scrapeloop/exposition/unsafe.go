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
