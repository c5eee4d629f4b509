package doctor

import (
	"fmt"
	"io"
	"strings"
)

// Status is a check's verdict.
type Status int

// Verdicts, from best to worst.
const (
	Pass Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "pass"
	case Warn:
		return "warn"
	}
	return "fail"
}

// Check names, one per kind of check.
const (
	CheckConfig      = "config"
	CheckSPF         = "spf"
	CheckDKIM        = "dkim"
	CheckDMARC       = "dmarc"
	CheckPTR         = "ptr"
	CheckHELO        = "helo"
	CheckMX          = "mx"
	CheckUnsubscribe = "unsubscribe"
)

// Result is the outcome of one check.
type Result struct {
	Check  string // one of the Check* names
	What   string // what was checked: "SPF bounces.example.com 192.0.2.1"
	Status Status
	Detail string // what was found
	// Fix says how to repair a warning or failure: the record to
	// publish, with its value where it can be computed, or the setting
	// to change. One or more lines.
	Fix string
}

// Report is every result of one run, in the order the checks ran.
type Report []Result

// Worst returns the worst status in the report (Pass when empty).
func (r Report) Worst() Status {
	w := Pass
	for _, x := range r {
		w = max(w, x.Status)
	}
	return w
}

// Count returns how many results have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, x := range r {
		if x.Status == s {
			n++
		}
	}
	return n
}

// Write prints one line per result, "STATUS  WHAT  DETAIL", the WHAT
// column padded to line up, and under each warning or failure its fix,
// indented.
func (r Report) Write(w io.Writer) error {
	width := 0
	for _, x := range r {
		width = max(width, len(x.What))
	}
	var b strings.Builder
	for _, x := range r {
		fmt.Fprintf(&b, "%s  %-*s  %s\n", x.Status, width, x.What, x.Detail)
		if x.Status != Pass && x.Fix != "" {
			for i, l := range strings.Split(strings.TrimRight(x.Fix, "\n"), "\n") {
				if i == 0 {
					fmt.Fprintf(&b, "      fix: %s\n", l)
				} else {
					fmt.Fprintf(&b, "           %s\n", l)
				}
			}
		}
	}
	fmt.Fprintf(&b, "checks: %d pass, %d warn, %d fail\n", r.Count(Pass), r.Count(Warn), r.Count(Fail))
	_, err := io.WriteString(w, b.String())
	return err
}
