package pgstore

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/pgtest"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// dump reads everything a store can tell through store.Store.
type dump struct {
	Names        map[uint32]string
	Sends        []store.Send
	Events       []store.Event
	Suppressions []store.Suppression
	Throttles    []store.Throttle
	Days         []store.DayCount
	Totals       []store.DayCount
	Pauses       []store.Pause
	Warmup       []store.WarmupDay
}

func read(t *testing.T, s store.Store, ids []uint32, sends []uint64, at time.Time) dump {
	t.Helper()
	ctx := context.Background()
	var d dump
	d.Names = map[uint32]string{}
	for _, id := range ids {
		n, err := s.Name(ctx, store.ScopeName, id)
		if err != nil {
			t.Fatalf("name %d: %v", id, err)
		}
		d.Names[id] = n
	}
	for _, id := range sends {
		sd, err := s.Send(ctx, id)
		if err != nil {
			t.Fatalf("send %d: %v", id, err)
		}
		d.Sends = append(d.Sends, sd)
	}
	if err := s.Events(ctx, store.EventFilter{}, func(e store.Event) error { d.Events = append(d.Events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Suppressions(ctx, store.Filter{Lapsed: true}, func(e store.Suppression) error { d.Suppressions = append(d.Suppressions, e); return nil }); err != nil {
		t.Fatal(err)
	}
	var err error
	if d.Throttles, err = s.Throttles(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Days, err = s.SendDaysByRelay(ctx, at.Add(-30*24*time.Hour), at.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d.Totals, err = s.SendTotals(ctx, at.Add(-30*24*time.Hour), at.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d.Pauses, err = s.Pauses(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Warmup, err = s.WarmupDays(ctx, "new-ip", at.Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCopyFromSQLite: a single-host store copied to PostgreSQL reads the
// same through the store interface (ids, keys, evidence, streaks,
// throttle state, scope pauses and warm-up counts included), and goes on
// from where it was.
func TestCopyFromSQLite(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	path := filepath.Join(t.TempDir(), "senderkit.db")
	src, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Relay: "mx-old"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, n := range []string{"acme", "globex", "initech"} {
		id, err := src.ID(ctx, store.ScopeName, n)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sends := []uint64{1 << 62, 12345, 777}
	for i, id := range sends {
		s := store.Send{ID: id, Scope: "acme", Stream: "news", Recipient: fmt.Sprintf("r%d@example.com", i), QueueID: fmt.Sprint("Q", i), At: at, MessageKey: "fp"}
		if err := src.AddSend(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(ev store.Event, ch store.Change) {
		t.Helper()
		if _, err := src.Record(ctx, ev, ch); err != nil {
			t.Fatal(err)
		}
	}
	rec(store.Event{At: at, Type: store.Delivered, Scope: "acme", Stream: "news", Address: "r0@example.com", SendID: 1 << 62, Source: "log", Key: store.DeliveryKey(1<<62, "r0@example.com")}, store.Change{})
	rec(store.Event{At: at.Add(time.Hour), Type: store.Bounced, Scope: "acme", Stream: "news", Address: "r1@example.com", SendID: 12345, Reason: "userunknown", Hard: true,
		Status: "5.1.1", ReplyCode: "550", Diagnostic: "no such user", ReportingMTA: "mx.example.com", Source: "bouncepipe", Key: "bp:abc:0"},
		store.Change{Op: store.Suppress, Scope: "acme", Address: "r1@example.com", Reason: store.HardBounce})
	rec(store.Event{At: at, Type: store.Complaint, Scope: "acme", Stream: "news", Address: "r2@example.com", SendID: 777, FeedbackType: "abuse", Source: "fbl:yahoo"},
		store.Change{Op: store.Suppress, Scope: "acme", Address: "r2@example.com", Reason: store.Complained})
	rec(store.Event{At: at, Type: store.Unsubscribed, Scope: "globex", Stream: "offers", Address: "u@example.com", Source: "http"},
		store.Change{Op: store.Suppress, Scope: "globex", Stream: "offers", Address: "u@example.com", Reason: store.Unsubscribe})
	rec(store.Event{At: at, Type: store.Suppressed, Scope: store.AllScopes, Address: "*@spamtrap.example", Source: "cli:root"},
		store.Change{Op: store.Suppress, Scope: store.AllScopes, Address: "*@spamtrap.example", Reason: store.Manual})
	soft := store.Change{Op: store.Suppress, Scope: "acme", Address: "s@example.com", Reason: store.SoftBounce, TTL: day, MaxTTL: 10 * day}
	rec(store.Event{At: at, Type: store.Bounced, Scope: "acme", Address: "s@example.com", Source: "bouncepipe"}, soft)
	rec(store.Event{At: at.Add(2 * day), Type: store.Bounced, Scope: "acme", Address: "s@example.com", Source: "bouncepipe"}, soft) // relisted: times 2
	streak := store.Change{Op: store.CountSoftBounce, Scope: "initech", Address: "full@example.com", TTL: day, MinBounces: 2, MinSpan: 14 * day}
	rec(store.Event{At: at, Type: store.Bounced, Scope: "initech", Address: "full@example.com", SendID: 4242, Reason: "mailboxfull", Source: "bouncepipe"}, streak)
	if _, err := src.Import(ctx, []store.Suppression{{Scope: "globex", Address: "old@example.com", Reason: store.Unsubscribe, Created: at.Add(-day),
		Cause: &store.Event{Source: "esp.csv", Diagnostic: "from the ESP"}}}, at); err != nil {
		t.Fatal(err)
	}
	if err := src.SetThrottles(ctx, []store.Throttle{{Destination: "google.com", State: store.ThrottleLimited, Rate: 3.5, Since: at, Tempfails: 4, Successes: 9,
		Reason: "rate-limited", Reply: "421 4.7.28 slow down", Updated: at}}); err != nil {
		t.Fatal(err)
	}
	// Scopes on hold: acme (paused twice: the first cause stays) and
	// globex; initech was paused and resumed.
	pause := func(scope, reason string, at time.Time, op store.Op) {
		t.Helper()
		typ := store.Paused
		if op == store.ResumeScope {
			typ = store.Resumed
		}
		rec(store.Event{At: at, Type: typ, Scope: scope, Reason: reason, Diagnostic: "complaints 0.5% of 400 copies", Source: "vetting"},
			store.Change{Op: op, Scope: scope})
	}
	pause("acme", "complaint-rate", at, store.PauseScope)
	pause("acme", "hard-bounce-rate", at.Add(time.Hour), store.PauseScope)
	pause("globex", "manual", at.Add(2*time.Hour), store.PauseScope)
	pause("initech", "manual", at.Add(3*time.Hour), store.PauseScope)
	pause("initech", "", at.Add(4*time.Hour), store.ResumeScope)
	// Warm-up counts, one day written before the relay was named.
	d1 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.FixedZone("CET", 3600)).UTC()
	if err := src.AddWarmup(ctx, []store.WarmupDay{
		{Warmup: "new-ip", Destination: "google.com", Day: d1, Sent: 100, Held: true},
		{Warmup: "new-ip", Destination: "yahoo.com", Day: d1, Sent: 20},
		{Warmup: "new-ip", Destination: "google.com", Day: d1.Add(day), Sent: 5},
	}); err != nil {
		t.Fatal(err)
	}
	unnamed, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unnamed.AddWarmup(ctx, []store.WarmupDay{{Warmup: "new-ip", Destination: "google.com", Day: d1.Add(-day), Sent: 4}}); err != nil {
		t.Fatal(err)
	}
	unnamed.Close()
	want := read(t, src, ids, sends, at)
	src.Close()
	if len(want.Pauses) != 2 || len(want.Warmup) != 4 || len(want.Totals) != 1 {
		t.Fatalf("the SQLite store holds %d pauses, %d warm-up days, %d send totals; want 2, 4 and 1", len(want.Pauses), len(want.Warmup), len(want.Totals))
	}

	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	d := open(t, dsn, Options{Relay: "mx1"})
	defer d.Close()
	n, err := CopyFromSQLite(ctx, d, path, "mx-old")
	if err != nil {
		t.Fatal(err)
	}
	if n.Names != 6 || n.Sends != 3 || n.Events != 14 || n.Suppressions != 6 || n.Streaks != 1 || n.Throttles != 1 ||
		n.Pauses != 2 || n.WarmupDays != 4 {
		t.Errorf("copied %v", n)
	}
	got := read(t, d, ids, sends, at)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PostgreSQL after the copy:\n%+v\nSQLite:\n%+v", got, want)
	}

	// Warm-up rows written before the relay was named are the relay's.
	var relays []string
	rows, err := d.pool.Query(ctx, "SELECT DISTINCT relay FROM warmup_days")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		relays = append(relays, r)
	}
	rows.Close()
	if fmt.Sprint(relays) != "[mx-old]" {
		t.Errorf("warm-up rows copied with relays %v, want [mx-old]", relays)
	}

	// The copy goes on where the single host stopped: the streak counts
	// on, new names and events take new ids; the pauses and the warm-up
	// counts go on too.
	r, err := d.Record(ctx, store.Event{At: at.Add(15 * day), Type: store.Bounced, Scope: "initech", Address: "full@example.com", SendID: 4343, Source: "bouncepipe"}, streak)
	if err != nil {
		t.Fatal(err)
	}
	if r.Streak.Sends != 2 || !r.Changed || r.EventID <= want.Events[len(want.Events)-1].ID {
		t.Errorf("after the copy: %+v", r)
	}
	if r, err := d.Record(ctx, store.Event{At: at.Add(15 * day), Type: store.Resumed, Scope: "globex", Source: "cli"},
		store.Change{Op: store.ResumeScope, Scope: "globex"}); err != nil || !r.Changed {
		t.Errorf("resuming a copied pause: %+v %v", r, err)
	}
	if ps, err := d.Pauses(ctx); err != nil || len(ps) != 1 || ps[0].Scope != "acme" || ps[0].Cause.Reason != "complaint-rate" {
		t.Errorf("pauses after resuming globex: %+v %v", ps, err)
	}
	if err := d.AddWarmup(ctx, []store.WarmupDay{{Warmup: "new-ip", Destination: "google.com", Day: d1, Sent: 1}}); err != nil {
		t.Fatal(err)
	}
	if ws, err := d.WarmupDays(ctx, "new-ip", d1); err != nil || len(ws) != 3 || ws[0].Sent != 101 || !ws[0].Held {
		t.Errorf("warm-up after the copy, mx1 adding to mx-old's day: %+v %v", ws, err)
	}
	if id, err := d.ID(ctx, store.ScopeName, "umbrella"); err != nil || id <= ids[len(ids)-1] {
		t.Errorf("a new name got id %d (%v), not after the copied ones", id, err)
	}
	if _, err := d.Record(ctx, store.Event{At: at, Type: store.Bounced, Scope: "acme", Address: "r1@example.com", Source: "bouncepipe", Key: "bp:abc:0"}, store.Change{}); err == nil {
		t.Error("a copied idempotency key was accepted again")
	}
	if _, err := CopyFromSQLite(ctx, d, path, "mx-old"); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("a second copy into the same database: %v", err)
	}
}
