package selfmetrics

import (
	"bytes"
	"io"
	"maps"
	"strings"
)

// WriteWithHelp writes what write writes to w, with each empty "# HELP
// <family>" line that help has text for completed by that text (escaped as
// the text format wants: backslash and line feed). Other lines pass as
// they are.
func WriteWithHelp(w io.Writer, help map[string]string, write func(io.Writer)) error {
	var in bytes.Buffer
	write(&in)
	var out bytes.Buffer
	out.Grow(in.Len() + in.Len()/8)
	for b := in.Bytes(); len(b) > 0; {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		name, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("# HELP "))
		if text := help[string(name)]; ok && text != "" && bytes.IndexByte(name, ' ') < 0 {
			out.WriteString("# HELP ")
			out.Write(name)
			out.WriteByte(' ')
			out.WriteString(helpEscaper.Replace(text))
			out.WriteByte('\n')
			continue
		}
		out.Write(line)
	}
	_, err := w.Write(out.Bytes())
	return err
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// Merge returns one map with the entries of all of ms.
func Merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}
