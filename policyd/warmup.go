package policyd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
)

// Warmups enforces the warm-up schedules of the configuration: each
// day, each destination group (the same MX grouping as throttling) takes
// at most the schedule's cap of a warm-up's recipients; the excess is
// deferred until the next day. The cap of a day is the schedule's entry
// for the number of days since the start on which the destination did
// not defer or refuse the warm-up's mail: a warm-up that meets deferrals
// or blocks stops growing until they clear (M3AAWG Sender BCP v3 §3.5).
//
// Counts live in the store, so that a restart forgets nothing and the
// relays of a fleet share one cap: each server adds what it accepted
// (Sync, every second) and reads back everyone's totals. Between two
// syncs the local counts are added to the last totals read.
//
// A recipient counts when the policy server accepts it at RCPT, so one
// whose message is later refused or abandoned still counts: a cap is
// never exceeded, and may be undershot by those. Mail submitted with
// sendmail(1) never meets the policy server and is not capped.
type Warmups struct {
	Store  store.Store
	Config func() *conf.Config
	Now    func() time.Time

	mu       sync.Mutex
	totals   map[dayKey]*dayCount // every relay's, as last read
	fullHour time.Time            // the clock hour of the last read of whole schedules
	fullCfg  *conf.Config         // the configuration that read was for
	pending  map[dayKey]*dayCount // accepted or held here, not yet written
	inflight map[dayKey]*dayCount // being written by Sync
	// held indexes the held days of the three maps above by warm-up
	// and destination, so that a decision looks at a few days, not at
	// every count. A held mark is never cleared, so it only grows.
	held map[destKey]map[int64]bool
}

type destKey struct{ warmup, dest string }

type dayKey struct {
	warmup, dest string
	day          int64 // unix seconds of the day's midnight
}

type dayCount struct {
	sent int
	held bool
}

// WarmupVerdict is the answer for one recipient.
type WarmupVerdict struct {
	OK      bool
	Warmup  string
	Day     int       // the schedule day in force (0: the first)
	Cap     int       // that day's cap; 0 once the schedule is over
	Sent    int       // recipients accepted for the destination today, this one included when OK
	Retry   time.Time // the next day, when not OK
	Skipped int       // days held back by deferrals
}

func (w *Warmups) count(m map[dayKey]*dayCount, k dayKey) int {
	if c := m[k]; c != nil {
		return c.sent
	}
	return 0
}

// heldDays counts the days before day on which dest held warm-up back.
// w.mu must be held.
func (w *Warmups) heldDays(warmup, dest string, day int64) int {
	n := 0
	for d := range w.held[destKey{warmup, dest}] {
		if d < day {
			n++
		}
	}
	return n
}

// merge adds c to k's count in m, and indexes a held day. w.mu must be
// held.
func (w *Warmups) merge(m map[dayKey]*dayCount, k dayKey, c dayCount) {
	t := m[k]
	if t == nil {
		t = &dayCount{}
		m[k] = t
	}
	t.sent += c.sent
	t.held = t.held || c.held
	if c.held {
		w.indexHeld(k)
	}
}

// indexHeld notes that k's destination held its warm-up back on k's day.
// w.mu must be held.
func (w *Warmups) indexHeld(k dayKey) {
	if w.held == nil {
		w.held = map[destKey]map[int64]bool{}
	}
	dk := destKey{k.warmup, k.dest}
	if w.held[dk] == nil {
		w.held[dk] = map[int64]bool{}
	}
	w.held[dk][k.day] = true
}

// Admit decides on one recipient of mail under warm-up wu for
// destination group dest, and counts it when admitted.
func (w *Warmups) Admit(wu *conf.Warmup, dest string) WarmupVerdict {
	now := w.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.progress(wu, dest, now)
	// Past the schedule (Cap 0) mail is still counted: scope status
	// shows it, and a longer schedule loaded later starts from it.
	if v.Cap > 0 && v.Sent >= v.Cap {
		v.Retry = wu.NextDay(now)
		return v
	}
	day, _ := wu.DayOf(now)
	k := dayKey{wu.Name, dest, day.Unix()}
	w.add(k, 1, false)
	v.OK, v.Sent = true, v.Sent+1
	return v
}

// progress is where wu stands with dest at now. w.mu must be held.
func (w *Warmups) progress(wu *conf.Warmup, dest string, now time.Time) WarmupVerdict {
	day, n := wu.DayOf(now)
	k := dayKey{wu.Name, dest, day.Unix()}
	held := 0
	if n > 0 {
		held = w.heldDays(wu.Name, dest, day.Unix())
	}
	level := n - held
	v := WarmupVerdict{Warmup: wu.Name, Day: max(level, 0), Skipped: held,
		Sent: w.count(w.totals, k) + w.count(w.pending, k) + w.count(w.inflight, k)}
	v.Cap, _ = wu.Cap(level)
	return v
}

// add counts n more recipients (and held) for k in pending. w.mu must be
// held.
func (w *Warmups) add(k dayKey, n int, held bool) {
	if k.dest == "" || n < 0 {
		return // the store refuses such a row, and would refuse the batch
	}
	if w.pending == nil {
		w.pending = map[dayKey]*dayCount{}
	}
	w.merge(w.pending, k, dayCount{sent: n, held: held})
}

// Held records that dest deferred or refused mail of scope at t: every
// warm-up that covers scope (or, when it selects mail by sender only,
// any scope) does not grow past that day at dest.
func (w *Warmups) Held(dest, scope string, t time.Time) {
	cfg := w.Config()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range cfg.Warmups {
		wu := &cfg.Warmups[i]
		if wu.Scope != "" && wu.Scope != scope {
			continue
		}
		day, n := wu.DayOf(t)
		if n < 0 {
			continue // before the warm-up starts: no schedule day to hold back
		}
		w.add(dayKey{wu.Name, dest, day.Unix()}, 0, true)
	}
}

// Sync writes what was counted here since the last Sync and reads every
// relay's totals of the configured warm-ups back.
func (w *Warmups) Sync(ctx context.Context) error {
	cfg := w.Config()
	w.mu.Lock()
	if w.inflight != nil {
		w.mu.Unlock()
		return errors.New("warm-up: a sync is already running")
	}
	w.inflight, w.pending = w.pending, nil
	out := w.inflight
	w.mu.Unlock()

	days := make([]store.WarmupDay, 0, len(out))
	for k, c := range out {
		days = append(days, store.WarmupDay{Warmup: k.warmup, Destination: k.dest, Day: time.Unix(k.day, 0).UTC(), Sent: c.sent, Held: c.held})
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Day.Before(days[j].Day) })
	if err := w.Store.AddWarmup(ctx, days); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		for k, c := range w.inflight { // not written: the next Sync tries again
			w.add(k, c.sent, c.held)
		}
		w.inflight = nil
		return fmt.Errorf("warm-up counts: writing: %w", err)
	}
	// Every relay's counts of today are read at each sync; whole
	// schedules (the days a destination held a warm-up back) once an
	// hour, and after a reload. A day's held mark written late by another
	// relay is seen within the hour.
	now := w.Now()
	full := w.fullCfg != cfg || !now.Truncate(time.Hour).Equal(w.fullHour)
	totals, err := w.read(ctx, cfg, full, now)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		// Written but not read back: they count in the old totals until
		// the next read has them.
		if w.totals == nil {
			w.totals = map[dayKey]*dayCount{}
		}
		for k, c := range w.inflight {
			w.merge(w.totals, k, *c)
		}
		w.inflight = nil
		return fmt.Errorf("warm-up counts: reading: %w", err)
	}
	if !full {
		// Keep the older days from before, with what this sync wrote
		// about them (a held mark from a late log line).
		for k, c := range w.totals {
			if _, ok := totals[k]; !ok && k.day < todayOf(cfg, k.warmup, now) {
				totals[k] = c
			}
		}
		for k, c := range w.inflight {
			if k.day < todayOf(cfg, k.warmup, now) {
				w.merge(totals, k, *c)
			}
		}
	} else {
		w.fullHour, w.fullCfg = now.Truncate(time.Hour), cfg
	}
	for k, c := range totals {
		if c.held {
			w.indexHeld(k) // another relay's mark
		}
	}
	w.totals, w.inflight = totals, nil
	return nil
}

// todayOf is the unix second of the current day's midnight of warm-up
// name, or 0 when it is no longer configured.
func todayOf(cfg *conf.Config, name string, now time.Time) int64 {
	if wu := cfg.Warmup(name); wu != nil {
		day, _ := wu.DayOf(now)
		return day.Unix()
	}
	return 0
}

// read loads every relay's totals of each configured warm-up: from its
// start on when full, else today's.
func (w *Warmups) read(ctx context.Context, cfg *conf.Config, full bool, now time.Time) (map[dayKey]*dayCount, error) {
	m := map[dayKey]*dayCount{}
	for i := range cfg.Warmups {
		wu := &cfg.Warmups[i]
		since := wu.StartTime()
		if !full {
			since, _ = wu.DayOf(now)
		}
		days, err := w.Store.WarmupDays(ctx, wu.Name, since)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			m[dayKey{d.Warmup, d.Destination, d.Day.Unix()}] = &dayCount{sent: d.Sent, held: d.Held}
		}
	}
	return m, nil
}

// Progress is one warm-up's state at one destination, for scope status
// and the metrics.
type Progress struct {
	Warmup      string
	Destination string
	WarmupVerdict
}

// Progress lists, for every configured warm-up and every destination it
// has counted, where it stands at now.
func (w *Warmups) Progress(now time.Time) []Progress {
	cfg := w.Config()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Progress
	for i := range cfg.Warmups {
		wu := &cfg.Warmups[i]
		dests := map[string]bool{}
		for _, m := range []map[dayKey]*dayCount{w.totals, w.pending, w.inflight} {
			for k := range m {
				if k.warmup == wu.Name {
					dests[k.dest] = true
				}
			}
		}
		for d := range dests {
			out = append(out, Progress{Warmup: wu.Name, Destination: d, WarmupVerdict: w.progress(wu, d, now)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Warmup != out[j].Warmup {
			return out[i].Warmup < out[j].Warmup
		}
		return out[i].Destination < out[j].Destination
	})
	return out
}

// warmupText is the DEFER_IF_PERMIT text for a recipient over the day's
// cap: the warm-up, the destination, the cap and when to retry.
func warmupText(dest string, v WarmupVerdict) string {
	return fmt.Sprintf("4.7.1 warm-up %s: %s has taken today's %d messages (schedule day %d); try again after %s",
		v.Warmup, dest, v.Cap, v.Day+1, v.Retry.UTC().Format("2006-01-02 15:04 UTC"))
}
