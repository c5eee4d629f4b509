// Package health judges each scope by what became of the mail it sent
// (M3AAWG Sender BCP v3 §3.4: vet customers after they mail): bounce,
// unknown-user, complaint and deferral rates and sender problems over
// sliding windows, computed from the events the store already holds,
// and the thresholds that put a scope's bulk mail on hold.
//
// Every copy is judged by its send time: a window of 24 hours holds the
// copies sent in the last 24 hours and whatever has been reported about
// them so far, so a complaint read today about yesterday's mail counts
// against yesterday's volume (RFC 6449 §4.3.2). Windows are elapsed
// time: "24h" is 24 hours even on the day the clocks change.
package health

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
)

// Windows are the sliding windows scope status shows.
var Windows = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// Figures are what became of the copies one scope (or stream) sent in
// [Since, Until).
type Figures struct {
	Since, Until time.Time
	// Resumed is set when Since is the scope's last resume rather than
	// the window's start: an administrator's resume starts a clean slate.
	Resumed        bool
	Sent           int
	Delivered      int
	Deferred       int // copies deferred at least once
	HardBounced    int
	UnknownUser    int // of HardBounced: the recipient does not exist
	SoftBounced    int
	SenderProblems int // copies refused for a reason that blames the sender
	Complaints     int
	Unsubscribes   int
}

// Bounds returns the sliding window of length w that ends with now's
// second (the store keeps whole seconds, and until is exclusive: a copy
// sent in the current second is in).
func Bounds(now time.Time, w time.Duration) (since, until time.Time) {
	until = now.Truncate(time.Second).Add(time.Second)
	return until.Add(-w), until
}

func (f *Figures) add(c store.DayCount) {
	f.Sent += c.Sent
	f.Delivered += c.Delivered
	f.Deferred += c.Deferred
	f.HardBounced += c.HardBounced
	f.UnknownUser += c.UnknownUser
	f.SoftBounced += c.SoftBounced
	f.SenderProblems += c.SenderProblem
	f.Complaints += c.Complaints
	f.Unsubscribes += c.Unsubscribes
}

// percent is 100·n/of, 0 when of is 0.
func percent(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// ComplaintRate is complaints per delivered copy, in percent.
func (f Figures) ComplaintRate() float64 { return percent(f.Complaints, f.Delivered) }

// HardBounceRate is hard-bounced copies per sent copy, in percent.
func (f Figures) HardBounceRate() float64 { return percent(f.HardBounced, f.Sent) }

// UnknownUserRate is copies to recipients that do not exist per sent
// copy, in percent.
func (f Figures) UnknownUserRate() float64 { return percent(f.UnknownUser, f.Sent) }

// DeferralRate is copies deferred at least once per sent copy, in
// percent.
func (f Figures) DeferralRate() float64 { return percent(f.Deferred, f.Sent) }

// Stream is one stream's figures, one per window of Windows.
type Stream struct {
	Name    string
	Windows []Figures
}

// Scope is one scope's health.
type Scope struct {
	Name string
	// Configured is false for a scope the store knows but the
	// configuration no longer names.
	Configured bool
	// Windows are the scope's figures, all streams together, one per
	// window of Windows.
	Windows []Figures
	Streams []Stream
	// Judged are the figures over the scope's own thresholds window
	// (from its last resume, when that is later), and Problems its
	// sender problems in it by destination.
	Judged   Figures
	Problems []store.ProblemCount
	// Breach is the first threshold the judged figures pass, if any.
	Breach *Breach
	// Pause is the scope's pause, nil when it is sending.
	Pause *store.Pause
}

// Breach is a threshold passed.
type Breach struct {
	Reason string // "complaint-rate", "hard-bounce-rate", "unknown-user-rate", "deferral-rate", "sender-problems"
	Text   string // the figures, for the event, the log and the 4xx reply
}

// window is one window's send totals and the bounds they were read for.
type window struct {
	since, until time.Time
	rows         []store.DayCount
}

// Cache keeps each window's send totals between two computations. A
// window that no configured scope is judged on serves only scope status
// and the metrics; it is read again once it has moved by a thousandth of
// its length (3.6 s for an hour, 86 s for a day, 10 minutes for a week).
// Reading a week of sends every minute would otherwise cost a busy
// sender more than the judging does. The windows scopes are judged on
// are read every time. Its zero value is ready; it is safe for
// concurrent use.
type Cache struct {
	mu      sync.Mutex
	windows map[time.Duration]window
}

// fresh returns the cached totals of w when they are recent enough at now.
func (c *Cache) fresh(w time.Duration, now time.Time) (window, bool) {
	if c == nil {
		return window{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	x, ok := c.windows[w]
	if !ok {
		return window{}, false
	}
	_, until := Bounds(now, w)
	moved := until.Sub(x.until)
	return x, moved >= 0 && moved < w/1000
}

func (c *Cache) put(w time.Duration, x window) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.windows == nil {
		c.windows = map[time.Duration]window{}
	}
	c.windows[w] = x
}

// Compute returns the health of every configured scope and of every
// scope the store has sends or a pause for, by name, at now. With a
// cache, the windows no scope is judged on may be ones read earlier (see
// Cache); c may be nil.
func Compute(ctx context.Context, st store.Store, cfg *conf.Config, now time.Time, c *Cache) ([]Scope, error) {
	totals := map[time.Duration]window{}
	windows := append([]time.Duration(nil), Windows...)
	judgedOn := map[time.Duration]bool{}
	for _, sc := range cfg.Scopes {
		windows = append(windows, sc.Vetting.Window.D())
		judgedOn[sc.Vetting.Window.D()] = true
	}
	for _, w := range windows {
		if _, ok := totals[w]; ok {
			continue
		}
		if x, ok := c.fresh(w, now); ok && !judgedOn[w] {
			totals[w] = x
			continue
		}
		since, until := Bounds(now, w)
		rows, err := st.SendTotals(ctx, since, until)
		if err != nil {
			return nil, fmt.Errorf("health: send totals over %v: %w", w, err)
		}
		totals[w] = window{since: since, until: until, rows: rows}
		c.put(w, totals[w])
	}
	pauses, err := st.Pauses(ctx)
	if err != nil {
		return nil, fmt.Errorf("health: pauses: %w", err)
	}
	// A scope is judged on the mail sent since its last resume: the
	// copies that paused it would otherwise pause it again at once.
	resumed := map[string]time.Time{}
	longest := slices.Max(windows)
	err = st.Events(ctx, store.EventFilter{Types: []store.EventType{store.Resumed}, Since: now.Add(-longest)}, func(e store.Event) error {
		if e.At.After(resumed[e.Scope]) {
			resumed[e.Scope] = e.At
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("health: resumes: %w", err)
	}
	byName := map[string]*Scope{}
	var names []string
	scope := func(name string) *Scope {
		s := byName[name]
		if s == nil {
			s = &Scope{Name: name}
			byName[name] = s
			names = append(names, name)
		}
		return s
	}
	for _, sc := range cfg.Scopes {
		scope(sc.Name).Configured = true
	}
	for _, w := range Windows {
		for _, r := range totals[w].rows {
			scope(r.Scope)
		}
	}
	for i := range pauses {
		scope(pauses[i].Scope).Pause = &pauses[i]
	}
	problems := map[time.Duration][]store.ProblemCount{}
	for _, name := range names {
		s := byName[name]
		for _, w := range Windows {
			f := Figures{Since: totals[w].since, Until: totals[w].until}
			for _, r := range totals[w].rows {
				if r.Scope == name {
					f.add(r)
				}
			}
			s.Windows = append(s.Windows, f)
		}
		s.Streams = streams(name, totals)
		sc := cfg.Scope(name)
		if sc == nil {
			continue
		}
		tw := sc.Vetting.Window.D()
		since, until := totals[tw].since, totals[tw].until
		judged, probKey := totals[tw].rows, tw
		if r := resumed[name]; r.After(since) {
			since = r
			rows, err := st.SendTotals(ctx, since, until)
			if err != nil {
				return nil, fmt.Errorf("health: send totals since the resume of %s: %w", name, err)
			}
			judged, probKey = rows, -1
		}
		s.Judged = Figures{Since: since, Until: until, Resumed: probKey < 0}
		for _, c := range judged {
			if c.Scope == name {
				s.Judged.add(c)
			}
		}
		p, ok := problems[probKey]
		if !ok || probKey < 0 {
			if p, err = st.SenderProblems(ctx, since, until); err != nil {
				return nil, fmt.Errorf("health: sender problems over %v: %w", tw, err)
			}
			if probKey >= 0 {
				problems[probKey] = p
			}
		}
		for _, x := range p {
			if x.Scope == name {
				s.Problems = append(s.Problems, x)
			}
		}
		s.Breach = Judge(sc.Vetting, s.Judged, s.Problems)
	}
	sort.Strings(names)
	out := make([]Scope, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return out, nil
}

// streams splits a scope's figures by stream, one Figures per window.
func streams(scope string, totals map[time.Duration]window) []Stream {
	idx := map[string]int{}
	var out []Stream
	for wi, w := range Windows {
		for _, c := range totals[w].rows {
			if c.Scope != scope {
				continue
			}
			i, ok := idx[c.Stream]
			if !ok {
				i = len(out)
				idx[c.Stream] = i
				st := Stream{Name: c.Stream, Windows: make([]Figures, len(Windows))}
				for j, w2 := range Windows {
					st.Windows[j] = Figures{Since: totals[w2].since, Until: totals[w2].until}
				}
				out = append(out, st)
			}
			out[i].Windows[wi].add(c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Judge returns the first threshold of t that f (and, for sender
// problems, the problems by destination) passes, or nil. Rates are
// judged only once f.Sent reaches t.MinSent, and pass when strictly
// above their threshold.
func Judge(t conf.Thresholds, f Figures, problems []store.ProblemCount) *Breach {
	w := "in the last " + FormatWindow(f.Until.Sub(f.Since))
	if f.Resumed {
		w = "since the resume at " + f.Since.UTC().Format("2006-01-02 15:04 UTC")
	}
	if t.SenderProblems > 0 {
		for _, p := range problems {
			if p.Count >= t.SenderProblems {
				return &Breach{Reason: "sender-problems", Text: fmt.Sprintf(
					"%s refused %d copies sent %s for a reason that blames the sender (limit %d): %s",
					p.Domain, p.Count, w, t.SenderProblems, oneLine(p.Example))}
			}
		}
	}
	if f.Sent < t.MinSent || f.Sent == 0 {
		return nil
	}
	rates := []struct {
		reason     string
		rate, max  float64
		n, of      int
		what, base string
	}{
		{"complaint-rate", f.ComplaintRate(), t.ComplaintPercent, f.Complaints, f.Delivered, "complaint rate", "delivered copies"},
		{"hard-bounce-rate", f.HardBounceRate(), t.HardBouncePercent, f.HardBounced, f.Sent, "hard-bounce rate", "copies"},
		{"unknown-user-rate", f.UnknownUserRate(), t.UnknownUserPercent, f.UnknownUser, f.Sent, "unknown-user rate", "copies"},
		{"deferral-rate", f.DeferralRate(), t.DeferralPercent, f.Deferred, f.Sent, "deferral rate", "copies"},
	}
	for _, r := range rates {
		if r.max > 0 && r.of > 0 && r.rate > r.max {
			return &Breach{Reason: r.reason, Text: fmt.Sprintf("%s %s %% (%d of %d %s sent %s) is above %s %%",
				r.what, FormatPercent(r.rate), r.n, r.of, r.base, w, FormatPercent(r.max))}
		}
	}
	return nil
}

// FormatPercent writes a rate with the precision its size needs.
func FormatPercent(p float64) string {
	switch {
	case p == 0:
		return "0"
	case p < 1:
		return fmt.Sprintf("%.2f", p)
	case p < 10:
		return fmt.Sprintf("%.1f", p)
	}
	return fmt.Sprintf("%.0f", p)
}

// FormatWindow writes a window as "1h", "24h" or "7d".
func FormatWindow(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
