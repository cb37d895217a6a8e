package benchmarks

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
)

const corpusDir = "../scrapeloop/exposition/testdata/corpus"

// brokenFiles are corpus files that a Prometheus scrape rejects, so not every
// parser can read them to the end; they stay out of the comparison.
var brokenFiles = map[string]string{
	"netdata-geth.prom":                "# TYPE x summary IMP: invalid metric type",
	"windows_exporter-e2e-output.prom": "starts with a UTF-8 byte order mark",
}

// input is one payload with its sample count (as this parser counts them).
type input struct {
	name    string
	data    []byte
	samples int
}

var (
	realOnce   sync.Once
	realInputs []input
)

// loadReal reads every real Prometheus-text corpus file.
func loadReal(tb testing.TB) []input {
	realOnce.Do(func() {
		files, err := filepath.Glob(filepath.Join(corpusDir, "*.prom"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("no corpus in %s: %v", corpusDir, err)
		}
		for _, f := range files {
			if _, broken := brokenFiles[filepath.Base(f)]; broken {
				continue
			}
			realInputs = append(realInputs, readInput(tb, f))
		}
	})
	if len(realInputs) == 0 {
		tb.Fatal("corpus failed to load")
	}
	return realInputs
}

func readInput(tb testing.TB, path string) input {
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	// Every input ends in a newline (four netdata fixtures do not, and
	// expfmt needs it; textparse adds one itself). One spare byte of
	// capacity: textparse appends a newline to its input, and in a
	// Prometheus scrape the pooled buffer has room for it.
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	buf := make([]byte, len(data), len(data)+1)
	copy(buf, data)
	var p exposition.Parser
	p.Reset(buf, exposition.FormatPrometheus)
	n := 0
	for p.Next() {
		n++
	}
	if p.Err() != nil {
		tb.Fatalf("%s: %v", path, p.Err())
	}
	return input{name: strings.TrimSuffix(filepath.Base(path), ".prom"), data: buf, samples: n}
}

// synthetic payload from genksm, identical to the shared corpus' 20 MiB file
// (the md5 is the one recorded in corpus/SOURCES.txt).
const (
	syntheticFile = "testdata/synthetic-ksm-20MiB.prom"
	syntheticMD5  = "f2ef6576ab01ee4aecbb136d14776124"
)

var (
	synthOnce  sync.Once
	synthInput input
)

// loadSynthetic generates the synthetic payload once (go run ./cmd/genksm)
// and checks it is byte-identical to the shared one.
func loadSynthetic(tb testing.TB) input {
	synthOnce.Do(func() {
		if _, err := os.Stat(syntheticFile); err != nil {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				tb.Fatal(err)
			}
			cmd := exec.Command("go", "run", "./cmd/genksm", "-size", "20971520", "-o", syntheticFile)
			if out, err := cmd.CombinedOutput(); err != nil {
				tb.Fatalf("genksm: %v\n%s", err, out)
			}
		}
		in := readInput(tb, syntheticFile)
		sum := md5.Sum(in.data)
		if got := hex.EncodeToString(sum[:]); got != syntheticMD5 {
			tb.Fatalf("%s: md5 %s, want %s", syntheticFile, got, syntheticMD5)
		}
		in.name = "synthetic-ksm-20MiB"
		synthInput = in
	})
	if synthInput.data == nil {
		tb.Fatal("synthetic input failed to load")
	}
	return synthInput
}
