//go:build unix

package bouncepipe

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchVsSisimai compares messages per second of Parse with Sisimai's
// (Debian libsisimai-perl, Sisimai->make) on the same corpus files in the
// same run, three rounds taken in turn so that a busy machine slows both
// alike. It is a measurement, not a pass/fail test: it runs only with
// SENDERKIT_BENCH=1 (see testdata/bench-vs-sisimai.sh) and fails only
// when it cannot measure.
func TestBenchVsSisimai(t *testing.T) {
	if os.Getenv("SENDERKIT_BENCH") == "" {
		t.Skip("set SENDERKIT_BENCH=1 to compare with Sisimai")
	}
	dir := needCorpus(t)
	paths, err := filepath.Glob(filepath.Join(dir, "samples", "*.eml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples in %s: %v", dir, err)
	}
	if out, err := exec.Command("perl", "-MSisimai", "-e", "print $Sisimai::VERSION").CombinedOutput(); err != nil {
		t.Fatalf("Sisimai is not installed (apt-get install libsisimai-perl): %v: %s", err, out)
	}
	files := make([][]byte, len(paths))
	for i, p := range paths {
		if files[i], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}

	type round struct{ goWall, goCPU, sisWall, sisCPU float64 }
	var rounds []round
	for r := 0; r < 3; r++ {
		var x round
		x.goWall, x.goCPU = goRate(t, files)
		x.sisWall, x.sisCPU = sisimaiRate(t, paths)
		rounds = append(rounds, x)
		t.Logf("round %d: bouncepipe %.0f msgs/s (%.0f per CPU second), sisimai %.0f msgs/s (%.0f per CPU second): %.1fx wall, %.1fx CPU",
			r+1, x.goWall, x.goCPU, x.sisWall, x.sisCPU, x.goWall/x.sisWall, x.goCPU/x.sisCPU)
	}
	ratios := make([]float64, len(rounds))
	cpu := make([]float64, len(rounds))
	for i, x := range rounds {
		ratios[i], cpu[i] = x.goWall/x.sisWall, x.goCPU/x.sisCPU
	}
	sort.Float64s(ratios)
	sort.Float64s(cpu)
	t.Logf("median over %d files: %.1fx Sisimai by wall clock, %.1fx by CPU time (goal 50x)", len(files), ratios[1], cpu[1])
}

// goRate reads every file as `bouncepipe classify` does (each message of
// a mailbox, as Sisimai does too), pass after pass for at least a second,
// and returns files per wall-clock second and per CPU second.
func goRate(t *testing.T, files [][]byte) (wall, cpu float64) {
	n := 0
	c0 := cpuSeconds()
	start := time.Now()
	for time.Since(start) < time.Second {
		for _, f := range files {
			for _, msg := range SplitMbox(f) {
				if _, err := Parse(bytes.NewReader(msg), Options{}); err != nil {
					t.Fatal(err)
				}
			}
			n++
		}
	}
	el := time.Since(start).Seconds()
	return float64(n) / el, float64(n) / (cpuSeconds() - c0)
}

// sisimaiRate runs testdata/sisimai-bench.pl over the files once.
func sisimaiRate(t *testing.T, paths []string) (wall, cpu float64) {
	args := append([]string{filepath.Join("testdata", "sisimai-bench.pl"), "1"}, paths...)
	out, err := exec.Command("perl", args...).Output()
	if err != nil {
		t.Fatalf("sisimai-bench.pl: %v", err)
	}
	var ver string
	var n int
	var w, c float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "sisimai %s %d %f %f", &ver, &n, &w, &c); err != nil {
		t.Fatalf("sisimai-bench.pl said %q: %v", out, err)
	}
	return float64(n) / w, float64(n) / c
}

// cpuSeconds returns the CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
