package policyd

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
)

// Throttler keeps the health of each destination, fed by the deliveries
// Postfix logs, and decides whether new mail for it is accepted now.
//
// The rate follows AIMD, as TCP's congestion window does: a burst of
// temporary failures (Tempfails of them, TempfailPercent of the attempts
// within Window) or any rate-limit reply cuts the accepted rate to
// DecreasePercent of what it was (of the attempts a minute in the
// window, the first time), at most once per IncreaseEvery, so that the
// retries of one backlog do not count as many bursts; every IncreaseEvery
// without a temporary failure adds Increase messages a minute; at MaxRate
// the destination is no longer throttled. New mail is admitted by a token
// bucket filled at the rate, holding at most ten seconds of it.
//
// A blocklist reply suspends the scope that got it, at that destination,
// for BlocklistSuspend.
type Throttler struct {
	Config func() *conf.Throttle
	Now    func() time.Time

	mu     sync.Mutex
	dests  map[string]*destination
	active atomic.Int32 // destinations throttled or with a suspended scope
	gen    atomic.Int64 // bumped on every change worth saving
}

// slot counts the attempts of one second, so that a busy destination's
// window costs at most one slot a second, whatever its volume.
type slot struct {
	at        int64 // unix second
	ok, fails int
}

type destination struct {
	name     string
	slots    []slot    // within the window, oldest first
	lastFail time.Time // the last temporary failure

	limited    bool
	rate       float64 // messages a minute
	tokens     float64
	refilled   time.Time
	since      time.Time // throttled since
	lastChange time.Time // last decrease or increase
	reason     string
	reply      string

	suspended map[string]*suspension // by scope
}

type suspension struct {
	since, until time.Time
	reply        string
}

// NewThrottler returns a Throttler with no state.
func NewThrottler(cfg func() *conf.Throttle, now func() time.Time) *Throttler {
	return &Throttler{Config: cfg, Now: now, dests: map[string]*destination{}}
}

// Active reports whether any destination is throttled or has a suspended
// scope: when not, a request needs no destination at all.
func (t *Throttler) Active() bool { return t.active.Load() > 0 }

// Generation changes whenever the state does.
func (t *Throttler) Generation() int64 { return t.gen.Load() }

func (t *Throttler) dest(name string) *destination {
	d := t.dests[name]
	if d == nil {
		d = &destination{name: name}
		t.dests[name] = d
	}
	return d
}

// Observe feeds one delivery attempt to destination group, made for scope
// (which may be "").
func (t *Throttler) Observe(group, scope string, o Outcome, at time.Time, reply string) {
	cfg := t.Config()
	if !cfg.Enabled || o == Neutral {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.changed()
	now := t.Now()
	d := t.dest(group)
	d.prune(now, cfg.Window.D())
	switch o {
	case Blocklisted:
		if scope == "" || cfg.BlocklistSuspend <= 0 {
			return
		}
		if d.suspended == nil {
			d.suspended = map[string]*suspension{}
		}
		s := d.suspended[scope]
		if s == nil {
			s = &suspension{since: now}
			d.suspended[scope] = s
		}
		s.until, s.reply = now.Add(cfg.BlocklistSuspend.D()), reply
		return
	case Success:
		d.count(at, false)
		return
	}
	d.count(at, true)
	d.lastFail = now
	fails, attempts := d.totals()
	if o == RateLimited || fails >= cfg.Tempfails && fails*100 >= cfg.TempfailPercent*attempts {
		reason := "tempfail"
		if o == RateLimited {
			reason = "rate-limited"
		}
		d.decrease(now, cfg, reason, reply)
	}
}

// count adds an attempt at time at. A line older than the last slot (log
// lines are nearly in order) counts in the last slot.
func (d *destination) count(at time.Time, fail bool) {
	sec := at.Unix()
	if n := len(d.slots); n == 0 || d.slots[n-1].at < sec {
		d.slots = append(d.slots, slot{at: sec})
	}
	s := &d.slots[len(d.slots)-1]
	if fail {
		s.fails++
	} else {
		s.ok++
	}
}

// totals returns the temporary failures and all attempts in the window.
func (d *destination) totals() (fails, attempts int) {
	for _, s := range d.slots {
		fails += s.fails
		attempts += s.ok + s.fails
	}
	return fails, attempts
}

// prune drops the slots older than the window.
func (d *destination) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(d.slots) && now.Sub(time.Unix(d.slots[i].at, 0)) > window {
		i++
	}
	d.slots = d.slots[i:]
}

func (d *destination) decrease(now time.Time, cfg *conf.Throttle, reason, reply string) {
	factor := float64(cfg.DecreasePercent) / 100
	switch {
	case !d.limited:
		// The rate we were sending at, from the window's attempts.
		_, attempts := d.totals()
		perMin := float64(attempts) / max(cfg.Window.D().Minutes(), 1.0/60)
		d.limited, d.since, d.tokens, d.refilled = true, now, 0, now
		d.rate = perMin * factor
	case now.Sub(d.lastChange) >= cfg.IncreaseEvery.D():
		d.refill(now)
		d.rate *= factor
	default:
		return
	}
	d.rate = min(max(d.rate, float64(cfg.MinRate)), float64(cfg.MaxRate))
	d.lastChange, d.reason, d.reply = now, reason, reply
}

// recover applies the additive increases due by now; it reports false
// when the destination is healthy again.
func (d *destination) recover(now time.Time, cfg *conf.Throttle) bool {
	if !d.limited {
		return false
	}
	every := cfg.IncreaseEvery.D()
	base := d.lastChange
	if d.lastFail.After(base) {
		base = d.lastFail
	}
	if n := now.Sub(base) / every; n >= 1 {
		d.refill(now)
		d.rate += float64(n) * float64(cfg.Increase)
		d.lastChange = base.Add(n * every)
	}
	if d.rate >= float64(cfg.MaxRate) {
		d.limited, d.rate, d.reason, d.reply = false, 0, "", ""
		return false
	}
	return true
}

// refill adds the tokens earned since the last refill.
func (d *destination) refill(now time.Time) {
	if el := now.Sub(d.refilled); el > 0 {
		d.tokens = min(d.tokens+d.rate*el.Minutes(), max(1, d.rate/6))
	}
	d.refilled = now
}

// Verdict is an admission decision.
type Verdict struct {
	OK      bool
	Retry   time.Time // when to try again, if not OK
	Reason  string    // "rate-limited", "tempfail" or "blocklisted"
	Rate    float64   // the accepted rate, messages a minute (throttled)
	Suspend bool      // the scope is suspended (rather than rate-limited)
}

// Admit decides on one new message for group from scope, and counts it
// if admitted.
func (t *Throttler) Admit(group, scope string) Verdict {
	cfg := t.Config()
	if !cfg.Enabled {
		return Verdict{OK: true}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dests[group]
	if d == nil {
		return Verdict{OK: true}
	}
	now := t.Now()
	if s := d.suspended[scope]; s != nil {
		if now.Before(s.until) {
			return Verdict{Retry: s.until, Reason: "blocklisted", Suspend: true}
		}
		delete(d.suspended, scope)
		t.changed()
	}
	if was := d.limited; !d.recover(now, cfg) {
		if was {
			t.changed()
		}
		return Verdict{OK: true}
	}
	d.refill(now)
	if d.tokens >= 1 {
		d.tokens--
		return Verdict{OK: true}
	}
	wait := time.Duration((1 - d.tokens) / d.rate * float64(time.Minute))
	return Verdict{Retry: now.Add(wait), Reason: d.reason, Rate: d.rate}
}

// changed recounts the active destinations, forgets idle healthy ones,
// and marks the state as changed. t.mu must be held.
func (t *Throttler) changed() {
	n := 0
	for name, d := range t.dests {
		if d.limited || len(d.suspended) > 0 {
			n++
		} else if len(d.slots) == 0 {
			delete(t.dests, name)
		}
	}
	t.active.Store(int32(n))
	t.gen.Add(1)
}

// Snapshot returns the state of every throttled destination and
// suspended scope, for the store (senderkit report throttle).
func (t *Throttler) Snapshot() []store.Throttle {
	cfg := t.Config()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	var out []store.Throttle
	for _, d := range t.dests {
		d.prune(now, cfg.Window.D())
		fails, attempts := d.totals()
		if d.recover(now, cfg) {
			out = append(out, store.Throttle{Destination: d.name, State: store.ThrottleLimited, Rate: d.rate,
				Since: d.since, Tempfails: fails, Successes: attempts - fails, Reason: d.reason, Reply: d.reply, Updated: now})
		}
		for sc, s := range d.suspended {
			if !now.Before(s.until) {
				delete(d.suspended, sc)
				continue
			}
			out = append(out, store.Throttle{Destination: d.name, Scope: sc, State: store.ThrottleSuspended,
				Since: s.since, Until: s.until, Reason: "blocklisted", Reply: s.reply, Updated: now})
		}
	}
	t.changed()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Destination != out[j].Destination {
			return out[i].Destination < out[j].Destination
		}
		return out[i].Scope < out[j].Scope
	})
	return out
}

// Restore takes back a saved state (at start).
func (t *Throttler) Restore(ts []store.Throttle) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	for _, s := range ts {
		d := t.dest(s.Destination)
		switch s.State {
		case store.ThrottleLimited:
			d.limited, d.rate, d.since, d.reason, d.reply = true, s.Rate, s.Since, s.Reason, s.Reply
			// Recovery goes on from when the state was saved: a rate
			// cut days ago must not start climbing again from now.
			d.lastChange, d.refilled = now, now
			if !s.Updated.IsZero() && s.Updated.Before(now) {
				d.lastChange = s.Updated
			}
		case store.ThrottleSuspended:
			if d.suspended == nil {
				d.suspended = map[string]*suspension{}
			}
			d.suspended[s.Scope] = &suspension{since: s.Since, until: s.Until, reply: s.Reply}
		}
	}
	t.changed()
}

// deferText is the DEFER_IF_PERMIT text of a verdict: it names the
// destination and when to retry, and never the remote's reply (which may
// be about another scope's mail).
func deferText(group string, v Verdict) string {
	when := v.Retry.UTC().Format("15:04:05 UTC")
	if v.Suspend {
		return fmt.Sprintf("4.7.1 mail from this sender to %s is suspended: the destination reported a blocklist listing; try again after %s", group, when)
	}
	what := "is deferring our mail"
	if v.Reason == "rate-limited" {
		what = "is rate-limiting our mail"
	}
	return fmt.Sprintf("4.7.1 destination %s %s; accepting %.4g messages a minute for it; try again after %s", group, what, v.Rate, when)
}
