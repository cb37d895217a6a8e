package exposition

import "unsafe"

// yoloString views b as a string without copying. The caller must not keep
// the string past the life of b, and b must not change while it is used;
// it exists so strconv can read payload bytes without an allocation.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
