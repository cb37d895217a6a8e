package exposition

import (
	"bytes"
	"fmt"
	"strconv"
)

// ParseError reports where and why a payload is malformed.
type ParseError struct {
	Line, Col int    // 1-based; Col counts bytes
	Near      string // the offending bytes, quoted and truncated
	Msg       string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d col %d: %s near %s", e.Line, e.Col, e.Msg, e.Near)
}

// nearLimit bounds how many offending bytes an error quotes, so a huge bad
// line cannot blow up a log line.
const nearLimit = 40

// newParseError builds the error for a problem at byte offset pos. Line and
// column are found by counting here rather than on the hot path.
func newParseError(data []byte, pos int, msg string) *ParseError {
	pos = min(max(pos, 0), len(data))
	lineStart := bytes.LastIndexByte(data[:pos], '\n') + 1
	end := len(data)
	if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
		end = pos + i
	}
	near := data[pos:end]
	if len(near) > nearLimit {
		near = near[:nearLimit]
		return &ParseError{
			Line: bytes.Count(data[:pos], []byte{'\n'}) + 1,
			Col:  pos - lineStart + 1,
			Near: strconv.Quote(string(near)) + "...",
			Msg:  msg,
		}
	}
	return &ParseError{
		Line: bytes.Count(data[:pos], []byte{'\n'}) + 1,
		Col:  pos - lineStart + 1,
		Near: strconv.Quote(string(near)),
		Msg:  msg,
	}
}
