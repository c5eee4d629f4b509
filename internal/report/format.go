package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

const dayLayout = "2006-01-02"

// Rate formats a complaint rate as a percentage ("0.125%"), "-" for none.
func Rate(r *float64) string {
	if r == nil {
		return "-"
	}
	return strconv.FormatFloat(*r*100, 'f', 3, 64) + "%"
}

// WriteTable writes the report for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "Mail sent from %s to %s (UTC), by send day\n\n", r.Since.Format(dayLayout), r.Until.Add(-time.Second).Format(dayLayout))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.ByRelay {
		fmt.Fprint(tw, "RELAY\t")
	}
	fmt.Fprintln(tw, "SCOPE\tSTREAM\tDAY\tSENT\tDELIVERED\tDEFERRED\tHARD\tSOFT\tSENDER-PROBLEM\tCOMPLAINTS\tRATE\tUNSUBSCRIBES\tFLAG")
	for _, d := range r.Days {
		if r.ByRelay {
			fmt.Fprintf(tw, "%s\t", d.Relay)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", d.Scope, d.Stream, d.Day.Format(dayLayout),
			d.Sent, d.Delivered, d.Deferred, d.HardBounced, d.SoftBounced, d.SenderProblem, d.Complaints, Rate(d.ComplaintRate), d.Unsubscribes, d.Flag)
	}
	if len(r.Days) == 0 {
		fmt.Fprintln(tw, "(no mail sent in the period)")
	}
	tw.Flush()
	fmt.Fprintf(w, "\nComplaint rate = complaints / delivered, of the mail sent that day; flagged above %.1f%% and %.1f%% (Gmail and Yahoo ask for under 0.3%%).\n", WarnRate*100, LimitRate*100)

	fmt.Fprint(w, "\nTop bounce reasons\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tREASON\tKIND\tCOPIES")
	for _, b := range r.Reasons {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", b.Scope, b.Reason, hardSoft(b.Hard), b.Count)
	}
	if len(r.Reasons) == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	tw.Flush()

	fmt.Fprint(w, "\nSender problems by destination (refusals that blame the sender: blocklists, policy, reputation)\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tDOMAIN\tCOPIES\tLAST\tLAST REPLY")
	for _, p := range r.Problems {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Scope, p.Domain, p.Count, p.Last.Format("2006-01-02 15:04"), cut(p.Example, 80))
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	return tw.Flush()
}

func hardSoft(hard bool) string {
	if hard {
		return "hard"
	}
	return "soft"
}

func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// Sections of the CSV form.
const (
	SectionDays     = "days"
	SectionReasons  = "reasons"
	SectionProblems = "problems"
)

// WriteCSV writes one section as CSV (RFC 4180) with a header row.
func (r *Report) WriteCSV(w io.Writer, section string) error {
	cw := csv.NewWriter(w)
	switch section {
	case SectionDays, "":
		head := []string{"scope", "stream", "day", "sent", "delivered", "deferred", "hard_bounced", "soft_bounced",
			"sender_problem", "complaints", "complaint_rate", "unsubscribes", "flag"}
		if r.ByRelay {
			head = append([]string{"relay"}, head...)
		}
		cw.Write(head)
		for _, d := range r.Days {
			rate := ""
			if d.ComplaintRate != nil {
				rate = strconv.FormatFloat(*d.ComplaintRate, 'f', -1, 64)
			}
			row := []string{d.Scope, d.Stream, d.Day.Format(dayLayout), itoa(d.Sent), itoa(d.Delivered), itoa(d.Deferred),
				itoa(d.HardBounced), itoa(d.SoftBounced), itoa(d.SenderProblem), itoa(d.Complaints), rate, itoa(d.Unsubscribes), d.Flag}
			if r.ByRelay {
				row = append([]string{d.Relay}, row...)
			}
			cw.Write(row)
		}
	case SectionReasons:
		cw.Write([]string{"scope", "reason", "kind", "copies"})
		for _, b := range r.Reasons {
			cw.Write([]string{b.Scope, b.Reason, hardSoft(b.Hard), itoa(b.Count)})
		}
	case SectionProblems:
		cw.Write([]string{"scope", "domain", "copies", "last", "last_reply"})
		for _, p := range r.Problems {
			cw.Write([]string{p.Scope, p.Domain, itoa(p.Count), p.Last.Format(time.RFC3339), p.Example})
		}
	default:
		return fmt.Errorf("report: section %q: want days, reasons or problems", section)
	}
	cw.Flush()
	return cw.Error()
}

func itoa(n int) string { return strconv.Itoa(n) }

// jsonDay is a Day as JSON writes it.
type jsonDay struct {
	Scope         string   `json:"scope"`
	Stream        string   `json:"stream"`
	Day           string   `json:"day"`
	Sent          int      `json:"sent"`
	Delivered     int      `json:"delivered"`
	Deferred      int      `json:"deferred"`
	HardBounced   int      `json:"hard_bounced"`
	SoftBounced   int      `json:"soft_bounced"`
	SenderProblem int      `json:"sender_problem"`
	Complaints    int      `json:"complaints"`
	ComplaintRate *float64 `json:"complaint_rate"`
	Unsubscribes  int      `json:"unsubscribes"`
	Flag          string   `json:"flag,omitempty"`
	Relay         string   `json:"relay,omitempty"` // with ByRelay
}

type jsonReason struct {
	Scope  string `json:"scope"`
	Reason string `json:"reason"`
	Kind   string `json:"kind"`
	Copies int    `json:"copies"`
}

type jsonProblem struct {
	Scope     string    `json:"scope"`
	Domain    string    `json:"domain"`
	Copies    int       `json:"copies"`
	Last      time.Time `json:"last"`
	LastReply string    `json:"last_reply"`
}

// WriteJSON writes the whole report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		Since    string        `json:"since"`
		Until    string        `json:"until"`
		Days     []jsonDay     `json:"days"`
		Reasons  []jsonReason  `json:"bounce_reasons"`
		Problems []jsonProblem `json:"sender_problems"`
	}{Since: r.Since.Format(time.RFC3339), Until: r.Until.Format(time.RFC3339),
		Days: []jsonDay{}, Reasons: []jsonReason{}, Problems: []jsonProblem{}}
	for _, d := range r.Days {
		out.Days = append(out.Days, jsonDay{d.Scope, d.Stream, d.Day.Format(dayLayout), d.Sent, d.Delivered, d.Deferred,
			d.HardBounced, d.SoftBounced, d.SenderProblem, d.Complaints, d.ComplaintRate, d.Unsubscribes, d.Flag, d.Relay})
	}
	for _, b := range r.Reasons {
		out.Reasons = append(out.Reasons, jsonReason{b.Scope, b.Reason, hardSoft(b.Hard), b.Count})
	}
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, jsonProblem{p.Scope, p.Domain, p.Count, p.Last, p.Example})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
