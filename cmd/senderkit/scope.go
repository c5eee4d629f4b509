package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/health"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/policyd"
)

const scopeUsage = `status [-c FILE] [-format table|json]
       senderkit scope pause SCOPE [-c FILE] [-note TEXT]
       senderkit scope resume SCOPE [-c FILE] [-note TEXT]

status shows each scope's health over the last hour, day and week (the
copies sent in the window and what has become of them so far), the
figures its vetting thresholds judge, whether it is paused and why, and
each warm-up's progress per destination. pause holds a scope's bulk mail
by hand; resume lets a paused scope send again. Both are recorded as
events with who did it and the note.`

func (c *cli) scope(args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(c.stderr, "usage: senderkit scope %s\n", scopeUsage)
		return exitUsage
	}
	switch args[0] {
	case "status":
		return c.scopeStatus(args[1:])
	case "pause", "resume":
		return c.scopeChange(args[0], args[1:])
	}
	fmt.Fprintf(c.stderr, "senderkit scope: unknown subcommand %q\nusage: senderkit scope %s\n", args[0], scopeUsage)
	return exitUsage
}

func (c *cli) scopeChange(verb string, args []string) int {
	cmd := "scope " + verb
	fs := c.newFlags(cmd, "SCOPE [-c FILE] [-note TEXT]")
	var s suppressCmd
	s.cf.register(fs)
	note := fs.String("note", "", "why, for the event")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	name := pos[0]
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, cmd, "%v", err)
	}
	defer s.close()
	if s.cfg.Scope(name) == nil {
		return c.errorf(exitUsage, cmd, "scope %q is not in the configuration (known: %s)", name, knownScopes(s.cfg))
	}
	text := *note
	if text == "" {
		text = "by " + actor()
	}
	at := now()
	if verb == "pause" {
		p, changed, err := health.Pause(s.ctx, s.store, name, "manual", text, actor(), at)
		if err != nil {
			return c.errorf(exitFailure, cmd, "%v", err)
		}
		if !changed {
			fmt.Fprintf(c.stdout, "scope %s was already paused since %s: %s\n", name, p.Since.UTC().Format(time.RFC3339), p.Cause.Diagnostic)
			return exitOK
		}
		fmt.Fprintf(c.stdout, "scope %s paused: its bulk mail is deferred until `senderkit scope resume %s`\n", name, name)
		return exitOK
	}
	was, err := health.PauseOf(s.ctx, s.store, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c.errorf(exitFailure, cmd, "%v", err)
	}
	changed, err := health.Resume(s.ctx, s.store, name, text, actor(), at)
	if err != nil {
		return c.errorf(exitFailure, cmd, "%v", err)
	}
	if !changed {
		fmt.Fprintf(c.stdout, "scope %s was not paused\n", name)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "scope %s resumed (paused since %s: %s); the policy server and the milter let its mail through within policy.refresh (1s by default)\n",
		name, was.Since.UTC().Format(time.RFC3339), was.Cause.Diagnostic)
	return exitOK
}

// scopeStatus is what `scope status` prints.
type scopeStatus struct {
	At      time.Time    `json:"at"`
	Scopes  []scopeJSON  `json:"scopes"`
	Warmups []warmupJSON `json:"warmups"`
}

type scopeJSON struct {
	Name       string          `json:"name"`
	Configured bool            `json:"configured"`
	State      string          `json:"state"` // "sending" or "paused"
	Pause      *pauseJSON      `json:"pause,omitempty"`
	Windows    []windowJSON    `json:"windows"`
	Streams    []streamJSON    `json:"streams"`
	Judged     *windowJSON     `json:"judged,omitempty"`
	Thresholds *thresholdsJSON `json:"thresholds,omitempty"`
	Problems   []problemJSON   `json:"sender_problems"`
	Breach     *health.Breach  `json:"breach,omitempty"`
}

type thresholdsJSON struct {
	Window             string  `json:"window"`
	MinSent            int     `json:"min_sent"`
	ComplaintPercent   float64 `json:"complaint_percent"`
	HardBouncePercent  float64 `json:"hard_bounce_percent"`
	UnknownUserPercent float64 `json:"unknown_user_percent"`
	DeferralPercent    float64 `json:"deferral_percent"`
	SenderProblems     int     `json:"sender_problems"`
	PauseTransactional bool    `json:"pause_transactional"`
}

type pauseJSON struct {
	Since    time.Time `json:"since"`
	Reason   string    `json:"reason"`
	Evidence string    `json:"evidence"`
	Source   string    `json:"source"`
	EventID  int64     `json:"event_id"`
}

type windowJSON struct {
	Window          string  `json:"window"`
	Sent            int     `json:"sent"`
	Delivered       int     `json:"delivered"`
	Deferred        int     `json:"deferred"`
	HardBounced     int     `json:"hard_bounced"`
	UnknownUser     int     `json:"unknown_user"`
	SoftBounced     int     `json:"soft_bounced"`
	SenderProblems  int     `json:"sender_problems"`
	Complaints      int     `json:"complaints"`
	Unsubscribes    int     `json:"unsubscribes"`
	ComplaintRate   float64 `json:"complaint_rate_percent"`
	HardBounceRate  float64 `json:"hard_bounce_rate_percent"`
	UnknownUserRate float64 `json:"unknown_user_rate_percent"`
	DeferralRate    float64 `json:"deferral_rate_percent"`
}

type streamJSON struct {
	Name    string       `json:"name"`
	Windows []windowJSON `json:"windows"`
}

type problemJSON struct {
	Destination string    `json:"destination"`
	Count       int       `json:"count"`
	Last        time.Time `json:"last"`
	Example     string    `json:"example"`
}

type warmupJSON struct {
	Warmup      string    `json:"warmup"`
	Destination string    `json:"destination"`
	Day         int       `json:"day"` // 1: the first
	HeldDays    int       `json:"held_days"`
	Cap         int       `json:"cap"` // 0: the schedule is over
	SentToday   int       `json:"sent_today"`
	NextDay     time.Time `json:"next_day"`
}

func windowOf(f health.Figures) windowJSON {
	return windowJSON{Window: health.FormatWindow(f.Until.Sub(f.Since)), Sent: f.Sent, Delivered: f.Delivered, Deferred: f.Deferred,
		HardBounced: f.HardBounced, UnknownUser: f.UnknownUser, SoftBounced: f.SoftBounced, SenderProblems: f.SenderProblems,
		Complaints: f.Complaints, Unsubscribes: f.Unsubscribes, ComplaintRate: f.ComplaintRate(), HardBounceRate: f.HardBounceRate(),
		UnknownUserRate: f.UnknownUserRate(), DeferralRate: f.DeferralRate()}
}

func (c *cli) scopeStatus(args []string) int {
	fs := c.newFlags("scope status", "[-c FILE] [-format table|json]")
	var s suppressCmd
	s.cf.register(fs)
	format := fs.String("format", "table", "table or json")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 || *format != "table" && *format != "json" {
		fs.Usage()
		return exitUsage
	}
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, "scope status", "%v", err)
	}
	defer s.close()
	at := now()
	scopes, err := health.Compute(s.ctx, s.store, s.cfg, at, nil)
	if err != nil {
		return c.errorf(exitFailure, "scope status", "%v", err)
	}
	w := &policyd.Warmups{Store: s.store, Config: func() *conf.Config { return s.cfg }, Now: func() time.Time { return at }}
	if err := w.Sync(s.ctx); err != nil {
		return c.errorf(exitFailure, "scope status", "%v", err)
	}
	st := scopeStatus{At: at.UTC(), Warmups: []warmupJSON{}}
	for _, sc := range scopes {
		j := scopeJSON{Name: sc.Name, Configured: sc.Configured, State: "sending", Breach: sc.Breach, Streams: []streamJSON{}, Problems: []problemJSON{}}
		if p := sc.Pause; p != nil {
			j.State = "paused"
			j.Pause = &pauseJSON{Since: p.Since.UTC(), Reason: p.Cause.Reason, Evidence: p.Cause.Diagnostic, Source: p.Cause.Source, EventID: p.EventID}
		}
		for _, f := range sc.Windows {
			j.Windows = append(j.Windows, windowOf(f))
		}
		for _, s := range sc.Streams {
			sj := streamJSON{Name: s.Name}
			for _, f := range s.Windows {
				sj.Windows = append(sj.Windows, windowOf(f))
			}
			j.Streams = append(j.Streams, sj)
		}
		if cs := s.cfg.Scope(sc.Name); cs != nil {
			jw := windowOf(sc.Judged)
			j.Judged = &jw
			t := cs.Vetting
			j.Thresholds = &thresholdsJSON{Window: health.FormatWindow(t.Window.D()), MinSent: t.MinSent,
				ComplaintPercent: t.ComplaintPercent, HardBouncePercent: t.HardBouncePercent,
				UnknownUserPercent: t.UnknownUserPercent, DeferralPercent: t.DeferralPercent,
				SenderProblems: t.SenderProblems, PauseTransactional: t.PauseTransactional}
		}
		for _, p := range sc.Problems {
			j.Problems = append(j.Problems, problemJSON{Destination: p.Domain, Count: p.Count, Last: p.Last.UTC(), Example: p.Example})
		}
		st.Scopes = append(st.Scopes, j)
	}
	for _, p := range w.Progress(at) {
		j := warmupJSON{Warmup: p.Warmup, Destination: p.Destination, Day: p.Day + 1, HeldDays: p.Skipped, Cap: p.Cap, SentToday: p.Sent}
		if wu := s.cfg.Warmup(p.Warmup); wu != nil {
			j.NextDay = wu.NextDay(at).UTC()
		}
		st.Warmups = append(st.Warmups, j)
	}
	if *format == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return c.errorf(exitFailure, "scope status", "%v", err)
		}
		return exitOK
	}
	if err := st.writeTable(c.stdout); err != nil {
		return c.errorf(exitFailure, "scope status", "%v", err)
	}
	return exitOK
}

func (st *scopeStatus) writeTable(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scope health at %s (copies sent in each window, and what became of them so far)\n", st.At.Format(time.RFC3339))
	for _, sc := range st.Scopes {
		fmt.Fprintln(tw)
		state := "sending"
		if p := sc.Pause; p != nil {
			state = fmt.Sprintf("PAUSED since %s (%s, by %s): %s", p.Since.Format(time.RFC3339), p.Reason, p.Source, p.Evidence)
		}
		if !sc.Configured {
			state += " (not in the configuration)"
		}
		fmt.Fprintf(tw, "%s: %s\n", sc.Name, state)
		fmt.Fprintln(tw, "  window\tstream\tsent\tdelivered\tdeferred\thard\tunknown\tsoft\tproblems\tcomplaints\tunsubs\tcomplaint%\thard%\tunknown%\tdeferred%")
		row := func(label, stream string, w windowJSON) {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", label, stream, w.Sent, w.Delivered, w.Deferred,
				w.HardBounced, w.UnknownUser, w.SoftBounced, w.SenderProblems, w.Complaints, w.Unsubscribes,
				health.FormatPercent(w.ComplaintRate), health.FormatPercent(w.HardBounceRate),
				health.FormatPercent(w.UnknownUserRate), health.FormatPercent(w.DeferralRate))
		}
		for i, w := range sc.Windows {
			row(w.Window, "(all)", w)
			for _, s := range sc.Streams {
				row(w.Window, s.Name, s.Windows[i])
			}
		}
		if sc.Judged != nil {
			t := sc.Thresholds
			row("judged "+sc.Judged.Window, "(all)", *sc.Judged)
			fmt.Fprintf(tw, "  thresholds over %s, from %d copies: complaint %s%%, hard bounce %s%%, unknown user %s%%, deferral %s%% (0: not judged), sender problems per destination %d\n",
				t.Window, t.MinSent, health.FormatPercent(t.ComplaintPercent), health.FormatPercent(t.HardBouncePercent),
				health.FormatPercent(t.UnknownUserPercent), health.FormatPercent(t.DeferralPercent), t.SenderProblems)
		}
		if sc.Breach != nil {
			fmt.Fprintf(tw, "  over a threshold: %s\n", sc.Breach.Text)
		}
		for _, p := range sc.Problems {
			fmt.Fprintf(tw, "  sender problems at %s: %d, last %s: %s\n", p.Destination, p.Count, p.Last.Format(time.RFC3339), p.Example)
		}
	}
	if len(st.Warmups) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "warm-up\tdestination\tday\theld days\tcap today\tsent today\tnext day")
		for _, w := range st.Warmups {
			capText := fmt.Sprint(w.Cap)
			if w.Cap == 0 {
				capText = "done"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", w.Warmup, w.Destination, w.Day, w.HeldDays, capText, w.SentToday, w.NextDay.Format(time.RFC3339))
		}
	}
	return tw.Flush()
}
