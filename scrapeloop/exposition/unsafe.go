package exposition

import "unsafe"

// yoloString views b as a string without copying. The caller must not keep
// the string past the life of b, and b must not change while it is used;
// it exists so strconv can read payload bytes without an allocation.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// offset returns where b, a subslice of p.data, starts in it; errors found
// while looking at a label report their position with it.
func (p *Parser) offset(b []byte) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(p.data))))
}

// shifted returns the bytes delta positions after b in the same payload.
// reusePrefix uses it to move a label from the previous line to the same
// bytes of the current one; the caller guarantees those lie inside p.data
// (they are part of a common prefix it just compared).
func shifted(b []byte, delta int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), delta)), len(b))
}
