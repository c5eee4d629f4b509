package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

const reportUsage = "throttle [-c FILE] | (sender reports arrive with issue #7)"

func (c *cli) report(args []string) int {
	if len(args) > 0 && args[0] == "throttle" {
		return c.reportThrottle(args[1:])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(c.stderr, "usage: senderkit report %s\n", reportUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	return c.notYet("report "+args[0], "issue #7 (sender reports)", exitFailure)
}

// reportThrottle shows the destinations the policy server throttles and
// the scopes it suspended, as `senderkit serve` last saved them (within
// a second of a change).
func (c *cli) reportThrottle(args []string) int {
	fs := c.newFlags("report throttle", "[-c FILE] [-state-dir DIR]")
	var s suppressCmd
	s.cf.register(fs)
	if _, code, ok := parseOrUsage(fs, args); !ok {
		return code
	}
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, "report throttle", "%v", err)
	}
	defer s.close()
	ts, err := s.store.Throttles(s.ctx)
	if err != nil {
		return c.errorf(exitFailure, "report throttle", "%v", err)
	}
	if len(ts) == 0 {
		fmt.Fprintln(c.stdout, "no destination is throttled")
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSCOPE\tSTATE\tRATE/MIN\tUNTIL\tSINCE\tTEMPFAILS\tDELIVERED\tREASON\tLAST REPLY")
	for _, t := range ts {
		rate, until := "-", "-"
		if t.State == store.ThrottleLimited {
			rate = fmt.Sprintf("%.4g", t.Rate)
		}
		if !t.Until.IsZero() {
			until = t.Until.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", t.Destination, dash(t.Scope), t.State, rate, until,
			t.Since.UTC().Format(time.RFC3339), t.Tempfails, t.Successes, t.Reason, oneLine(t.Reply, 60))
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "%d destination%s and scope%s held back, as of %s\n", len(ts), plural(len(ts), "", "s"), plural(len(ts), "", "s"),
		ts[0].Updated.UTC().Format(time.RFC3339))
	return exitOK
}
