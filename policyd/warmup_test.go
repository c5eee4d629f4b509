package policyd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/senderkit/senderkit/conf"
)

// TestWarmupSchedule runs a warm-up with a simulated clock over five
// days on a real store: each day's cap holds per destination provider
// (gmail.com and a Google-hosted domain share one), the excess is
// deferred until the next midnight of the warm-up's zone, a restart
// (a fresh Warmups on the same store) forgets nothing, and a day on
// which the provider deferred the warm-up's mail does not let its cap
// grow.
func TestWarmupSchedule(t *testing.T) {
	f := newFixture(t, `
[[warmup]]
name = "acme-new"
scope = "acme"
start = "2026-11-03"
schedule = [3, 5, 8]
time_zone = "Europe/Berlin"
`)
	ctx := context.Background()
	google := []MX{{Host: "gmail-smtp-in.l.google.com", Pref: 5}}
	f.policy.Grouper.Resolver = tableResolver{"gmail.com": google, "hosted.example": {{Host: "aspmx.l.google.com", Pref: 1}},
		"yahoo.com": {{Host: "mta5.am0.yahoodns.net", Pref: 1}}}
	newWarmups := func() *Warmups { return &Warmups{Store: f.store, Config: f.cfg.Load, Now: f.clock} }
	f.policy.Warmups = newWarmups()
	d := newDeliveries(f)
	d.Warmups = f.policy.Warmups
	berlin, _ := time.LoadLocation("Europe/Berlin")
	day := func(n int) time.Time { return time.Date(2026, 11, 3+n, 10, 0, 0, 0, berlin) }

	var seq int
	// send asks for n recipients at domain from sender and returns how
	// many were accepted and the first deferral's text.
	send := func(sender, domain string, n int) (accepted int, deferral string) {
		t.Helper()
		for range n {
			seq++
			got := f.policy.Decide(ctx, rcpt(sender, fmt.Sprintf("u%d@%s", seq, domain)))
			switch {
			case got == "DUNNO":
				accepted++
			case strings.HasPrefix(got, "DEFER_IF_PERMIT 4.7.1 warm-up ") && deferral == "":
				deferral = got
			case !strings.HasPrefix(got, "DEFER_IF_PERMIT 4.7.1 warm-up "):
				t.Fatalf("%s to %s: %q", sender, domain, got)
			}
		}
		return accepted, deferral
	}
	check := func(what string, gotN int, gotText string, wantN int, wantText string) {
		t.Helper()
		if gotN != wantN || gotText != wantText {
			t.Errorf("%s: %d accepted, %q; want %d, %q", what, gotN, gotText, wantN, wantText)
		}
	}
	sync := func() {
		t.Helper()
		if err := f.policy.Warmups.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Day 1: 3 per provider (Yahoo's domains group under its MX hosts' yahoodns.net).
	f.setNow(day(0))
	n, text := send("news@acme.example", "gmail.com", 2)
	check("day 1, gmail.com", n, text, 2, "")
	sync()
	// A restart: the new server reads the two from the store.
	f.policy.Warmups = newWarmups()
	d.Warmups = f.policy.Warmups
	sync()
	n, text = send("news@acme.example", "hosted.example", 3)
	check("day 1, a Google-hosted domain after 2 to gmail.com", n, text, 1,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: google.com has taken today's 3 messages (schedule day 1); try again after 2026-11-03 23:00 UTC")
	n, text = send("news@acme.example", "yahoo.com", 4)
	check("day 1, yahoo.com", n, text, 3,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: yahoodns.net has taken today's 3 messages (schedule day 1); try again after 2026-11-03 23:00 UTC")
	n, text = send("news@globex.example", "gmail.com", 10)
	check("day 1, another scope", n, text, 10, "")
	// Berlin's midnight, not UTC's, starts day 2: at 23:30 UTC it is
	// 00:30 on the 4th there.
	f.setNow(time.Date(2026, 11, 3, 23, 30, 0, 0, time.UTC))
	n, text = send("news@acme.example", "gmail.com", 6)
	check("day 2 (just after Berlin's midnight), gmail.com", n, text, 5,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: google.com has taken today's 5 messages (schedule day 2); try again after 2026-11-04 23:00 UTC")
	// Google defers some of the warm-up's mail on day 2.
	f.addSend(t, 9001, "AB00000001", "u1@gmail.com")
	f.setNow(day(1))
	d.Line(logLine(f, "AB00000001", "u1@gmail.com", "4.7.0", "deferred",
		"host gmail-smtp-in.l.google.com[192.0.2.26] said: 421 4.7.0 Try again later, closing connection. (in reply to end of DATA command)"))
	n, text = send("news@acme.example", "yahoo.com", 5)
	check("day 2, yahoo.com", n, text, 5, "")
	sync()

	// Day 3: Google's cap stays at day 2's; Yahoo's grows.
	f.setNow(day(2))
	n, text = send("news@acme.example", "gmail.com", 6)
	check("day 3, gmail.com after a deferral on day 2", n, text, 5,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: google.com has taken today's 5 messages (schedule day 2); try again after 2026-11-05 23:00 UTC")
	n, text = send("news@acme.example", "yahoo.com", 9)
	check("day 3, yahoo.com", n, text, 8,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: yahoodns.net has taken today's 8 messages (schedule day 3); try again after 2026-11-05 23:00 UTC")
	sync()
	// What scope status shows on day 3.
	var got []string
	for _, p := range f.policy.Warmups.Progress(f.clock()) {
		got = append(got, fmt.Sprintf("%s day=%d held=%d cap=%d sent=%d", p.Destination, p.Day+1, p.Skipped, p.Cap, p.Sent))
	}
	if want := "[google.com day=2 held=1 cap=5 sent=5 yahoodns.net day=3 held=0 cap=8 sent=8]"; fmt.Sprint(got) != want {
		t.Errorf("progress on day 3: %v; want %v", got, want)
	}

	// Day 4: Google grows to 8; Yahoo's schedule is over.
	f.setNow(day(3))
	n, text = send("news@acme.example", "gmail.com", 9)
	check("day 4, gmail.com", n, text, 8,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: google.com has taken today's 8 messages (schedule day 3); try again after 2026-11-06 23:00 UTC")
	n, text = send("news@acme.example", "yahoo.com", 50)
	check("day 4, yahoo.com after the schedule", n, text, 50, "")
	sync()
	// Day 5: Google's schedule is over too.
	f.setNow(day(4))
	n, text = send("news@acme.example", "gmail.com", 50)
	check("day 5, gmail.com after the schedule", n, text, 50, "")

	// A reloaded configuration applies at once: a longer schedule caps
	// day 5 again (its fourth day of growth, one day held back).
	cfg, err := conf.Parse([]byte(testConfig+`
[[warmup]]
name = "acme-new"
scope = "acme"
start = "2026-11-03"
schedule = [3, 5, 8, 60]
time_zone = "Europe/Berlin"
`), "reloaded.toml")
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Store(cfg)
	sync()
	n, text = send("news@acme.example", "hosted.example", 20)
	check("day 5, Google, after a reload with a 4-day schedule", n, text, 10,
		"DEFER_IF_PERMIT 4.7.1 warm-up acme-new: google.com has taken today's 60 messages (schedule day 4); try again after 2026-11-07 23:00 UTC")
}

// Between the hourly reads of whole schedules a sync reads only today's
// counts: another server's count of today arrives, and a held mark for
// yesterday (a late log line) written by this server is kept.
func TestWarmupSyncWithinTheHour(t *testing.T) {
	f := newFixture(t, `
[[warmup]]
name = "w"
scope = "acme"
start = "2026-11-01"
schedule = [2, 4, 6]
`)
	ctx := context.Background()
	f.setNow(time.Date(2026, 11, 2, 10, 5, 0, 0, time.UTC)) // day 2
	a := &Warmups{Store: f.store, Config: f.cfg.Load, Now: f.clock}
	b := &Warmups{Store: f.store, Config: f.cfg.Load, Now: f.clock}
	wu := &f.cfg.Load().Warmups[0]
	for _, w := range []*Warmups{a, b} {
		if err := w.Sync(ctx); err != nil { // the full reads of this hour
			t.Fatal(err)
		}
	}
	f.setNow(time.Date(2026, 11, 2, 10, 20, 0, 0, time.UTC))
	if v := b.Admit(wu, "google.com"); !v.OK || v.Cap != 4 || v.Sent != 1 {
		t.Fatalf("b's first recipient: %+v", v)
	}
	a.Held("google.com", "acme", time.Date(2026, 11, 1, 23, 0, 0, 0, time.UTC)) // yesterday
	for _, w := range []*Warmups{b, a} {
		if err := w.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	v := a.Admit(wu, "google.com")
	// Yesterday held: day 2 is schedule day 1 again (cap 2); b's one
	// and this one make 2.
	if !v.OK || v.Cap != 2 || v.Sent != 2 || v.Skipped != 1 {
		t.Errorf("a after b's count and its own held mark: %+v", v)
	}
	if v := a.Admit(wu, "google.com"); v.OK {
		t.Errorf("a's third recipient of the day passed a cap of 2: %+v", v)
	}
}

// TestWarmupHeldBeforeStart: deferrals before a warm-up's start hold no
// schedule day back, in memory as after a restart.
func TestWarmupHeldBeforeStart(t *testing.T) {
	f := newFixture(t, `
[[warmup]]
name = "w"
scope = "acme"
start = "2026-11-03"
schedule = [3, 5, 8]
`)
	w := &Warmups{Store: f.store, Config: f.cfg.Load, Now: f.clock}
	wu := &f.cfg.Load().Warmups[0]
	w.Held("google.com", "acme", time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	w.Held("google.com", "acme", time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC))
	f.setNow(time.Date(2026, 11, 5, 10, 0, 0, 0, time.UTC)) // schedule day 2
	if v := w.Admit(wu, "google.com"); !v.OK || v.Cap != 8 || v.Skipped != 0 {
		t.Errorf("deferrals before the start held the schedule back: %+v, want cap 8", v)
	}
}
