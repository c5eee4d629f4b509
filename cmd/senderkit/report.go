package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/senderkit/senderkit/internal/report"
	"github.com/senderkit/senderkit/internal/store"
)

const reportUsage = `[-since DATE|AGE] [-until DATE] [-format table|csv|json] [-section days|reasons|problems] [-by-relay]
       senderkit report throttle [-by-relay]

The sender report covers the mail SENT in the period (default: the last 7
days, UTC), per scope, stream and send day: sent, delivered, deferred,
bounced hard and soft, sender problems, complaints, unsubscribes, and the
complaint rate against delivered mail of that day (RFC 6449 4.3.2),
flagged above 0.1% and 0.3%; then the top bounce reasons and the sender
problems per destination. CSV holds one section at a time (-section).
A fleet of relays sharing one store is summed; -by-relay splits the days
and the throttle state by the relay that sent the mail.`

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
	byRelay := fs.Bool("by-relay", false, "split the days by the relay that sent the mail (a fleet sharing one store)")
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
	build := report.Build
	if *byRelay {
		build = report.BuildByRelay
	}
	r, err := build(s.ctx, s.store, from, to)
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
// a second of a change). The relays of a fleet are summed (their rates
// and counts added up), or shown one by one with -by-relay.
func (c *cli) reportThrottle(args []string) int {
	fs := c.newFlags("report throttle", "[-c FILE] [-state-dir DIR] [-by-relay]")
	var s suppressCmd
	s.cf.register(fs)
	byRelay := fs.Bool("by-relay", false, "one row per relay (a fleet sharing one store)")
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
	if !*byRelay {
		ts = fleetThrottles(ts)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if *byRelay {
		fmt.Fprint(tw, "RELAY\t")
	}
	fmt.Fprintln(tw, "DESTINATION\tSCOPE\tSTATE\tRATE/MIN\tUNTIL\tSINCE\tTEMPFAILS\tDELIVERED\tREASON\tLAST REPLY")
	for _, t := range ts {
		if *byRelay {
			fmt.Fprintf(tw, "%s\t", dash(t.Relay))
		}
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

// fleetThrottles sums the relays' state per destination and scope: the
// rates the relays accept add up to what the destination gets from the
// fleet, and so do the counts; the window is the widest, the reason and
// reply the latest.
func fleetThrottles(ts []store.Throttle) []store.Throttle {
	var out []store.Throttle
	at := map[[2]string]int{}
	for _, t := range ts {
		k := [2]string{t.Destination, t.Scope}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			t.Relay = ""
			out = append(out, t)
			continue
		}
		s := &out[i]
		s.Rate += t.Rate
		s.Tempfails += t.Tempfails
		s.Successes += t.Successes
		if t.Since.Before(s.Since) {
			s.Since = t.Since
		}
		if t.Until.After(s.Until) {
			s.Until = t.Until
		}
		if t.Updated.After(s.Updated) {
			s.Updated, s.Reason, s.Reply, s.State = t.Updated, t.Reason, t.Reply, t.State
		}
	}
	return out
}
