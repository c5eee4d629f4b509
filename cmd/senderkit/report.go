package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/senderkit/senderkit/internal/report"
	"github.com/senderkit/senderkit/internal/store"
)

const reportUsage = `[-since DATE|AGE] [-until DATE] [-format table|csv|json] [-section days|reasons|problems]
       senderkit report throttle

The sender report covers the mail SENT in the period (default: the last 7
days, UTC), per scope, stream and send day: sent, delivered, deferred,
bounced hard and soft, sender problems, complaints, unsubscribes, and the
complaint rate against delivered mail of that day (RFC 6449 4.3.2),
flagged above 0.1% and 0.3%; then the top bounce reasons and the sender
problems per destination. CSV holds one section at a time (-section).`

func (c *cli) report(args []string) int {
	if len(args) > 0 && args[0] == "throttle" {
		return c.reportThrottle(args[1:])
	}
	fs := c.newFlags("report", reportUsage)
	var s suppressCmd
	s.cf.register(fs)
	since := fs.String("since", "7d", "first send day: a date (2026-11-01) or an age (7d)")
	until := fs.String("until", "", "day after the last send day, a date; default: tomorrow")
	format := fs.String("format", "table", "table, csv or json")
	section := fs.String("section", report.SectionDays, "with -format csv: days, reasons or problems")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fs.Usage()
		return exitUsage
	}
	from, err := parseSince(*since)
	if err != nil {
		return c.errorf(exitUsage, "report", "%v", err)
	}
	from = from.UTC().Truncate(24 * time.Hour)
	to := now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if *until != "" {
		if to, err = time.Parse("2006-01-02", *until); err != nil {
			return c.errorf(exitUsage, "report", "-until %q: want a date such as 2026-11-08", *until)
		}
	}
	if !to.After(from) {
		return c.errorf(exitUsage, "report", "-until %s is not after -since %s", to.Format("2006-01-02"), from.Format("2006-01-02"))
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return c.errorf(exitUsage, "report", "-format %q: want table, csv or json", *format)
	}
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, "report", "%v", err)
	}
	defer s.close()
	r, err := report.Build(s.ctx, s.store, from, to)
	if err != nil {
		return c.errorf(exitFailure, "report", "%v", err)
	}
	switch *format {
	case "csv":
		err = r.WriteCSV(c.stdout, *section)
	case "json":
		err = r.WriteJSON(c.stdout)
	default:
		err = r.WriteTable(c.stdout)
	}
	if err != nil {
		return c.errorf(exitFailure, "report", "%v", err)
	}
	return exitOK
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
