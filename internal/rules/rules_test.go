package rules

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func setup(t *testing.T, extra string) (Rules, store.Store) {
	t.Helper()
	cfg, err := conf.Parse([]byte(`
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
unsubscribe_covers = "stream"
soft_bounces = 3
`+extra), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return Rules{Store: st, Config: cfg}, st
}

func suppressed(t *testing.T, st store.Store, scope, stream, a string) (store.Suppression, bool) {
	t.Helper()
	// Mid-way through the tests' timelines: soft entries are still in force.
	e, ok, err := st.Lookup(context.Background(), store.Query{Scope: scope, Stream: stream, Address: a, At: t0.Add(20 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return e, ok
}

func ev(scope, stream, a string, send uint64) store.Event {
	return store.Event{At: t0, Scope: scope, Stream: stream, Address: a, SendID: send, Source: "test"}
}

func TestBounce(t *testing.T) {
	r, st := setup(t, "")
	ctx := context.Background()
	// Hard: at once, permanently.
	e := ev("acme", "news", "gone@example.com", 1)
	e.Hard, e.Reason, e.Status = true, "userunknown", "5.1.1"
	if _, err := r.Bounce(ctx, e, false); err != nil {
		t.Fatal(err)
	}
	if s, ok := suppressed(t, st, "acme", "", "gone@example.com"); !ok || s.Reason != store.HardBounce || !s.Expires.IsZero() {
		t.Errorf("hard bounce: %+v %v", s, ok)
	}
	// A sender problem, even hard, never suppresses the recipient.
	e = ev("acme", "news", "fine@example.com", 2)
	e.Hard, e.Reason, e.Status = true, "blocked", "5.7.1"
	res, err := r.Bounce(ctx, e, true)
	if err != nil || res.Changed {
		t.Fatalf("sender problem: %+v %v", res, err)
	}
	if _, ok := suppressed(t, st, "acme", "", "fine@example.com"); ok {
		t.Error("a sender problem suppressed the recipient")
	}
	var types []store.EventType
	st.Events(ctx, store.EventFilter{Address: "fine@example.com"}, func(e store.Event) error { types = append(types, e.Type); return nil })
	if len(types) != 1 || types[0] != store.SenderProblem {
		t.Errorf("sender problem recorded as %v", types)
	}
	// Soft: per scope thresholds (acme: global 2 over 14 days; globex: 3).
	day := 24 * time.Hour
	for i, at := range []time.Duration{0, 14 * day} {
		e := ev("acme", "news", "full@example.com", uint64(10+i))
		e.At, e.Reason, e.Status = t0.Add(at), "mailboxfull", "4.2.2"
		if _, err := r.Bounce(ctx, e, false); err != nil {
			t.Fatal(err)
		}
	}
	if s, ok := suppressed(t, st, "acme", "", "full@example.com"); !ok || s.Reason != store.SoftBounce || s.Expires.Sub(s.Created) != 30*day {
		t.Errorf("acme soft: %+v %v", s, ok)
	}
	for i, at := range []time.Duration{0, 14 * day} {
		e := ev("globex", "", "full@example.com", uint64(20+i))
		e.At, e.Reason = t0.Add(at), "mailboxfull"
		r.Bounce(ctx, e, false)
	}
	if _, ok := suppressed(t, st, "globex", "", "full@example.com"); ok {
		t.Error("globex needs 3 soft bounces but 2 suppressed")
	}
	// A delivery resets the streak.
	d := ev("globex", "", "full@example.com", 30)
	if res, err := r.Delivered(ctx, d); err != nil || !res.Changed {
		t.Errorf("delivered: %+v %v", res, err)
	}
	e = ev("globex", "", "full@example.com", 31)
	e.At = t0.Add(30 * day)
	if res, _ := r.Bounce(ctx, e, false); res.Streak.Sends != 1 {
		t.Errorf("streak after delivery: %+v", res.Streak)
	}
}

func TestComplaint(t *testing.T) {
	r, st := setup(t, "")
	ctx := context.Background()
	c := ev("acme", "news", "angry@example.com", 1)
	c.FeedbackType = "abuse"
	r.Complaint(ctx, c)
	if s, ok := suppressed(t, st, "acme", "receipts", "angry@example.com"); !ok || s.Reason != store.Complained || s.Stream != "" {
		t.Errorf("abuse: not suppressed for the whole scope: %+v %v", s, ok)
	}
	if _, ok := suppressed(t, st, "globex", "", "angry@example.com"); ok {
		t.Error("a complaint crossed scopes")
	}
	// Transactional streams are exempt.
	c = ev("acme", "receipts", "buyer@example.com", 2)
	c.FeedbackType = "abuse"
	r.Complaint(ctx, c)
	if _, ok := suppressed(t, st, "acme", "", "buyer@example.com"); ok {
		t.Error("a complaint about a transactional stream suppressed")
	}
	// opt-out is an unsubscribe; not-spam and auth-failure change nothing.
	c = ev("acme", "news", "optout@example.com", 3)
	c.FeedbackType = "opt-out"
	r.Complaint(ctx, c)
	if s, ok := suppressed(t, st, "acme", "", "optout@example.com"); !ok || s.Reason != store.Unsubscribe {
		t.Errorf("opt-out: %+v %v", s, ok)
	}
	for _, ft := range []string{"not-spam", "auth-failure"} {
		c = ev("acme", "news", ft+"@example.com", 4)
		c.FeedbackType = ft
		if res, err := r.Complaint(ctx, c); err != nil || res.Changed {
			t.Errorf("%s: %+v %v", ft, res, err)
		}
	}
}

func TestUnsubscribeCoverage(t *testing.T) {
	r, st := setup(t, "")
	ctx := context.Background()
	r.Unsubscribe(ctx, ev("acme", "news", "a@example.com", 1))
	if _, ok := suppressed(t, st, "acme", "receipts", "a@example.com"); !ok {
		t.Error("acme (scope coverage): unsubscribing from news did not stop receipts")
	}
	r.Unsubscribe(ctx, ev("globex", "news", "a@example.com", 2))
	if _, ok := suppressed(t, st, "globex", "news", "a@example.com"); !ok {
		t.Error("globex (stream coverage): news not stopped")
	}
	if _, ok := suppressed(t, st, "globex", "offers", "a@example.com"); ok {
		t.Error("globex (stream coverage): offers stopped too")
	}
	// The same request twice (its key) changes nothing the second time.
	e := ev("acme", "news", "b@example.com", 3)
	e.Key = "mail:abc"
	if _, err := r.Unsubscribe(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Unsubscribe(ctx, e); err == nil {
		t.Error("a repeated request was recorded twice")
	}
}
