package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// Sliding windows are elapsed time: across Berlin's 23-hour and 25-hour
// days, "24h" still reaches back exactly 24 hours, which is a different
// wall-clock hour of the day before.
func TestWindowsAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now   time.Time
		w     time.Duration
		since string // Berlin wall clock
	}{
		{time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), 24 * time.Hour, "2026-03-28 11:00 CET"},
		{time.Date(2026, 3, 29, 3, 30, 0, 0, berlin), time.Hour, "2026-03-29 01:30 CET"},
		{time.Date(2026, 10, 25, 12, 0, 0, 0, berlin), 24 * time.Hour, "2026-10-24 13:00 CEST"},
		{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), time.Hour, "2026-10-25 02:30 CEST"}, // now is the second 02:30 (CET)
		{time.Date(2026, 10, 30, 12, 0, 0, 0, berlin), 7 * 24 * time.Hour, "2026-10-23 13:00 CEST"},
		{time.Date(2026, 4, 2, 12, 0, 0, 0, berlin), 7 * 24 * time.Hour, "2026-03-26 11:00 CET"},
	} {
		since, until := Bounds(tc.now, tc.w)
		if got := since.In(berlin).Format("2006-01-02 15:04 MST"); got != tc.since || !until.Equal(tc.now.Add(time.Second)) || until.Sub(since) != tc.w {
			t.Errorf("Bounds(%v, %v) = %s .. %v; want %s .. now+1s", tc.now, tc.w, got, until, tc.since)
		}
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 24 * time.Hour: "24h", 7 * 24 * time.Hour: "7d", 90 * time.Minute: "1h30m0s"} {
		if got := FormatWindow(d); got != want {
			t.Errorf("FormatWindow(%v) = %q; want %q", d, got, want)
		}
	}
}

func TestJudge(t *testing.T) {
	th := conf.Thresholds{Window: conf.Duration(24 * time.Hour), MinSent: 100, ComplaintPercent: 0.3, HardBouncePercent: 5, UnknownUserPercent: 2}
	day := Figures{Until: time.Unix(86400, 0), Since: time.Unix(0, 0)}
	with := func(f func(*Figures)) Figures { g := day; f(&g); return g }
	for _, tc := range []struct {
		name     string
		f        Figures
		problems []store.ProblemCount
		th       conf.Thresholds
		want     string // reason, "" for none
		text     string
	}{
		{"below min_sent", with(func(f *Figures) { f.Sent, f.Delivered, f.Complaints = 99, 99, 50 }), nil, th, "", ""},
		{"complaints at the limit", with(func(f *Figures) { f.Sent, f.Delivered, f.Complaints = 1000, 1000, 3 }), nil, th, "", ""},
		{"complaints above", with(func(f *Figures) { f.Sent, f.Delivered, f.Complaints = 1000, 1000, 4 }), nil, th,
			"complaint-rate", "complaint rate 0.40 % (4 of 1000 delivered copies sent in the last 24h) is above 0.30 %"},
		{"complaints against delivered, not sent", with(func(f *Figures) { f.Sent, f.Delivered, f.Complaints = 2000, 1000, 4 }), nil, th,
			"complaint-rate", "complaint rate 0.40 % (4 of 1000 delivered copies"},
		{"hard bounces above", with(func(f *Figures) { f.Sent, f.Delivered, f.HardBounced = 200, 189, 11 }), nil, th,
			"hard-bounce-rate", "hard-bounce rate 5.5 % (11 of 200 copies sent in the last 24h) is above 5.0 %"},
		{"unknown users above", with(func(f *Figures) { f.Sent, f.HardBounced, f.UnknownUser = 200, 5, 5 }), nil, th,
			"unknown-user-rate", "unknown-user rate 2.5 % (5 of 200 copies"},
		{"deferrals not judged at 0", with(func(f *Figures) { f.Sent, f.Deferred = 200, 200 }), nil, th, "", ""},
		{"sender problems need no volume", with(func(f *Figures) { f.Sent = 3 }),
			[]store.ProblemCount{{Scope: "a", Domain: "yahoo.com", Count: 2, Example: "553 5.7.1 listed\n at Spamhaus"}},
			func() conf.Thresholds { t := th; t.SenderProblems = 2; return t }(),
			"sender-problems", "yahoo.com refused 2 copies sent in the last 24h for a reason that blames the sender (limit 2): 553 5.7.1 listed at Spamhaus"},
		{"sender problems below", with(func(f *Figures) { f.Sent = 3 }),
			[]store.ProblemCount{{Scope: "a", Domain: "yahoo.com", Count: 1}},
			func() conf.Thresholds { t := th; t.SenderProblems = 2; return t }(), "", ""},
	} {
		b := Judge(tc.th, tc.f, tc.problems)
		switch {
		case tc.want == "" && b != nil:
			t.Errorf("%s: breach %+v; want none", tc.name, b)
		case tc.want != "" && b == nil:
			t.Errorf("%s: no breach; want %s", tc.name, tc.want)
		case tc.want != "" && (b.Reason != tc.want || !strings.HasPrefix(b.Text, tc.text)):
			t.Errorf("%s: %s %q; want %s %q", tc.name, b.Reason, b.Text, tc.want, tc.text)
		}
	}
}

// scripted is a store with sends and events at known times before now.
type scripted struct {
	t   *testing.T
	st  store.Store
	now time.Time
	id  uint64
}

func (s *scripted) send(scope, stream string, ago time.Duration, events ...store.Event) uint64 {
	s.t.Helper()
	s.id++
	ctx := context.Background()
	rcpt := fmt.Sprintf("r%d@dest.example", s.id)
	if err := s.st.AddSend(ctx, store.Send{ID: s.id, Scope: scope, Stream: stream, Recipient: rcpt, QueueID: fmt.Sprintf("Q%d", s.id), At: s.now.Add(-ago)}); err != nil {
		s.t.Fatal(err)
	}
	for _, e := range events {
		e.SendID, e.Scope, e.Stream, e.Address = s.id, scope, stream, rcpt
		if e.At.IsZero() {
			e.At = s.now.Add(-ago).Add(time.Minute)
		}
		if _, err := s.st.Record(ctx, e, store.Change{}); err != nil {
			s.t.Fatal(err)
		}
	}
	return s.id
}

var (
	delivered  = store.Event{Type: store.Delivered, Source: "log"}
	deferred   = store.Event{Type: store.Deferred, Source: "log", Status: "4.2.1"}
	unknown    = store.Event{Type: store.Bounced, Hard: true, Reason: "userunknown", Status: "5.1.1", Source: "log"}
	hardOther  = store.Event{Type: store.Bounced, Hard: true, Reason: "hostunknown", Status: "5.1.2", Source: "log"}
	complaint  = store.Event{Type: store.Complaint, FeedbackType: "abuse", Source: "bouncepipe"}
	notSpam    = store.Event{Type: store.Complaint, FeedbackType: "not-spam", Source: "bouncepipe"}
	blocklist  = store.Event{Type: store.SenderProblem, Reason: "blocked", Status: "5.7.1", Diagnostic: "554 listed at zen.spamhaus.org", Source: "log"}
	unsubcribe = store.Event{Type: store.Unsubscribed, Source: "http"}
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The figures of every window are exactly what the script recorded,
// each copy counted in the windows its send time falls in, whenever its
// events came; the vetter pauses the scope over its thresholds once,
// and an administrator resumes it.
func TestComputeAndVet(t *testing.T) {
	st := openStore(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := &scripted{t: t, st: st, now: now}
	// acme, news (bulk): 30 min ago 4 copies; 5 h ago 6 copies; 3 days
	// ago 10 copies; 8 days ago 5 (outside every window).
	s.send("acme", "news", 30*time.Minute, delivered)
	s.send("acme", "news", 30*time.Minute, delivered, complaint)
	s.send("acme", "news", 30*time.Minute, unknown)
	s.send("acme", "news", 30*time.Minute, deferred, delivered)
	for range 3 {
		s.send("acme", "news", 5*time.Hour, delivered)
	}
	s.send("acme", "news", 5*time.Hour, delivered, notSpam)
	s.send("acme", "news", 5*time.Hour, hardOther)
	s.send("acme", "news", 5*time.Hour, delivered, unsubcribe)
	for range 9 {
		s.send("acme", "news", 72*time.Hour, delivered)
	}
	s.send("acme", "news", 72*time.Hour, blocklist)
	for range 5 {
		s.send("acme", "news", 8*24*time.Hour, unknown)
	}
	// acme, receipts (transactional): 2 copies 2 h ago, delivered; a
	// complaint reported now about a copy sent 23 h ago counts in 24h.
	s.send("acme", "receipts", 2*time.Hour, delivered)
	s.send("acme", "receipts", 2*time.Hour, delivered)
	s.send("acme", "receipts", 23*time.Hour, delivered, store.Event{Type: store.Complaint, FeedbackType: "abuse", At: now})
	// globex: healthy.
	for range 4 {
		s.send("globex", "bulk", time.Hour/2, delivered)
	}

	cfg, err := conf.Parse([]byte(`state_dir = "/srv/senderkit"
[vetting]
min_sent = 5
complaint_percent = 10
hard_bounce_percent = 20
[[scope]]
name = "acme"
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
[[scope]]
name = "globex"
[[scope]]
name = "idle"
`), "vet.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Compute(context.Background(), st, cfg, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "acme" || got[1].Name != "globex" || got[2].Name != "idle" {
		t.Fatalf("scopes: %+v", got)
	}
	acme := got[0]
	type fig struct{ sent, delivered, deferred, hard, unknown, problems, complaints, unsubs int }
	figOf := func(f Figures) fig {
		return fig{f.Sent, f.Delivered, f.Deferred, f.HardBounced, f.UnknownUser, f.SenderProblems, f.Complaints, f.Unsubscribes}
	}
	wantAll := []fig{
		{4, 3, 1, 1, 1, 0, 1, 0},   // 1h: the four copies of 30 min ago
		{13, 11, 1, 2, 1, 0, 2, 1}, // 24h: + 6 news copies of 5 h ago, 3 receipts
		{23, 20, 1, 2, 1, 1, 2, 1}, // 7d: + 10 copies of 3 days ago
	}
	for i, w := range wantAll {
		if g := figOf(acme.Windows[i]); g != w {
			t.Errorf("acme, %s: %+v; want %+v", FormatWindow(Windows[i]), g, w)
		}
	}
	if len(acme.Streams) != 2 || acme.Streams[0].Name != "news" || acme.Streams[1].Name != "receipts" {
		t.Fatalf("acme streams: %+v", acme.Streams)
	}
	if g, w := figOf(acme.Streams[1].Windows[1]), (fig{3, 3, 0, 0, 0, 0, 1, 0}); g != w {
		t.Errorf("acme receipts, 24h: %+v; want %+v", g, w)
	}
	if g, w := figOf(acme.Streams[1].Windows[0]), (fig{}); g != w {
		t.Errorf("acme receipts, 1h: %+v; want nothing", g)
	}
	// Judged over 24h: 2 complaints (the not-spam report is not one) of
	// 11 delivered = 18.2 % > 10 %.
	if acme.Breach == nil || acme.Breach.Reason != "complaint-rate" ||
		acme.Breach.Text != "complaint rate 18 % (2 of 11 delivered copies sent in the last 24h) is above 10 %" {
		t.Errorf("acme breach: %+v", acme.Breach)
	}
	if got[1].Breach != nil || got[2].Breach != nil || figOf(got[2].Windows[2]) != (fig{}) {
		t.Errorf("globex or idle judged over a threshold: %+v %+v", got[1], got[2])
	}
	if c := got[0].Judged.ComplaintRate(); c != 100*2.0/11 {
		t.Errorf("complaint rate %v", c)
	}

	v := &Vetter{Store: st, Config: func() *conf.Config { return cfg }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	for range 2 {
		if _, err := v.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := st.Pauses(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Scope != "acme" || ps[0].Cause.Reason != "complaint-rate" || ps[0].Cause.Source != "vetting" ||
		!strings.HasPrefix(ps[0].Cause.Diagnostic, "complaint rate 18 %") {
		t.Fatalf("pauses after two checks: %+v, %v", ps, err)
	}
	var paused int
	st.Events(context.Background(), store.EventFilter{Scope: "acme", Types: []store.EventType{store.Paused}}, func(store.Event) error { paused++; return nil })
	if paused != 1 {
		t.Errorf("%d pause events after two checks; want 1", paused)
	}
	if text := PauseText(ps[0]); text != "mail from acme is paused since 2026-11-23 12:00 UTC: complaint rate 18 % (2 of 11 delivered copies sent in the last 24h) is above 10 %; its administrator must resume it" {
		t.Errorf("pause text %q", text)
	}
	changed, err := Resume(context.Background(), st, "acme", "list cleaned", "cli:admin", now.Add(time.Minute))
	if err != nil || !changed {
		t.Fatalf("resume: %v, %v", changed, err)
	}
	if _, err := PauseOf(context.Background(), st, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("still paused after resume: %v", err)
	}
	if changed, err := Resume(context.Background(), st, "acme", "again", "cli:admin", now.Add(2*time.Minute)); err != nil || changed {
		t.Errorf("second resume: %v, %v; want unchanged", changed, err)
	}
	// A resume starts a clean slate: the copies that paused the scope
	// do not pause it again.
	h, err := v.Check(context.Background())
	if err != nil || h[0].Breach != nil || h[0].Pause != nil || h[0].Judged.Sent != 0 || !h[0].Judged.Resumed {
		t.Fatalf("right after the resume: %+v, %v", h[0].Judged, err)
	}
	// Mail sent after it is judged again: 1 complaint of 5 delivered.
	later := now.Add(time.Hour)
	s.now = later
	v.Now = func() time.Time { return later }
	for range 4 {
		s.send("acme", "news", 10*time.Minute, delivered)
	}
	s.send("acme", "news", 10*time.Minute, delivered, complaint)
	// With vetting disabled the breach is reported and nothing paused.
	cfg.Vetting.Enabled = false
	h, err = v.Check(context.Background())
	if err != nil || h[0].Breach == nil || h[0].Pause != nil ||
		h[0].Breach.Text != "complaint rate 20 % (1 of 5 delivered copies sent since the resume at 2026-11-23 12:02 UTC) is above 10 %" {
		t.Errorf("vetting disabled: %+v, %v", h[0].Breach, err)
	}
	cfg.Vetting.Enabled = true
	if h, err = v.Check(context.Background()); err != nil || h[0].Pause == nil || h[0].Pause.Cause.Reason != "complaint-rate" {
		t.Errorf("vetting enabled again: %+v, %v", h[0].Pause, err)
	}
}

// countingStore counts SendTotals calls by window length.
type countingStore struct {
	store.Store
	reads map[time.Duration]int
}

func (c *countingStore) SendTotals(ctx context.Context, since, until time.Time) ([]store.DayCount, error) {
	c.reads[until.Sub(since)]++
	return c.Store.SendTotals(ctx, since, until)
}

// The vetter reads the window a scope is judged on at every check, and
// the windows shown only for status and metrics again once they have
// moved by a thousandth of their length; figures read earlier keep the
// bounds they were read for.
func TestVetterCachesWindowsNotJudged(t *testing.T) {
	st := &countingStore{Store: openStore(t), reads: map[time.Duration]int{}}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := &scripted{t: t, st: st, now: t0}
	s.send("acme", "news", 2*time.Hour, delivered)
	cfg, err := conf.Parse([]byte("state_dir = \"/srv/senderkit\"\n[[scope]]\nname = \"acme\"\n"), "vet.toml")
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	v := &Vetter{Store: st, Config: func() *conf.Config { return cfg }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	const h, d, w = time.Hour, 24 * time.Hour, 7 * 24 * time.Hour
	check := func(at time.Time, want map[time.Duration]int) Scope {
		t.Helper()
		now = at
		clear(st.reads)
		got, err := v.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(st.reads, want) {
			t.Errorf("at %s: SendTotals reads by window %v, want %v", at.Format(time.TimeOnly), st.reads, want)
		}
		return got[0]
	}
	check(t0, map[time.Duration]int{h: 1, d: 1, w: 1})
	// A copy sent after the first check: the day (judged) and the hour
	// are read again and count it, the week is not, yet.
	s.now = t0.Add(time.Minute)
	s.send("acme", "news", 0, delivered)
	a := check(t0.Add(time.Minute), map[time.Duration]int{h: 1, d: 1})
	if a.Windows[1].Sent != 2 || a.Judged.Sent != 2 || a.Windows[2].Sent != 1 {
		t.Errorf("after a minute: sent %d in the day (judged %d), %d in the week; want 2 (2), 1",
			a.Windows[1].Sent, a.Judged.Sent, a.Windows[2].Sent)
	}
	if _, until := Bounds(t0, w); !a.Windows[2].Until.Equal(until) {
		t.Errorf("the week read earlier ends at %v, want %v", a.Windows[2].Until, until)
	}
	a = check(t0.Add(11*time.Minute), map[time.Duration]int{h: 1, d: 1, w: 1})
	if a.Windows[2].Sent != 2 {
		t.Errorf("after 11 minutes: %d sent in the week, want 2", a.Windows[2].Sent)
	}
	// scope status computes without a cache: everything is read.
	clear(st.reads)
	if _, err := Compute(context.Background(), st, cfg, t0.Add(12*time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	if want := (map[time.Duration]int{h: 1, d: 1, w: 1}); !maps.Equal(st.reads, want) {
		t.Errorf("without a cache: reads %v, want %v", st.reads, want)
	}
}
