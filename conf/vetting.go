package conf

import (
	"fmt"
	"time"

	"github.com/senderkit/senderkit/internal/addr"
)

// Vetting configures the post-send vetting of each scope (M3AAWG Sender
// BCP v3 §3.4): its health is computed from the events the store holds,
// and a scope whose mail passes a threshold has its bulk streams put on
// hold until an administrator resumes it (senderkit scope resume).
type Vetting struct {
	// Enabled turns automatic pausing on. Health is computed (for
	// senderkit scope status and the metrics) either way. Default true.
	Enabled bool `toml:"enabled"`
	// Interval is how often senderkit serve judges every scope.
	// Default "1m".
	Interval Duration `toml:"interval"`
	// The thresholds every scope gets unless its [scope.vetting] table
	// says otherwise.
	Thresholds
}

// Thresholds are the limits a scope's mail is judged against, over the
// copies it sent within the window (each copy judged by what became of
// it, whenever that was reported: a complaint counts against the day
// the mail was sent, RFC 6449 §4.3.2). A percentage of 0 is not
// judged.
type Thresholds struct {
	// Window is how far back the copies judged were sent (a sliding
	// window of elapsed time, not calendar days). Default "24h".
	Window Duration `toml:"window"`
	// MinSent is how many copies the scope must have sent in the window
	// before any rate is judged: a handful of messages says nothing.
	// Default 100.
	MinSent int `toml:"min_sent"`
	// ComplaintPercent is the highest complaint rate, complaints per
	// delivered copy. Gmail and Yahoo ask bulk senders to stay below
	// 0.3 %. Default 0.3.
	ComplaintPercent float64 `toml:"complaint_percent"`
	// HardBouncePercent is the highest share of sent copies that bounce
	// for good: a list with many dead addresses was not kept (M3AAWG
	// Sender BCP v3 §3.8). Default 5.
	HardBouncePercent float64 `toml:"hard_bounce_percent"`
	// UnknownUserPercent is the highest share of sent copies refused
	// because the recipient does not exist: the mark of a bought or
	// guessed list. Default 0 (not judged apart from hard bounces).
	UnknownUserPercent float64 `toml:"unknown_user_percent"`
	// DeferralPercent is the highest share of sent copies deferred at
	// least once. Default 0 (not judged: throttling deals with it).
	DeferralPercent float64 `toml:"deferral_percent"`
	// SenderProblems pauses the scope once one destination has refused
	// this many of the window's copies for a reason that blames the
	// sender (a blocklist listing, policy, reputation); it needs no
	// minimum volume. Default 0 (not judged).
	SenderProblems int `toml:"sender_problems"`
	// PauseTransactional holds the scope's transactional streams too
	// when it is paused. Default false: password resets and receipts
	// keep flowing.
	PauseTransactional bool `toml:"pause_transactional"`
}

// ScopeVetting holds a scope's own thresholds.
type ScopeVetting struct {
	// Vetting overrides the thresholds of [vetting] for this scope; a
	// key not written here takes the [vetting] value.
	Vetting Thresholds `toml:"vetting"`
}

func defaultVetting() Vetting {
	return Vetting{
		Enabled:  true,
		Interval: Duration(time.Minute),
		Thresholds: Thresholds{
			Window:            Duration(24 * time.Hour),
			MinSent:           100,
			ComplaintPercent:  0.3,
			HardBouncePercent: 5,
		},
	}
}

func (t *Thresholds) check(key string, l *errorList) {
	if d := t.Window.D(); d < time.Minute || d > 90*24*time.Hour {
		l.add(key+".window", "%v is outside 1m to 90d", d)
	}
	if t.MinSent < 0 {
		l.add(key+".min_sent", "%d: must not be negative", t.MinSent)
	}
	for name, p := range map[string]float64{"complaint_percent": t.ComplaintPercent, "hard_bounce_percent": t.HardBouncePercent,
		"unknown_user_percent": t.UnknownUserPercent, "deferral_percent": t.DeferralPercent} {
		if p < 0 || p > 100 {
			l.add(key+"."+name, "%v is outside 0 to 100", p)
		}
	}
	if t.SenderProblems < 0 {
		l.add(key+".sender_problems", "%d: must not be negative", t.SenderProblems)
	}
}

func (v *Vetting) complete(l *errorList) {
	if d := v.Interval.D(); d < 100*time.Millisecond || d > 24*time.Hour {
		l.add("vetting.interval", "%v is outside 100ms to 24h", d)
	}
	v.Thresholds.check("vetting", l)
}

// inherit fills the keys a scope's [scope.vetting] table does not write
// from the global thresholds g. written tells whether a key of the
// table was written.
func (t *Thresholds) inherit(g Thresholds, written func(key string) bool) {
	if !written("window") {
		t.Window = g.Window
	}
	if !written("min_sent") {
		t.MinSent = g.MinSent
	}
	if !written("complaint_percent") {
		t.ComplaintPercent = g.ComplaintPercent
	}
	if !written("hard_bounce_percent") {
		t.HardBouncePercent = g.HardBouncePercent
	}
	if !written("unknown_user_percent") {
		t.UnknownUserPercent = g.UnknownUserPercent
	}
	if !written("deferral_percent") {
		t.DeferralPercent = g.DeferralPercent
	}
	if !written("sender_problems") {
		t.SenderProblems = g.SenderProblems
	}
	if !written("pause_transactional") {
		t.PauseTransactional = g.PauseTransactional
	}
}

// Warmup is a schedule that raises a new scope's or a new sending
// address's volume day by day, per destination provider (M3AAWG Sender
// BCP v3 §3.5: receivers judge an IP address by all of its traffic,
// and a new one by how steadily it grows).
type Warmup struct {
	// Name identifies the warm-up in the store, in scope status and in
	// the metrics; letters, digits, '.', '_' and '-'. Required.
	Name string `toml:"name"`
	// Scope is the scope whose mail the schedule caps. Default none.
	Scope string `toml:"scope"`
	// Senders are envelope sender addresses, or "*@domain", whose mail
	// the schedule caps: a new sending address, or a new IP address
	// chosen by sender (sender_dependent_default_transport_maps). With
	// scope too, mail must match both. One of the two is required.
	// Default none.
	Senders []string `toml:"senders"`
	// Start is the schedule's first day, "YYYY-MM-DD" in time_zone.
	// Required.
	Start string `toml:"start"`
	// Schedule is the most recipients accepted per destination provider
	// (the domains that share mail exchangers, as throttling groups
	// them) on each day: the first number on the start day, the next
	// on the day after, and so on; after the last day the warm-up is
	// over and nothing is capped. A day on which a provider deferred or
	// refused the warm-up's mail does not count: its schedule does not
	// grow until a day passes without. Required.
	Schedule []int `toml:"schedule"`
	// TimeZone names the time zone whose midnights begin the schedule's
	// days ("Europe/Berlin", "Local"). Default "UTC".
	TimeZone string `toml:"time_zone"`

	loc     *time.Location
	start   time.Time // 00:00 of Start in loc
	senders map[string]bool
}

func (w *Warmup) complete(key string, c *Config, l *errorList) {
	if !nameRE.MatchString(w.Name) {
		l.add(key+".name", "%q: want 1-64 letters, digits, '.', '_' or '-'", w.Name)
	}
	if w.Scope == "" && len(w.Senders) == 0 {
		l.add(key, "needs scope, senders or both")
	}
	if w.Scope != "" && c.Scope(w.Scope) == nil {
		l.add(key+".scope", "%q is not a configured scope", w.Scope)
	}
	w.senders = map[string]bool{}
	for i, s := range w.Senders {
		n, err := addr.NormalizePattern(s, addr.Options{})
		if err != nil {
			l.add(fmt.Sprintf("%s.senders[%d]", key, i), "%v", err)
			continue
		}
		w.senders[n] = true
	}
	if w.TimeZone == "" {
		w.TimeZone = "UTC"
	}
	loc, err := time.LoadLocation(w.TimeZone)
	if err != nil {
		l.add(key+".time_zone", "%q: %v", w.TimeZone, err)
		loc = time.UTC
	}
	w.loc = loc
	start, err := time.ParseInLocation("2006-01-02", w.Start, loc)
	if err != nil {
		l.add(key+".start", "%q: want YYYY-MM-DD", w.Start)
	}
	w.start = start
	if len(w.Schedule) == 0 {
		l.add(key+".schedule", "must list at least one day's cap")
	}
	for i, n := range w.Schedule {
		if n < 1 {
			l.add(fmt.Sprintf("%s.schedule[%d]", key, i), "%d: a day's cap must be at least 1", n)
		}
	}
}

// Matches reports whether mail of scope (a name, "" for none) from
// envelope sender (as given) falls under the warm-up.
func (w *Warmup) Matches(scope, sender string) bool {
	if w.Scope != "" && w.Scope != scope {
		return false
	}
	if len(w.senders) == 0 {
		return true
	}
	n, err := addr.Normalize(sender, addr.Options{})
	if err != nil {
		return false
	}
	return w.senders[n] || w.senders[addr.DomainPattern(n)]
}

// WarmupFor returns the first warm-up that mail of scope from sender
// falls under, or nil.
func (c *Config) WarmupFor(scope, sender string) *Warmup {
	for i := range c.Warmups {
		if c.Warmups[i].Matches(scope, sender) {
			return &c.Warmups[i]
		}
	}
	return nil
}

// StartTime is the first day's midnight in the warm-up's time zone.
func (w *Warmup) StartTime() time.Time { return w.start }

// Warmup returns the warm-up with the given name, or nil.
func (c *Config) Warmup(name string) *Warmup {
	for i := range c.Warmups {
		if c.Warmups[i].Name == name {
			return &c.Warmups[i]
		}
	}
	return nil
}

// Location is the time zone of the warm-up's days.
func (w *Warmup) Location() *time.Location { return w.loc }

// DayOf returns the start of the schedule day t falls in (midnight in
// the warm-up's time zone) and the day's number: 0 on the start day,
// negative before it. Days are calendar days: one may last 23 or 25
// hours where the clocks change.
func (w *Warmup) DayOf(t time.Time) (day time.Time, n int) {
	t = t.In(w.loc)
	day = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, w.loc)
	return day, civilDays(w.start, day)
}

// NextDay returns the start of the schedule day after the one t falls in.
func (w *Warmup) NextDay(t time.Time) time.Time {
	day, _ := w.DayOf(t)
	return time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, w.loc)
}

// Cap returns the schedule's cap on day number n of its growth (0: the
// first), and false once the schedule is over.
func (w *Warmup) Cap(n int) (int, bool) {
	if n < 0 {
		n = 0
	}
	if n >= len(w.Schedule) {
		return 0, false
	}
	return w.Schedule[n], true
}

// civilDays counts the calendar days from a to b (both midnights in the
// same zone), whatever length DST gives them.
func civilDays(a, b time.Time) int {
	ua := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, time.UTC)
	ub := time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
	return int(ub.Sub(ua).Hours() / 24)
}
