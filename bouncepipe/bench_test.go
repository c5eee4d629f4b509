package bouncepipe

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// corpusFiles reads every sample of the corpus into memory.
func corpusFiles(tb testing.TB) [][]byte {
	dir := needCorpus(tb)
	paths, err := filepath.Glob(filepath.Join(dir, "samples", "*.eml"))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// BenchmarkCorpus parses every corpus sample per iteration and reports
// messages per second.
func BenchmarkCorpus(b *testing.B) {
	files := corpusFiles(b)
	var total int64
	for _, f := range files {
		total += int64(len(f))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, f := range files {
			if _, err := Parse(bytes.NewReader(f), Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(files))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkWording is the cost of compiling the phrase tables, which
// every senderkit process pays at start: the bounce pipe once per
// message Postfix hands over.
func BenchmarkWording(b *testing.B) {
	var lists [][]string
	for _, r := range textRules {
		lists = append(lists, r.phrases)
	}
	lists = append(lists, otherLists[:]...)
	b.ReportAllocs()
	for b.Loop() {
		newMatcher(lists)
	}
}
