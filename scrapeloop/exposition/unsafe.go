package exposition

import "unsafe"

// yoloString views b as a string without copying. The caller must not keep
// the string past the life of b, and b must not change while it is used;
// it exists so strconv can read payload bytes without an allocation.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// labelHeader is the memory layout of a Label: two []byte headers.
type labelHeader struct {
	name               unsafe.Pointer
	nameLen, nameCap   int
	value              unsafe.Pointer
	valueLen, valueCap int
}

// spanLabel returns the pair l locates in the payload starting at base,
// each slice capped at its length, without the bounds and overflow checks
// that slicing or unsafe.Slice carry: the span was checked against the
// payload when it was parsed. This keeps Label inlinable and costs a
// handful of instructions per pair.
func spanLabel(base unsafe.Pointer, l *span) Label {
	n, v := int(l.ne-l.ns), int(l.ve-l.vs)
	return *(*Label)(unsafe.Pointer(&labelHeader{unsafe.Add(base, l.ns), n, n, unsafe.Add(base, l.vs), v, v}))
}
