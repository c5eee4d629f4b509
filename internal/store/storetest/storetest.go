// Package storetest is the test suite every store.Store backend must
// pass. A backend's test calls Run with a function that opens a fresh,
// empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// Opener returns a fresh, empty store; Run closes it.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		f    func(*testing.T, store.Store)
	}{
		{"Names", testNames},
		{"Sends", testSends},
		{"SendsDeduplicated", testSendsDedupe},
		{"EventKeyIsIdempotent", testEventKey},
		{"SuppressAndLookup", testSuppressLookup},
		{"ScopesAreIsolated", testScopes},
		{"LookupPrefersTheClosestEntry", testLookupPreference},
		{"Streams", testStreams},
		{"PermanentIsNeverWeakened", testPermanent},
		{"LapseAndRelist", testRelist},
		{"UnsuppressKeepsHistory", testUnsuppress},
		{"SoftBounceStreak", testSoftBounceStreak},
		{"DeliveryAgain", testDeliveryAgain},
		{"DeliveredThenBounced", testDeliveredThenBounced},
		{"SendDays", testSendDays},
		{"CountEvents", testCountEvents},
		{"Import", testImport},
		{"Invalid", testInvalid},
		{"ListedSince", testListedSince},
		{"Throttles", testThrottles},
		{"Pauses", testPauses},
		{"SendTotals", testSendTotals},
		{"Warmup", testWarmup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.f(t, s)
		})
	}
}

var (
	ctx = context.Background()
	t0  = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
)

// get turns a (value, error) pair into a function that fails the test on
// error: get(s.ID(...))(t).
func get[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testNames(t *testing.T, s store.Store) {
	a := get(s.ID(ctx, store.ScopeName, "acme"))(t)
	b := get(s.ID(ctx, store.ScopeName, "globex"))(t)
	if a == b || a == 0 || b == 0 {
		t.Fatalf("ids acme=%d globex=%d: want distinct and non-zero", a, b)
	}
	if again := get(s.ID(ctx, store.ScopeName, "acme"))(t); again != a {
		t.Errorf("acme got id %d, then %d", a, again)
	}
	st := get(s.ID(ctx, store.StreamName, "acme"))(t)
	if st == a {
		t.Errorf("stream and scope named acme share id %d", a)
	}
	if n := get(s.Name(ctx, store.ScopeName, b))(t); n != "globex" {
		t.Errorf("Name(%d) = %q", b, n)
	}
	if _, err := s.Name(ctx, store.ScopeName, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Name of unknown id: %v", err)
	}
	if _, err := s.ID(ctx, store.ScopeName, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ID(\"\"): %v", err)
	}
}

func testSends(t *testing.T, s store.Store) {
	in := store.Send{ID: 1<<62 + 5, Scope: "acme", Stream: "news", Recipient: "bob@example.com", QueueID: "4XyZ1", At: t0}
	if err := s.AddSend(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSend(ctx, in); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("second AddSend with the same id: %v, want ErrDuplicate", err)
	}
	in2 := in
	in2.ID, in2.Recipient = 7, "carol@example.com"
	noErr(t, s.AddSend(ctx, in2))
	got := get(s.Send(ctx, in.ID))(t)
	if got != in {
		t.Errorf("Send = %+v, want %+v", got, in)
	}
	qs := get(s.SendsByQueueID(ctx, "4XyZ1"))(t)
	if len(qs) != 2 || qs[0].ID != 7 || qs[1].ID != in.ID {
		t.Errorf("SendsByQueueID = %+v", qs)
	}
	if _, err := s.Send(ctx, 12345); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Send(unknown): %v", err)
	}
}

// A retried submission finds the copies already recorded: AddSends
// skips a send whose message key and recipient were recorded within the
// window, records the rest in the same call, and SendsByMessageKey lists
// them.
func testSendsDedupe(t *testing.T, s store.Store) {
	const key = "fp-1"
	first := []store.Send{
		{ID: 101, Scope: "acme", Stream: "news", Recipient: "a@example.com", QueueID: "Q1", At: t0, MessageKey: key},
		{ID: 102, Scope: "acme", Stream: "news", Recipient: "b@example.com", QueueID: "Q2", At: t0, MessageKey: key},
	}
	added := get(s.AddSends(ctx, first, time.Hour))(t)
	if len(added) != 2 || !added[0] || !added[1] {
		t.Fatalf("first AddSends: added %v, want both", added)
	}
	retry := []store.Send{
		{ID: 201, Scope: "acme", Stream: "news", Recipient: "b@example.com", QueueID: "Q3", At: t0.Add(30 * time.Minute), MessageKey: key},
		{ID: 202, Scope: "acme", Stream: "news", Recipient: "c@example.com", QueueID: "Q4", At: t0.Add(30 * time.Minute), MessageKey: key},
		{ID: 203, Scope: "acme", Stream: "news", Recipient: "b@example.com", QueueID: "Q5", At: t0.Add(30 * time.Minute), MessageKey: "other"},
	}
	added = get(s.AddSends(ctx, retry, time.Hour))(t)
	if len(added) != 3 || added[0] || !added[1] || !added[2] {
		t.Errorf("retried AddSends: added %v, want [false true true]", added)
	}
	if _, err := s.Send(ctx, 201); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the skipped send was recorded: %v", err)
	}
	got := get(s.SendsByMessageKey(ctx, key, t0))(t)
	var rcpts []string
	for _, g := range got {
		rcpts = append(rcpts, g.Recipient)
		if g.MessageKey != key {
			t.Errorf("send %d has key %q", g.ID, g.MessageKey)
		}
	}
	if fmt.Sprint(rcpts) != "[a@example.com b@example.com c@example.com]" {
		t.Errorf("SendsByMessageKey = %v", rcpts)
	}
	if n := len(get(s.SendsByMessageKey(ctx, key, t0.Add(time.Minute)))(t)); n != 1 {
		t.Errorf("SendsByMessageKey since t0+1m: %d sends, want 1", n)
	}
	// Outside the window, the same copy is a new send.
	late := store.Send{ID: 301, Scope: "acme", Stream: "news", Recipient: "a@example.com", QueueID: "Q6", At: t0.Add(2 * time.Hour), MessageKey: key}
	if added := get(s.AddSends(ctx, []store.Send{late}, time.Hour))(t); !added[0] {
		t.Error("a send outside the window was skipped")
	}
	// Without a window nothing is skipped.
	again := store.Send{ID: 302, Scope: "acme", Stream: "news", Recipient: "a@example.com", QueueID: "Q7", At: t0.Add(2 * time.Hour), MessageKey: key}
	if added := get(s.AddSends(ctx, []store.Send{again}, 0))(t); !added[0] {
		t.Error("a send was skipped with window 0")
	}
	// A taken id fails the whole call, which records nothing.
	_, err := s.AddSends(ctx, []store.Send{
		{ID: 401, Scope: "acme", Stream: "news", Recipient: "d@example.com", At: t0},
		{ID: 101, Scope: "acme", Stream: "news", Recipient: "e@example.com", At: t0},
	}, time.Hour)
	if !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("AddSends with a taken id: %v, want ErrDuplicate", err)
	}
	if _, err := s.Send(ctx, 401); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed AddSends recorded part of its sends: %v", err)
	}
}

func bounce(addr, key string, at time.Time) store.Event {
	return store.Event{At: at, Type: store.Bounced, Scope: "acme", Address: addr, Reason: "userunknown",
		Hard: true, Status: "5.1.1", ReplyCode: "550", Diagnostic: "user unknown", Source: "bouncepipe", Key: key}
}

func hardChange(addr string) store.Change {
	return store.Change{Op: store.Suppress, Scope: "acme", Address: addr, Reason: store.HardBounce}
}

func testEventKey(t *testing.T, s store.Store) {
	r1 := get(s.Record(ctx, bounce("bob@example.com", "msg-1/bob", t0), hardChange("bob@example.com")))(t)
	if !r1.Changed || r1.EventID == 0 {
		t.Fatalf("first record: %+v", r1)
	}
	_, err := s.Record(ctx, bounce("bob@example.com", "msg-1/bob", t0.Add(time.Hour)), hardChange("bob@example.com"))
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("same key again: %v, want ErrDuplicate", err)
	}
	n := countEvents(t, s, store.EventFilter{Address: "bob@example.com"})
	if n != 1 {
		t.Errorf("%d events after a duplicate, want 1", n)
	}
	// Events without a key are never deduplicated.
	for range 2 {
		get(s.Record(ctx, bounce("bob@example.com", "", t0), store.Change{}))(t)
	}
	if n := countEvents(t, s, store.EventFilter{Address: "bob@example.com"}); n != 3 {
		t.Errorf("%d events, want 3", n)
	}
}

func countEvents(t *testing.T, s store.Store, f store.EventFilter) int {
	t.Helper()
	n := 0
	noErr(t, s.Events(ctx, f, func(store.Event) error { n++; return nil }))
	return n
}

func lookup(t *testing.T, s store.Store, scope, stream, addr string, at time.Time) (store.Suppression, bool) {
	t.Helper()
	e, ok, err := s.Lookup(ctx, store.Query{Scope: scope, Stream: stream, Address: addr, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return e, ok
}

func testSuppressLookup(t *testing.T, s store.Store) {
	if _, ok := lookup(t, s, "acme", "", "bob@example.com", t0); ok {
		t.Fatal("empty store: bob suppressed")
	}
	ev := bounce("bob@example.com", "k1", t0)
	r := get(s.Record(ctx, ev, hardChange("bob@example.com")))(t)
	e, ok := lookup(t, s, "acme", "news", "bob@example.com", t0.Add(time.Minute))
	if !ok {
		t.Fatal("bob not suppressed after a hard bounce")
	}
	if e.Reason != store.HardBounce || !e.Created.Equal(t0) || !e.Expires.IsZero() || e.EventID != r.EventID || e.Scope != "acme" {
		t.Errorf("entry = %+v", e)
	}
	if _, ok := lookup(t, s, "acme", "", "carol@example.com", t0); ok {
		t.Error("carol suppressed")
	}
	// The evidence is kept and listed with the entry.
	var got []store.Suppression
	noErr(t, s.Suppressions(ctx, store.Filter{At: t0}, func(e store.Suppression) error { got = append(got, e); return nil }))
	if len(got) != 1 || got[0].Cause == nil {
		t.Fatalf("Suppressions = %+v", got)
	}
	c := *got[0].Cause
	c.ID = 0
	if c != ev {
		t.Errorf("cause = %+v\nwant    %+v", c, ev)
	}
	// A domain-wide entry covers every address of the domain.
	get(s.Record(ctx, store.Event{At: t0, Type: store.Suppressed, Scope: "acme", Address: "*@spamtrap.example", Source: "cli"},
		store.Change{Op: store.Suppress, Scope: "acme", Address: "*@spamtrap.example", Reason: store.Manual}))(t)
	if e, ok := lookup(t, s, "acme", "", "anyone@spamtrap.example", t0); !ok || e.Address != "*@spamtrap.example" {
		t.Errorf("domain entry: %+v, %v", e, ok)
	}
	// Filters.
	n := 0
	noErr(t, s.Suppressions(ctx, store.Filter{Reason: store.Manual, At: t0}, func(store.Suppression) error { n++; return nil }))
	if n != 1 {
		t.Errorf("filter by reason: %d entries", n)
	}
	n = 0
	noErr(t, s.Suppressions(ctx, store.Filter{Since: t0.Add(time.Hour), At: t0}, func(store.Suppression) error { n++; return nil }))
	if n != 0 {
		t.Errorf("filter by since: %d entries", n)
	}
	// Events for an address include the domain-wide ones.
	if n := countEvents(t, s, store.EventFilter{Address: "x@spamtrap.example"}); n != 1 {
		t.Errorf("events for x@spamtrap.example: %d", n)
	}
}

// testLookupPreference lists one address four ways and a domain two ways,
// and checks which entry each lookup reports: the exact address before
// its domain, the scope's own entry before the all-scopes one, the
// stream's own entry before the whole scope's; a lapsed entry is not
// reported, and a closer one that lapsed leaves the next one in force.
func testLookupPreference(t *testing.T, s store.Store) {
	list := func(scope, stream, address string, reason store.Reason, ttl time.Duration) {
		t.Helper()
		get(s.Record(ctx, store.Event{At: t0, Type: store.Suppressed, Scope: scope, Stream: stream, Address: address, Source: "cli"},
			store.Change{Op: store.Suppress, Scope: scope, Stream: stream, Address: address, Reason: reason, TTL: ttl}))(t)
	}
	list(store.AllScopes, "", "*@example.org", store.Manual, 0)
	list("acme", "", "*@example.org", store.Manual, 0)
	list(store.AllScopes, "", "ann@example.org", store.Manual, 0)
	list("acme", "", "ann@example.org", store.HardBounce, 0)
	list("acme", "news", "ann@example.org", store.Unsubscribe, 0)
	list("acme", "offers", "ann@example.org", store.Unsubscribe, time.Hour)
	get(s.ID(ctx, store.ScopeName, "globex"))(t)
	get(s.ID(ctx, store.StreamName, "receipts"))(t)
	for _, c := range []struct {
		scope, stream, address string
		at                     time.Time
		wantScope, wantStream  string
		wantAddress            string
	}{
		{"acme", "news", "ann@example.org", t0, "acme", "news", "ann@example.org"},
		{"acme", "receipts", "ann@example.org", t0, "acme", "", "ann@example.org"},
		{"acme", "", "ann@example.org", t0, "acme", "", "ann@example.org"},
		{"acme", "offers", "ann@example.org", t0, "acme", "offers", "ann@example.org"},
		{"acme", "offers", "ann@example.org", t0.Add(2 * time.Hour), "acme", "", "ann@example.org"},
		{"globex", "news", "ann@example.org", t0, store.AllScopes, "", "ann@example.org"},
		{"acme", "news", "bob@example.org", t0, "acme", "", "*@example.org"},
		{"globex", "", "bob@example.org", t0, store.AllScopes, "", "*@example.org"},
	} {
		e, ok := lookup(t, s, c.scope, c.stream, c.address, c.at)
		if !ok || e.Scope != c.wantScope || e.Stream != c.wantStream || e.Address != c.wantAddress {
			t.Errorf("Lookup(%s, %q, %s, %s) = %s/%q/%s (found %v), want %s/%q/%s", c.scope, c.stream, c.address, c.at.Format(time.TimeOnly),
				e.Scope, e.Stream, e.Address, ok, c.wantScope, c.wantStream, c.wantAddress)
		}
	}
	if e, ok := lookup(t, s, "acme", "news", "cy@example.com", t0); ok {
		t.Errorf("cy@example.com: found %+v", e)
	}
}

func testScopes(t *testing.T, s store.Store) {
	get(s.Record(ctx, bounce("bob@example.com", "", t0), hardChange("bob@example.com")))(t)
	get(s.ID(ctx, store.ScopeName, "globex"))(t)
	if _, ok := lookup(t, s, "globex", "", "bob@example.com", t0); ok {
		t.Error("acme's suppression applies to globex")
	}
	if _, ok := lookup(t, s, "never-seen", "", "bob@example.com", t0); ok {
		t.Error("acme's suppression applies to an unknown scope")
	}
	// An entry for every scope.
	get(s.Record(ctx, store.Event{At: t0, Type: store.Suppressed, Scope: store.AllScopes, Address: "legal@example.com", Source: "cli"},
		store.Change{Op: store.Suppress, Scope: store.AllScopes, Address: "legal@example.com", Reason: store.Manual}))(t)
	for _, sc := range []string{"acme", "globex", "never-seen"} {
		if e, ok := lookup(t, s, sc, "", "legal@example.com", t0); !ok || e.Scope != store.AllScopes {
			t.Errorf("scope %s: all-scopes entry not found: %+v", sc, e)
		}
	}
	// The scope's own entry wins over the all-scopes one when both exist.
	get(s.Record(ctx, bounce("legal@example.com", "", t0), hardChange("legal@example.com")))(t)
	if e, _ := lookup(t, s, "acme", "", "legal@example.com", t0); e.Scope != "acme" {
		t.Errorf("preferred entry has scope %q, want acme", e.Scope)
	}
}

func testStreams(t *testing.T, s store.Store) {
	unsub := store.Event{At: t0, Type: store.Unsubscribed, Scope: "acme", Stream: "news", Address: "bob@example.com", Source: "http"}
	get(s.Record(ctx, unsub, store.Change{Op: store.Suppress, Scope: "acme", Stream: "news", Address: "bob@example.com", Reason: store.Unsubscribe}))(t)
	if e, ok := lookup(t, s, "acme", "news", "bob@example.com", t0); !ok || e.Stream != "news" {
		t.Errorf("stream entry not found for its stream: %+v %v", e, ok)
	}
	if _, ok := lookup(t, s, "acme", "offers", "bob@example.com", t0); ok {
		t.Error("a news unsubscribe stops offers")
	}
	if _, ok := lookup(t, s, "acme", "", "bob@example.com", t0); ok {
		t.Error("with the stream unknown, a stream-only entry matched")
	}
	// A whole-scope entry covers every stream.
	get(s.Record(ctx, bounce("carol@example.com", "", t0), hardChange("carol@example.com")))(t)
	for _, st := range []string{"", "news", "offers", "never-seen"} {
		if _, ok := lookup(t, s, "acme", st, "carol@example.com", t0); !ok {
			t.Errorf("stream %q: whole-scope entry not found", st)
		}
	}
}

func testPermanent(t *testing.T, s store.Store) {
	a := "bob@example.com"
	first := get(s.Record(ctx, bounce(a, "", t0), hardChange(a)))(t)
	soft := store.Change{Op: store.Suppress, Scope: "acme", Address: a, Reason: store.SoftBounce, TTL: 24 * time.Hour}
	r := get(s.Record(ctx, bounce(a, "", t0.Add(time.Hour)), soft))(t)
	if r.Changed {
		t.Errorf("a soft suppression replaced a hard one: %+v", r)
	}
	e, _ := lookup(t, s, "acme", "", a, t0.Add(48*time.Hour))
	if e.Reason != store.HardBounce || e.EventID != first.EventID || !e.Expires.IsZero() {
		t.Errorf("entry after soft on hard: %+v", e)
	}
	// A lapsing entry is made permanent by a hard one.
	c := "carol@example.com"
	soft.Address = c
	get(s.Record(ctx, bounce(c, "", t0), soft))(t)
	r = get(s.Record(ctx, bounce(c, "", t0.Add(time.Hour)), hardChange(c)))(t)
	if !r.Changed || r.Entry.Reason != store.HardBounce || !r.Entry.Expires.IsZero() {
		t.Errorf("hard on soft: %+v", r)
	}
}

func testRelist(t *testing.T, s store.Store) {
	a := "dave@example.com"
	ch := store.Change{Op: store.Suppress, Scope: "acme", Address: a, Reason: store.SoftBounce, TTL: 10 * 24 * time.Hour, MaxTTL: 30 * 24 * time.Hour}
	at := t0
	wantTTL := []time.Duration{10, 20, 30, 30} // days: doubled, capped
	for i, days := range wantTTL {
		r := get(s.Record(ctx, bounce(a, fmt.Sprint("relist-", i), at), ch))(t)
		if !r.Changed || r.Entry.Times != i+1 {
			t.Fatalf("listing %d: %+v", i+1, r)
		}
		if got := r.Entry.Expires.Sub(at); got != days*24*time.Hour {
			t.Errorf("listing %d lasts %v, want %d days", i+1, got, days)
		}
		if _, ok := lookup(t, s, "acme", "", a, r.Entry.Expires.Add(-time.Second)); !ok {
			t.Errorf("listing %d not in force just before it lapses", i+1)
		}
		if _, ok := lookup(t, s, "acme", "", a, r.Entry.Expires); ok {
			t.Errorf("listing %d still in force when it lapses", i+1)
		}
		// While in force, another soft suppression changes nothing.
		if r2 := get(s.Record(ctx, bounce(a, "", at.Add(time.Hour)), ch))(t); r2.Changed {
			t.Errorf("listing %d: soft on soft changed the entry", i+1)
		}
		at = r.Entry.Expires.Add(time.Hour)
	}
	// Lapsed entries are hidden from listings unless asked for.
	n := 0
	noErr(t, s.Suppressions(ctx, store.Filter{At: at.Add(1000 * time.Hour)}, func(store.Suppression) error { n++; return nil }))
	if n != 0 {
		t.Errorf("%d lapsed entries listed", n)
	}
	noErr(t, s.Suppressions(ctx, store.Filter{Lapsed: true}, func(store.Suppression) error { n++; return nil }))
	if n != 1 {
		t.Errorf("%d entries listed with Lapsed, want 1", n)
	}
}

// testDeliveryAgain: a delivery read again (its key taken) is a
// duplicate and ends no streak begun since; a delivery with no streak to
// end is recorded and changes nothing.
func testDeliveryAgain(t *testing.T, s store.Store) {
	a := "fay@example.com"
	soft := store.Change{Op: store.CountSoftBounce, Scope: "acme", Address: a, TTL: time.Hour, MinBounces: 5, MinSpan: time.Hour}
	delivery := store.Event{At: t0, Type: store.Delivered, Scope: "acme", Address: a, SendID: 1, Source: "log", Key: store.DeliveryKey(1, a)}
	reset := store.Change{Op: store.ResetStreak, Scope: "acme", Address: a}
	r := get(s.Record(ctx, delivery, reset))(t)
	if r.Changed || r.EventID == 0 {
		t.Errorf("delivery with no streak: %+v", r)
	}
	get(s.Record(ctx, store.Event{At: t0.Add(time.Minute), Type: store.Bounced, Scope: "acme", Address: a, SendID: 2, Reason: "mailboxfull", Source: "bouncepipe"}, soft))(t)
	if _, err := s.Record(ctx, delivery, reset); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("the same delivery again: %v, want ErrDuplicate", err)
	}
	r = get(s.Record(ctx, store.Event{At: t0.Add(2 * time.Minute), Type: store.Bounced, Scope: "acme", Address: a, SendID: 3, Reason: "mailboxfull", Source: "bouncepipe"}, soft))(t)
	if r.Streak.Sends != 2 {
		t.Errorf("streak after a duplicate delivery: %+v, want 2 sends: a delivery read again must not end it", r.Streak)
	}
	// A deferral changes nothing but is recorded, with its key.
	def := store.Event{At: t0.Add(3 * time.Minute), Type: store.Deferred, Scope: "acme", Address: a, SendID: 4, Source: "log", Key: "deferred/4"}
	if r := get(s.Record(ctx, def, store.Change{}))(t); r.Changed || r.EventID == 0 {
		t.Errorf("deferral: %+v", r)
	}
	if _, err := s.Record(ctx, def, store.Change{}); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("the same deferral again: %v, want ErrDuplicate", err)
	}
}

// testDeliveredThenBounced: a remote that accepts a copy and returns it
// later (a full mailbox it finds only at delivery) logs a delivery, then
// sends a soft bounce for the same send. That delivery must not end the
// streak: each week's copy "delivered" then bounced still adds up to a
// suppression. A delivery that stays one ends the streak.
func testDeliveredThenBounced(t *testing.T, s store.Store) {
	a := "gail@example.com"
	day := 24 * time.Hour
	soft := store.Change{Op: store.CountSoftBounce, Scope: "acme", Address: a, TTL: 30 * day, MinBounces: 2, MinSpan: 14 * day}
	delivered := func(send uint64, at time.Time) store.Result {
		ev := store.Event{At: at, Type: store.Delivered, Scope: "acme", Address: a, SendID: send, Source: "log", Key: store.DeliveryKey(send, a)}
		return get(s.Record(ctx, ev, store.Change{Op: store.ResetStreak, Scope: "acme", Address: a}))(t)
	}
	bounced := func(send uint64, at time.Time) store.Result {
		ev := store.Event{At: at, Type: store.Bounced, Scope: "acme", Address: a, SendID: send, Reason: "mailboxfull", Status: "4.2.2", Source: "bouncepipe"}
		return get(s.Record(ctx, ev, soft))(t)
	}
	for w := range 3 {
		send := uint64(10 + w)
		at := t0.Add(time.Duration(w) * 7 * day)
		delivered(send, at)
		r := bounced(send, at.Add(time.Hour))
		if r.Streak.Sends != w+1 {
			t.Fatalf("week %d: streak %+v, want %d sends: a delivery its own bounce followed ended it", w, r.Streak, w+1)
		}
		if w == 2 && (!r.Changed || r.Entry.Reason != store.SoftBounce) {
			t.Errorf("three weekly copies, each accepted then returned, over 14 days: not suppressed: %+v", r)
		}
	}
	// A delivery that is not followed by its bounce ends the streak.
	b := "hal@example.com"
	soft.Address = b
	ev := func(typ store.EventType, send uint64, at time.Time) store.Event {
		return store.Event{At: at, Type: typ, Scope: "acme", Address: b, SendID: send, Source: "log", Reason: "mailboxfull", Key: fmt.Sprintf("%s/%d", typ, send)}
	}
	get(s.Record(ctx, ev(store.Bounced, 20, t0), soft))(t)
	r := get(s.Record(ctx, ev(store.Delivered, 21, t0.Add(7*day)), store.Change{Op: store.ResetStreak, Scope: "acme", Address: b}))(t)
	if !r.Changed {
		t.Errorf("a delivery ended no streak: %+v", r)
	}
	r = get(s.Record(ctx, ev(store.Bounced, 22, t0.Add(14*day)), soft))(t)
	if r.Streak.Sends != 1 || r.Changed {
		t.Errorf("after a delivery that stayed one: %+v, want a new streak of 1", r)
	}
}

// testSoftBounceStreak: soft bounces suppress only after MinBounces
// distinct sends spanning MinSpan; a delivery resets the streak.
func testSoftBounceStreak(t *testing.T, s store.Store) {
	a := "erin@example.com"
	day := 24 * time.Hour
	soft := store.Change{Op: store.CountSoftBounce, Scope: "acme", Address: a, TTL: 30 * day, MaxTTL: 365 * day, MinBounces: 2, MinSpan: 14 * day}
	bounceOf := func(send uint64, at time.Time) store.Event {
		return store.Event{At: at, Type: store.Bounced, Scope: "acme", Address: a, SendID: send, Reason: "mailboxfull", Status: "4.2.2", Source: "bouncepipe"}
	}
	suppressed := func(at time.Time) bool {
		_, ok := lookup(t, s, "acme", "", a, at)
		return ok
	}
	// Two bounces of one send are one send.
	r := get(s.Record(ctx, bounceOf(1, t0), soft))(t)
	if r.Streak.Sends != 1 || r.Changed {
		t.Fatalf("first bounce: %+v", r)
	}
	r = get(s.Record(ctx, bounceOf(1, t0.Add(20*day)), soft))(t)
	if r.Streak.Sends != 1 || suppressed(t0.Add(20*day)) {
		t.Fatalf("the same send again counted: %+v", r)
	}
	// A second send within the span: two sends, but only 5 days apart.
	r = get(s.Record(ctx, bounceOf(2, t0.Add(5*day)), soft))(t)
	if r.Streak.Sends != 2 || r.Changed || suppressed(t0.Add(5*day)) {
		t.Fatalf("two sends in 5 days suppressed: %+v", r)
	}
	// A delivery resets the streak.
	r = get(s.Record(ctx, store.Event{At: t0.Add(6 * day), Type: store.Delivered, Scope: "acme", Address: a, SendID: 3, Source: "log"},
		store.Change{Op: store.ResetStreak, Scope: "acme", Address: a}))(t)
	if !r.Changed {
		t.Error("reset changed nothing")
	}
	r = get(s.Record(ctx, bounceOf(4, t0.Add(7*day)), soft))(t)
	if r.Streak.Sends != 1 {
		t.Fatalf("streak after the reset: %+v", r.Streak)
	}
	// Second send 14 days after the first of the new streak: suppressed.
	r = get(s.Record(ctx, bounceOf(5, t0.Add(21*day)), soft))(t)
	if !r.Changed || r.Streak.Sends != 2 || r.Entry.Reason != store.SoftBounce || r.Entry.Expires.Sub(t0.Add(21*day)) != 30*day {
		t.Fatalf("threshold met: %+v", r)
	}
	if !suppressed(t0.Add(21 * day)) {
		t.Error("not suppressed after two sends over 14 days")
	}
	// Another scope has its own streak.
	other := soft
	other.Scope = "globex"
	ev := bounceOf(6, t0.Add(22*day))
	ev.Scope = "globex"
	if r := get(s.Record(ctx, ev, other))(t); r.Streak.Sends != 1 || r.Changed {
		t.Errorf("globex streak: %+v", r)
	}
	// A soft bounce needs a send.
	if _, err := s.Record(ctx, bounceOf(0, t0), soft); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("soft bounce without a send: %v", err)
	}
}

// testSendDays: events count against the day their copy was sent, each
// copy once per column.
func testSendDays(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	noErr(t, s.AddSend(ctx, store.Send{ID: 1, Scope: "acme", Stream: "news", Recipient: "a@example.com", At: t0}))
	noErr(t, s.AddSend(ctx, store.Send{ID: 2, Scope: "acme", Stream: "news", Recipient: "b@example.com", At: t0.Add(day)}))
	rec := func(id uint64, typ store.EventType, at time.Time, ft string) {
		get(s.Record(ctx, store.Event{At: at, Type: typ, Scope: "acme", Stream: "news", SendID: id, FeedbackType: ft, Source: "test"}, store.Change{}))(t)
	}
	rec(1, store.Delivered, t0, "")
	rec(1, store.Delivered, t0, "") // twice: still one copy
	rec(1, store.Complaint, t0.Add(3*day), "abuse")
	rec(2, store.Complaint, t0.Add(day), "not-spam")
	rec(2, store.Bounced, t0.Add(day), "")
	got := get(s.SendDays(ctx, t0.Truncate(day), t0.Add(2*day)))(t)
	if len(got) != 2 {
		t.Fatalf("SendDays = %+v", got)
	}
	if d := got[0]; d.Sent != 1 || d.Delivered != 1 || d.Complaints != 1 || !d.Day.Equal(t0.Truncate(day)) {
		t.Errorf("day 1 = %+v", d)
	}
	if d := got[1]; d.Sent != 1 || d.Delivered != 0 || d.Complaints != 0 || d.SoftBounced != 1 {
		t.Errorf("day 2 = %+v", d)
	}
	if got := get(s.SendDays(ctx, t0.Add(-2*day), t0.Add(-day)))(t); len(got) != 0 {
		t.Errorf("empty period: %+v", got)
	}
}

func testCountEvents(t *testing.T, s store.Store) {
	counts, last, err := s.CountEvents(ctx, 0)
	if err != nil || len(counts) != 0 || last != 0 {
		t.Fatalf("empty store: %v %d %v", counts, last, err)
	}
	for range 3 {
		get(s.Record(ctx, bounce("a@example.com", "", t0), store.Change{}))(t)
	}
	get(s.Record(ctx, store.Event{At: t0, Type: store.Unattributed, Reason: "forged", Source: "bouncepipe"}, store.Change{}))(t)
	counts, last, err = s.CountEvents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.EventCount]bool{
		{Type: store.Bounced, Reason: "userunknown", Scope: "acme", Count: 3}: true,
		{Type: store.Unattributed, Reason: "forged", Scope: "", Count: 1}:     true,
	}
	if len(counts) != 2 || !want[counts[0]] || !want[counts[1]] {
		t.Errorf("counts = %+v", counts)
	}
	get(s.Record(ctx, bounce("b@example.com", "", t0), store.Change{}))(t)
	more, last2, _ := s.CountEvents(ctx, last)
	if len(more) != 1 || more[0].Count != 1 || last2 != last+1 {
		t.Errorf("since %d: %+v, last %d", last, more, last2)
	}
	if none, last3, _ := s.CountEvents(ctx, last2); len(none) != 0 || last3 != last2 {
		t.Errorf("nothing new: %+v %d", none, last3)
	}
}

func testUnsuppress(t *testing.T, s store.Store) {
	a := "bob@example.com"
	get(s.Record(ctx, bounce(a, "", t0), hardChange(a)))(t)
	rm := store.Event{At: t0.Add(time.Hour), Type: store.Unsuppressed, Scope: "acme", Address: a, Source: "cli", Diagnostic: "confirmed by phone"}
	r := get(s.Record(ctx, rm, store.Change{Op: store.Unsuppress, Scope: "acme", Address: a}))(t)
	if !r.Changed {
		t.Error("removal did not change anything")
	}
	if _, ok := lookup(t, s, "acme", "", a, t0.Add(2*time.Hour)); ok {
		t.Error("still suppressed after removal")
	}
	var types []store.EventType
	noErr(t, s.Events(ctx, store.EventFilter{Address: a}, func(e store.Event) error { types = append(types, e.Type); return nil }))
	if fmt.Sprint(types) != "[bounced unsuppressed]" {
		t.Errorf("history = %v", types)
	}
	// Removing what is not there is recorded but changes nothing.
	rm.Scope = "never-seen"
	r = get(s.Record(ctx, rm, store.Change{Op: store.Unsuppress, Scope: "never-seen", Address: a}))(t)
	if r.Changed {
		t.Error("removal in an unknown scope changed something")
	}
	// Filters on events.
	if n := countEvents(t, s, store.EventFilter{Types: []store.EventType{store.Unsuppressed}}); n != 2 {
		t.Errorf("%d unsuppressed events", n)
	}
	if n := countEvents(t, s, store.EventFilter{Scope: "acme", Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Hour)}); n != 1 {
		t.Errorf("%d acme events in the window", n)
	}
}

func testImport(t *testing.T, s store.Store) {
	entries := []store.Suppression{
		{Scope: "acme", Address: "a@example.com", Reason: store.Unsubscribe, Created: t0, Times: 1,
			Cause: &store.Event{Source: "esp-export.csv", Diagnostic: "unsubscribed via ESP"}},
		{Scope: "acme", Stream: "news", Address: "b@example.com", Reason: store.SoftBounce, Created: t0, Expires: t0.Add(72 * time.Hour), Times: 3},
		{Scope: store.AllScopes, Address: "*@example.org", Reason: store.Manual, Created: t0},
	}
	n := get(s.Import(ctx, entries, t0.Add(time.Hour)))(t)
	if n != 3 {
		t.Fatalf("imported %d, want 3", n)
	}
	if n := get(s.Import(ctx, entries[:1], t0.Add(2*time.Hour)))(t); n != 0 {
		t.Errorf("re-import added %d", n)
	}
	var got []store.Suppression
	noErr(t, s.Suppressions(ctx, store.Filter{At: t0}, func(e store.Suppression) error { got = append(got, e); return nil }))
	if len(got) != 3 {
		t.Fatalf("listed %d", len(got))
	}
	// Sorted by scope name, then address: "*" sorts before "acme".
	if got[0].Address != "*@example.org" || got[1].Address != "a@example.com" || got[2].Stream != "news" {
		t.Errorf("order: %+v", got)
	}
	if c := got[1].Cause; c == nil || c.Type != store.Imported || c.Source != "esp-export.csv" || c.Diagnostic != "unsubscribed via ESP" {
		t.Errorf("cause of imported entry: %+v", c)
	}
	if got[2].Times != 3 || !got[2].Expires.Equal(t0.Add(72*time.Hour)) {
		t.Errorf("imported soft entry: %+v", got[2])
	}
	if _, ok := lookup(t, s, "globex", "", "x@example.org", t0); !ok {
		t.Error("imported all-scopes domain entry does not apply")
	}
}

func testInvalid(t *testing.T, s store.Store) {
	bad := []struct {
		ev store.Event
		ch store.Change
	}{
		{store.Event{Type: store.Bounced}, store.Change{}}, // no time
		{store.Event{At: t0}, store.Change{}},              // no type
		{bounce("a@x", "", t0), store.Change{Op: store.Suppress, Scope: "acme", Address: "a@x", Reason: "gone"}},
		{bounce("a@x", "", t0), store.Change{Op: store.Suppress, Address: "a@x", Reason: store.Manual}},
		{bounce("a@x", "", t0), store.Change{Op: store.Suppress, Scope: "acme", Address: "nobody", Reason: store.Manual}},
		{bounce("a@x", "", t0), store.Change{Op: store.Suppress, Scope: "acme", Address: "a@x", Reason: store.Manual, TTL: -1}},
	}
	for _, b := range bad {
		if _, err := s.Record(ctx, b.ev, b.ch); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Record(%+v, %+v): %v, want ErrInvalid", b.ev, b.ch, err)
		}
	}
	if n := countEvents(t, s, store.EventFilter{}); n != 0 {
		t.Errorf("invalid records left %d events", n)
	}
	if err := s.AddSend(ctx, store.Send{ID: 0, Recipient: "a@x", At: t0, Scope: "s", Stream: "t"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AddSend id 0: %v", err)
	}
}

// testListedSince: the policy server's feed of new listings sees every
// entry once, then only what was listed or relisted after.
func testListedSince(t *testing.T, s store.Store) {
	list := func(after int64) (addrs []string, last int64) {
		t.Helper()
		noErr(t, s.ListedSince(ctx, after, func(a string, id int64) error {
			if id <= after || id < last {
				t.Errorf("event %d after %d, following %d", id, after, last)
			}
			addrs, last = append(addrs, a), id
			return nil
		}))
		return addrs, last
	}
	if a, _ := list(0); len(a) != 0 {
		t.Fatalf("empty store lists %v", a)
	}
	get(s.Record(ctx, bounce("bob@example.com", "", t0), hardChange("bob@example.com")))(t)
	get(s.Import(ctx, []store.Suppression{{Scope: "globex", Address: "*@spamtrap.example", Reason: store.Manual, Created: t0}}, t0))(t)
	a, last := list(0)
	if fmt.Sprint(a) != "[bob@example.com *@spamtrap.example]" {
		t.Fatalf("all listings: %v", a)
	}
	if a, _ := list(last); len(a) != 0 {
		t.Errorf("nothing new, yet %v", a)
	}
	// An event that changes nothing lists nothing; a new entry does.
	get(s.Record(ctx, bounce("bob@example.com", "", t0), hardChange("bob@example.com")))(t)
	get(s.Record(ctx, bounce("carol@example.com", "", t0), hardChange("carol@example.com")))(t)
	if a, _ := list(last); fmt.Sprint(a) != "[carol@example.com]" {
		t.Errorf("after event %d: %v", last, a)
	}
}

// testThrottles: the throttle state is replaced whole and read back.
func testThrottles(t *testing.T, s store.Store) {
	if ts := get(s.Throttles(ctx))(t); len(ts) != 0 {
		t.Fatalf("empty store: %+v", ts)
	}
	in := []store.Throttle{
		{Destination: "google.com", State: store.ThrottleLimited, Rate: 12.5, Since: t0, Tempfails: 7, Successes: 3,
			Reason: "rate-limited", Reply: "421 4.7.28 rate limited", Updated: t0.Add(time.Minute)},
		{Destination: "google.com", Scope: "acme", State: store.ThrottleSuspended, Since: t0, Until: t0.Add(time.Hour),
			Reason: "blocklisted", Reply: "550 5.7.1 listed at zen.spamhaus.org", Updated: t0},
	}
	noErr(t, s.SetThrottles(ctx, in))
	got := get(s.Throttles(ctx))(t)
	if fmt.Sprint(got) != fmt.Sprint(in) {
		t.Errorf("Throttles =\n%+v\nwant\n%+v", got, in)
	}
	noErr(t, s.SetThrottles(ctx, in[1:]))
	if got := get(s.Throttles(ctx))(t); len(got) != 1 || got[0].Scope != "acme" {
		t.Errorf("after replacing: %+v", got)
	}
	if err := s.SetThrottles(ctx, []store.Throttle{in[0], in[0]}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a destination twice: %v", err)
	}
	if err := s.SetThrottles(ctx, []store.Throttle{{State: store.ThrottleLimited}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("no destination: %v", err)
	}
	if got := get(s.Throttles(ctx))(t); len(got) != 1 {
		t.Errorf("a refused replacement changed the state: %+v", got)
	}
	noErr(t, s.SetThrottles(ctx, nil))
	if got := get(s.Throttles(ctx))(t); len(got) != 0 {
		t.Errorf("after clearing: %+v", got)
	}
}

// SharedOpener makes one fresh, empty store and returns a function that
// opens a further handle on it writing as the given relay, as another
// process or another relay of a fleet would. RunShared closes the
// handles.
type SharedOpener func(t *testing.T) func(relay string) store.Store

// RunShared runs the tests that need several handles on one store at
// once: relays, and concurrent writers (each handle its own connections,
// as separate processes have).
func RunShared(t *testing.T, open SharedOpener) {
	tests := []struct {
		name string
		f    func(*testing.T, func(relay string) store.Store)
	}{
		{"Relays", testRelays},
		{"ConcurrentNames", testConcurrentNames},
		{"ConcurrentKeys", testConcurrentKeys},
		{"ConcurrentSoftBounces", testConcurrentSoftBounces},
		{"CursorsMissNothing", testCursors},
		{"PausesAcrossRelays", testPausesShared},
		{"WarmupAcrossRelays", testWarmupShared},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mk := open(t)
			var handles []store.Store
			defer func() {
				for _, h := range handles {
					h.Close()
				}
			}()
			tc.f(t, func(relay string) store.Store {
				h := mk(relay)
				handles = append(handles, h)
				return h
			})
		})
	}
}

// testRelays: two relays on one store see one list and one set of names;
// each keeps its own throttle state; what each wrote says who wrote it.
func testRelays(t *testing.T, open func(string) store.Store) {
	a, b := open("mx1"), open("mx2")
	if a.Relay() != "mx1" || b.Relay() != "mx2" {
		t.Fatalf("relays %q %q", a.Relay(), b.Relay())
	}
	sc := get(a.ID(ctx, store.ScopeName, "acme"))(t)
	if got := get(b.ID(ctx, store.ScopeName, "acme"))(t); got != sc {
		t.Errorf("acme is %d on mx1 and %d on mx2", sc, got)
	}
	st := get(b.ID(ctx, store.StreamName, "news"))(t)
	if n := get(a.Name(ctx, store.StreamName, st))(t); n != "news" {
		t.Errorf("mx1 reads stream %d as %q", st, n)
	}

	day := 24 * time.Hour
	noErr(t, a.AddSend(ctx, store.Send{ID: 1, Scope: "acme", Stream: "news", Recipient: "a@example.com", At: t0}))
	noErr(t, b.AddSend(ctx, store.Send{ID: 2, Scope: "acme", Stream: "news", Recipient: "b@example.com", At: t0}))
	noErr(t, b.AddSend(ctx, store.Send{ID: 3, Scope: "acme", Stream: "news", Recipient: "c@example.com", At: t0}))
	if s := get(b.Send(ctx, 1))(t); s.Relay != "mx1" {
		t.Errorf("send 1 read on mx2: relay %q, want mx1", s.Relay)
	}
	sum := get(a.SendDays(ctx, t0.Truncate(day), t0.Add(day)))(t)
	if len(sum) != 1 || sum[0].Sent != 3 || sum[0].Relay != "" {
		t.Errorf("SendDays (the fleet) = %+v", sum)
	}
	split := get(a.SendDaysByRelay(ctx, t0.Truncate(day), t0.Add(day)))(t)
	if len(split) != 2 || split[0].Relay != "mx1" || split[0].Sent != 1 || split[1].Relay != "mx2" || split[1].Sent != 2 {
		t.Errorf("SendDaysByRelay = %+v", split)
	}

	// A bounce taken in by mx1 suppresses on mx2, at once.
	r := get(a.Record(ctx, bounce("bob@example.com", "mx1-bounce", t0), hardChange("bob@example.com")))(t)
	e, ok, err := b.Lookup(ctx, store.Query{Scope: "acme", Address: "bob@example.com", At: t0})
	if err != nil || !ok || e.EventID != r.EventID {
		t.Fatalf("mx2's lookup after mx1's bounce: %+v %v %v", e, ok, err)
	}
	if _, err := b.Record(ctx, bounce("bob@example.com", "mx1-bounce", t0), hardChange("bob@example.com")); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("mx2 recording mx1's bounce again: %v, want ErrDuplicate", err)
	}
	var relays []string
	noErr(t, b.Events(ctx, store.EventFilter{}, func(e store.Event) error { relays = append(relays, e.Relay); return nil }))
	if fmt.Sprint(relays) != "[mx1]" {
		t.Errorf("event relays %v", relays)
	}

	// Each relay replaces its own throttle state only.
	th := func(dest string) store.Throttle {
		return store.Throttle{Destination: dest, State: store.ThrottleLimited, Rate: 10, Since: t0, Reason: "tempfail", Updated: t0}
	}
	noErr(t, a.SetThrottles(ctx, []store.Throttle{th("google.com"), th("yahoo.com")}))
	noErr(t, b.SetThrottles(ctx, []store.Throttle{th("google.com")}))
	all := get(a.Throttles(ctx))(t)
	var got []string
	for _, x := range all {
		got = append(got, x.Destination+"@"+x.Relay)
	}
	if fmt.Sprint(got) != "[google.com@mx1 google.com@mx2 yahoo.com@mx1]" {
		t.Errorf("throttles = %v", got)
	}
	noErr(t, a.SetThrottles(ctx, nil))
	if all := get(b.Throttles(ctx))(t); len(all) != 1 || all[0].Relay != "mx2" {
		t.Errorf("after mx1 cleared its state: %+v", all)
	}
}

// testConcurrentNames: relays interning the same new names at once all
// get the same ids.
func testConcurrentNames(t *testing.T, open func(string) store.Store) {
	const handles, names = 4, 20
	hs := make([]store.Store, handles)
	for i := range hs {
		hs[i] = open(fmt.Sprint("mx", i))
	}
	got := make([][]uint32, handles)
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Go(func() {
			for n := range names {
				id, err := h.ID(ctx, store.ScopeName, fmt.Sprint("customer-", n))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], id)
			}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for n := range names {
		for i := range hs {
			if len(got[i]) != names || got[i][n] != got[0][n] {
				t.Fatalf("name %d: ids differ between handles: %v", n, got)
			}
		}
		if seen[got[0][n]] || got[0][n] == 0 || got[0][n] > 1<<21-1 {
			t.Errorf("name %d got id %d (reused, zero or too large)", n, got[0][n])
		}
		seen[got[0][n]] = true
	}
}

// testConcurrentKeys: every bounce is recorded twice at once, through
// different handles (two relays' bounce pipes, or Postfix's log and the
// DSN): each is recorded exactly once, the other attempt gets
// ErrDuplicate, and nothing else is lost.
func testConcurrentKeys(t *testing.T, open func(string) store.Store) {
	const handles, perHandle = 4, 40
	hs := make([]store.Store, handles)
	for i := range hs {
		hs[i] = open(fmt.Sprint("mx", i))
	}
	var ok, dup atomic.Int64
	var wg sync.WaitGroup
	for i, h := range hs {
		for g := range 2 {
			wg.Go(func() {
				// Handle i records keys i*perHandle.. and its neighbour's,
				// so every key is raced by two handles.
				base := ((i + g) % handles) * perHandle
				for k := range perHandle {
					a := fmt.Sprintf("r%d@example.com", base+k)
					ev := bounce(a, fmt.Sprint("key-", base+k), t0)
					_, err := h.Record(ctx, ev, hardChange(a))
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, store.ErrDuplicate):
						dup.Add(1)
					default:
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	const keys = handles * perHandle
	if ok.Load() != keys || dup.Load() != keys {
		t.Errorf("%d recorded, %d duplicates; want %d and %d", ok.Load(), dup.Load(), keys, keys)
	}
	if n := countEvents(t, hs[0], store.EventFilter{}); n != keys {
		t.Errorf("%d events, want %d", n, keys)
	}
	n := 0
	noErr(t, hs[1].Suppressions(ctx, store.Filter{At: t0}, func(store.Suppression) error { n++; return nil }))
	if n != keys {
		t.Errorf("%d suppressions, want %d", n, keys)
	}
}

// testConcurrentSoftBounces: soft bounces of distinct sends to one
// recipient, recorded at once through several handles, are counted one
// by one: each Record sees a different streak length, and exactly one of
// them (the one that reaches the threshold) lists the address.
func testConcurrentSoftBounces(t *testing.T, open func(string) store.Store) {
	const handles, perHandle = 4, 10
	const total = handles * perHandle
	a := "full@example.com"
	soft := store.Change{Op: store.CountSoftBounce, Scope: "acme", Address: a, TTL: time.Hour, MinBounces: total}
	var mu sync.Mutex
	lengths := map[int]int{}
	listed := 0
	var wg sync.WaitGroup
	for i := range handles {
		h := open(fmt.Sprint("mx", i))
		wg.Go(func() {
			for k := range perHandle {
				send := uint64(1000 + i*perHandle + k)
				ev := store.Event{At: t0, Type: store.Bounced, Scope: "acme", Address: a, SendID: send, Reason: "mailboxfull", Source: "bouncepipe"}
				r, err := h.Record(ctx, ev, soft)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				lengths[r.Streak.Sends]++
				if r.Changed {
					listed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for n := 1; n <= total; n++ {
		if lengths[n] != 1 {
			t.Errorf("streak length %d seen %d times, want once (all: %v)", n, lengths[n], lengths)
			break
		}
	}
	if listed != 1 {
		t.Errorf("%d records listed the address, want 1", listed)
	}
}

// testCursors: a reader that follows ListedSince and CountEvents from
// the last id it saw, as the policy server's filter and the metrics do,
// while several handles write at once, misses no listing and no event
// (event ids must follow commit order).
func testCursors(t *testing.T, open func(string) store.Store) {
	const handles, perHandle = 4, 50
	reader := open("reader")
	stop := make(chan struct{})
	seen := map[string]bool{}
	var counted int64
	var last, lastCount int64
	follow := func() {
		noErr(t, reader.ListedSince(ctx, last, func(a string, id int64) error {
			seen[a] = true
			last = id
			return nil
		}))
		counts, next, err := reader.CountEvents(ctx, lastCount)
		noErr(t, err)
		for _, c := range counts {
			counted += c.Count
		}
		lastCount = next
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			follow()
		}
	}()
	var wg sync.WaitGroup
	for i := range handles {
		h := open(fmt.Sprint("mx", i))
		wg.Go(func() {
			for k := range perHandle {
				a := fmt.Sprintf("c%d-%d@example.com", i, k)
				if _, err := h.Record(ctx, bounce(a, "", t0), hardChange(a)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-done
	follow() // what was committed after the reader's last pass
	if len(seen) != handles*perHandle {
		t.Errorf("the incremental reader saw %d listings, want %d", len(seen), handles*perHandle)
	}
	if counted != handles*perHandle {
		t.Errorf("the incremental counts add up to %d events, want %d", counted, handles*perHandle)
	}
}

// pauseEvent is a Paused event for scope, as scope vetting records it.
func pauseEvent(scope, reason string, at time.Time) store.Event {
	return store.Event{At: at, Type: store.Paused, Scope: scope, Reason: reason,
		Diagnostic: "complaints 0.45% of 2000 copies over 7 days (limit 0.30%)", Source: "vetting"}
}

// testPauses: a scope is paused with its first cause kept, listed by
// Pauses, resumed; every attempt is history; only real scope names can
// be paused.
func testPauses(t *testing.T, s store.Store) {
	if ps := get(s.Pauses(ctx))(t); len(ps) != 0 {
		t.Fatalf("empty store: %+v", ps)
	}
	pause := func(ev store.Event) store.Result {
		t.Helper()
		return get(s.Record(ctx, ev, store.Change{Op: store.PauseScope, Scope: ev.Scope}))(t)
	}
	resume := func(scope string, at time.Time) store.Result {
		t.Helper()
		ev := store.Event{At: at, Type: store.Resumed, Scope: scope, Source: "cli:root", Diagnostic: "list cleaned"}
		return get(s.Record(ctx, ev, store.Change{Op: store.ResumeScope, Scope: scope}))(t)
	}
	cause := func(ev store.Event, id int64) store.Event {
		ev.ID, ev.Relay = id, s.Relay()
		return ev
	}
	check := func(what string, want ...store.Pause) {
		t.Helper()
		got := get(s.Pauses(ctx))(t)
		if len(got) != len(want) {
			t.Fatalf("%s: Pauses = %+v, want %+v", what, got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Scope != w.Scope || g.EventID != w.EventID || !g.Since.Equal(w.Since) || g.Cause != w.Cause {
				t.Errorf("%s: pause %d =\n%+v\nwant\n%+v", what, i, g, w)
			}
		}
	}

	evG := pauseEvent("globex", "complaint-rate", t0)
	rG := pause(evG)
	if !rG.Changed || rG.EventID == 0 {
		t.Fatalf("first pause of globex: %+v", rG)
	}
	evA := pauseEvent("acme", "manual", t0.Add(time.Hour))
	evA.Source, evA.Diagnostic = "cli:root", "abuse desk asked"
	rA := pause(evA)
	if !rA.Changed || rA.EventID <= rG.EventID {
		t.Fatalf("pause of acme: %+v (globex's was event %d)", rA, rG.EventID)
	}
	// By scope name, whatever the order they were paused in.
	pA := store.Pause{Scope: "acme", Since: evA.At, EventID: rA.EventID, Cause: cause(evA, rA.EventID)}
	pG := store.Pause{Scope: "globex", Since: t0, EventID: rG.EventID, Cause: cause(evG, rG.EventID)}
	check("two pauses", pA, pG)

	// Paused again: recorded, but the first cause stays.
	again := pauseEvent("globex", "hard-bounce-rate", t0.Add(2*time.Hour))
	r := pause(again)
	if r.Changed || r.EventID <= rA.EventID {
		t.Errorf("second pause of globex: %+v, want Changed false and a new event", r)
	}
	check("globex paused twice", pA, pG)

	// Resumed: no longer listed; resuming again changes nothing, and
	// neither does resuming a scope never paused (or never named).
	if r := resume("globex", t0.Add(3*time.Hour)); !r.Changed || r.EventID == 0 {
		t.Errorf("resume of globex: %+v", r)
	}
	check("globex resumed", pA)
	if r := resume("globex", t0.Add(4*time.Hour)); r.Changed || r.EventID == 0 {
		t.Errorf("second resume of globex: %+v, want Changed false and an event", r)
	}
	get(s.ID(ctx, store.ScopeName, "initech"))(t)
	if r := resume("initech", t0.Add(4*time.Hour)); r.Changed {
		t.Errorf("resume of a scope never paused: %+v", r)
	}
	if r := resume("never-seen", t0.Add(4*time.Hour)); r.Changed {
		t.Errorf("resume of a scope never named: %+v", r)
	}
	// Paused anew after the resume: the new event is the cause.
	evG2 := pauseEvent("globex", "hard-bounce-rate", t0.Add(5*time.Hour))
	rG2 := pause(evG2)
	if !rG2.Changed {
		t.Errorf("pause after a resume: %+v", rG2)
	}
	check("globex paused anew", pA, store.Pause{Scope: "globex", Since: evG2.At, EventID: rG2.EventID, Cause: cause(evG2, rG2.EventID)})

	// All of it is history.
	var hist []string
	noErr(t, s.Events(ctx, store.EventFilter{Types: []store.EventType{store.Paused, store.Resumed}}, func(e store.Event) error {
		hist = append(hist, e.Scope+":"+string(e.Type))
		return nil
	}))
	want := "[globex:scope-paused acme:scope-paused globex:scope-paused globex:scope-resumed globex:scope-resumed " +
		"initech:scope-resumed never-seen:scope-resumed globex:scope-paused]"
	if fmt.Sprint(hist) != want {
		t.Errorf("history =\n%v\nwant\n%v", hist, want)
	}
	if n := countEvents(t, s, store.EventFilter{Scope: "globex", Types: []store.EventType{store.Resumed}}); n != 2 {
		t.Errorf("%d resume events for globex, want 2", n)
	}

	// Only a scope can be paused: not "" nor every scope. Nothing is
	// recorded then.
	before := countEvents(t, s, store.EventFilter{})
	for _, ch := range []store.Change{
		{Op: store.PauseScope},
		{Op: store.PauseScope, Scope: store.AllScopes},
		{Op: store.ResumeScope},
		{Op: store.ResumeScope, Scope: store.AllScopes},
	} {
		ev := pauseEvent(ch.Scope, "manual", t0)
		if _, err := s.Record(ctx, ev, ch); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Record(%+v): %v, want ErrInvalid", ch, err)
		}
	}
	if n := countEvents(t, s, store.EventFilter{}); n != before {
		t.Errorf("refused pauses left %d events, want %d", n, before)
	}
	check("after the refused ones", pA, store.Pause{Scope: "globex", Since: evG2.At, EventID: rG2.EventID, Cause: cause(evG2, rG2.EventID)})
}

// dayCount prints a DayCount without its Day, for exact comparisons.
func dayCount(c store.DayCount) string {
	return fmt.Sprintf("%s/%s relay=%q sent=%d delivered=%d deferred=%d hard=%d unknown=%d soft=%d problem=%d complaints=%d unsubscribes=%d",
		c.Scope, c.Stream, c.Relay, c.Sent, c.Delivered, c.Deferred, c.HardBounced, c.UnknownUser, c.SoftBounced,
		c.SenderProblem, c.Complaints, c.Unsubscribes)
}

// checkDays compares counts exactly, Day included.
func checkDays(t *testing.T, what string, got []store.DayCount, want []store.DayCount) {
	t.Helper()
	if len(got) != len(want) {
		var g []string
		for _, c := range got {
			g = append(g, c.Day.Format(time.RFC3339)+" "+dayCount(c))
		}
		t.Errorf("%s: %d rows, want %d:\n%s", what, len(got), len(want), g)
		return
	}
	for i := range want {
		if dayCount(got[i]) != dayCount(want[i]) || !got[i].Day.Equal(want[i].Day) {
			t.Errorf("%s row %d:\n%s %s\nwant\n%s %s", what, i, got[i].Day.Format(time.RFC3339), dayCount(got[i]),
				want[i].Day.Format(time.RFC3339), dayCount(want[i]))
		}
	}
}

// testSendTotals: SendTotals counts the copies sent in [since, until)
// like SendDays, in one row per scope and stream; UnknownUser counts the
// copies that failed for good because the recipient does not exist, once
// each, in both.
func testSendTotals(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	since, until := t0.Add(-time.Hour), t0.Add(2*day) // 09:00 on day 1 to 10:00 on day 3
	sends := []store.Send{
		{ID: 1, Scope: "acme", Stream: "news", Recipient: "a@example.com", At: since},                       // the first second of the window
		{ID: 2, Scope: "acme", Stream: "news", Recipient: "b@example.com", At: t0.Add(day)},                 // day 2
		{ID: 3, Scope: "acme", Stream: "news", Recipient: "c@example.com", At: t0.Add(day + time.Hour)},     // day 2
		{ID: 4, Scope: "acme", Stream: "news", Recipient: "d@example.com", At: until.Add(-time.Second)},     // the last second, day 3
		{ID: 5, Scope: "acme", Stream: "news", Recipient: "e@example.com", At: until},                       // just after
		{ID: 6, Scope: "acme", Stream: "news", Recipient: "f@example.com", At: since.Add(-time.Second)},     // just before
		{ID: 7, Scope: "acme", Stream: "offers", Recipient: "g@example.com", At: t0},                        // day 1
		{ID: 8, Scope: "globex", Stream: "news", Recipient: "h@example.com", At: t0.Add(time.Hour)},         // day 1
		{ID: 9, Scope: "globex", Stream: "news", Recipient: "i@example.com", At: t0.Add(day + 2*time.Hour)}, // day 2
	}
	for _, sd := range sends {
		noErr(t, s.AddSend(ctx, sd))
	}
	rec := func(id uint64, typ store.EventType, reason string, hard bool, ft string) {
		t.Helper()
		get(s.Record(ctx, store.Event{At: t0.Add(3 * day), Type: typ, SendID: id, Reason: reason, Hard: hard,
			FeedbackType: ft, Source: "test"}, store.Change{}))(t)
	}
	rec(1, store.Delivered, "", false, "")
	rec(2, store.Bounced, "userunknown", true, "")
	rec(2, store.Bounced, "userunknown", true, "") // reported twice (log and DSN): one copy
	rec(3, store.Bounced, "hostunknown", true, "") // hard, but not an unknown user
	rec(4, store.Deferred, "", false, "")
	rec(4, store.Bounced, "userunknown", false, "") // soft: not counted as unknown
	rec(5, store.Bounced, "userunknown", true, "")  // sent at until: outside
	rec(6, store.Bounced, "userunknown", true, "")  // sent before since: outside
	rec(7, store.Complaint, "", false, "abuse")
	rec(7, store.Unsubscribed, "", false, "")
	rec(8, store.Bounced, "userunknown", true, "")
	rec(8, store.SenderProblem, "blocked", true, "")
	rec(9, store.Complaint, "", false, "not-spam")

	checkDays(t, "SendTotals", get(s.SendTotals(ctx, since, until))(t), []store.DayCount{
		{Scope: "acme", Stream: "news", Day: since, Sent: 4, Delivered: 1, Deferred: 1, HardBounced: 2, UnknownUser: 1, SoftBounced: 1},
		{Scope: "acme", Stream: "offers", Day: since, Sent: 1, Complaints: 1, Unsubscribes: 1},
		{Scope: "globex", Stream: "news", Day: since, Sent: 2, HardBounced: 1, UnknownUser: 1, SenderProblem: 1},
	})
	// A window one second later drops send 1 and takes in send 5.
	later := since.Add(time.Second)
	checkDays(t, "SendTotals a second later", get(s.SendTotals(ctx, later, until.Add(time.Second)))(t), []store.DayCount{
		{Scope: "acme", Stream: "news", Day: later, Sent: 4, Deferred: 1, HardBounced: 3, UnknownUser: 2, SoftBounced: 1},
		{Scope: "acme", Stream: "offers", Day: later, Sent: 1, Complaints: 1, Unsubscribes: 1},
		{Scope: "globex", Stream: "news", Day: later, Sent: 2, HardBounced: 1, UnknownUser: 1, SenderProblem: 1},
	})
	if got := get(s.SendTotals(ctx, t0.Add(-10*day), t0.Add(-9*day)))(t); len(got) != 0 {
		t.Errorf("SendTotals of an empty period: %+v", got)
	}

	// SendDays splits the same copies by send day (UTC).
	d1, d2, d3 := t0.Truncate(day), t0.Truncate(day).Add(day), t0.Truncate(day).Add(2*day)
	days := []store.DayCount{
		{Scope: "acme", Stream: "news", Day: d1, Sent: 1, Delivered: 1},
		{Scope: "acme", Stream: "news", Day: d2, Sent: 2, HardBounced: 2, UnknownUser: 1},
		{Scope: "acme", Stream: "news", Day: d3, Sent: 1, Deferred: 1, SoftBounced: 1},
		{Scope: "acme", Stream: "offers", Day: d1, Sent: 1, Complaints: 1, Unsubscribes: 1},
		{Scope: "globex", Stream: "news", Day: d1, Sent: 1, HardBounced: 1, UnknownUser: 1, SenderProblem: 1},
		{Scope: "globex", Stream: "news", Day: d2, Sent: 1},
	}
	checkDays(t, "SendDays", get(s.SendDays(ctx, since, until))(t), days)
	for i := range days {
		days[i].Relay = s.Relay()
	}
	checkDays(t, "SendDaysByRelay", get(s.SendDaysByRelay(ctx, since, until))(t), days)
}

// warmupDay prints a WarmupDay for exact comparisons.
func warmupDay(w store.WarmupDay) string {
	return fmt.Sprintf("%s/%s %s sent=%d held=%v relay=%q", w.Warmup, w.Destination, w.Day.UTC().Format(time.RFC3339), w.Sent, w.Held, w.Relay)
}

func checkWarmup(t *testing.T, what string, got []store.WarmupDay, want ...store.WarmupDay) {
	t.Helper()
	var g, w []string
	for _, x := range got {
		g = append(g, warmupDay(x))
	}
	for _, x := range want {
		w = append(w, warmupDay(x))
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("%s:\n%s\nwant\n%s", what, g, w)
	}
	for i := range min(len(got), len(want)) {
		if got[i].Day.Location() != time.UTC {
			t.Errorf("%s: day %d is in %v, want UTC", what, i, got[i].Day.Location())
		}
	}
}

// testWarmup: warm-up days add up per destination and day, Held is
// never cleared, and WarmupDays reads one warm-up from a day on, by
// destination and day. Days are instants (a time zone's midnight), not
// UTC days.
func testWarmup(t *testing.T, s store.Store) {
	cet := time.FixedZone("CET", 3600)
	d0 := time.Date(2026, 11, 1, 0, 0, 0, 0, cet).UTC() // 2026-10-31T23:00:00Z
	d1, d2 := d0.Add(24*time.Hour), d0.Add(48*time.Hour)
	const w = "new-ip"
	if got := get(s.WarmupDays(ctx, w, d0))(t); len(got) != 0 {
		t.Fatalf("empty store: %+v", got)
	}
	noErr(t, s.AddWarmup(ctx, nil))
	noErr(t, s.AddWarmup(ctx, []store.WarmupDay{
		{Warmup: w, Destination: "google.com", Day: d1, Sent: 100},
		{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 50},
		{Warmup: w, Destination: "google.com", Day: d2, Sent: 200, Held: true},
		{Warmup: w, Destination: "yahoo.com", Day: d0, Sent: 10, Relay: "ignored"},
		{Warmup: "other", Destination: "google.com", Day: d1, Sent: 7, Held: true},
	}))
	// More of the same days: Sent adds up; Held false clears nothing,
	// Held true sets it. A day given in its own time zone is the same day.
	noErr(t, s.AddWarmup(ctx, []store.WarmupDay{
		{Warmup: w, Destination: "google.com", Day: d1.In(cet), Sent: 20},
		{Warmup: w, Destination: "google.com", Day: d2, Sent: 5},
		{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 0, Held: true},
		{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 1}, // the same day twice in one call
	}))
	checkWarmup(t, "from d1", get(s.WarmupDays(ctx, w, d1))(t),
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d1, Sent: 120},
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d2, Sent: 205, Held: true},
		store.WarmupDay{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 51, Held: true},
	)
	// By destination, then day: yahoo's earlier day comes after google's.
	checkWarmup(t, "from d0", get(s.WarmupDays(ctx, w, d0))(t),
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d1, Sent: 120},
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d2, Sent: 205, Held: true},
		store.WarmupDay{Warmup: w, Destination: "yahoo.com", Day: d0, Sent: 10},
		store.WarmupDay{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 51, Held: true},
	)
	// since is an instant: a second after d1 leaves d1 out.
	checkWarmup(t, "from d1+1s", get(s.WarmupDays(ctx, w, d1.Add(time.Second)))(t),
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d2, Sent: 205, Held: true},
	)
	checkWarmup(t, "other warm-up", get(s.WarmupDays(ctx, "other", d0))(t),
		store.WarmupDay{Warmup: "other", Destination: "google.com", Day: d1, Sent: 7, Held: true},
	)
	if got := get(s.WarmupDays(ctx, "never-seen", d0))(t); len(got) != 0 {
		t.Errorf("unknown warm-up: %+v", got)
	}

	// A call with an invalid day adds nothing at all.
	for _, bad := range []store.WarmupDay{
		{Destination: "google.com", Day: d1, Sent: 1},
		{Warmup: w, Day: d1, Sent: 1},
		{Warmup: w, Destination: "google.com", Sent: 1},
		{Warmup: w, Destination: "google.com", Day: d1, Sent: -1},
	} {
		err := s.AddWarmup(ctx, []store.WarmupDay{{Warmup: w, Destination: "google.com", Day: d1, Sent: 1000}, bad})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddWarmup with %+v: %v, want ErrInvalid", bad, err)
		}
	}
	checkWarmup(t, "after the refused calls", get(s.WarmupDays(ctx, w, d2))(t),
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d2, Sent: 205, Held: true},
	)
	if got := get(s.WarmupDays(ctx, w, d1))(t); len(got) != 3 || got[0].Sent != 120 {
		t.Errorf("a refused call added to google.com on d1: %+v", got)
	}
}

// testPausesShared: a pause recorded by one relay holds on every relay,
// with its cause saying who recorded it; relays pausing one scope at
// once pause it once.
func testPausesShared(t *testing.T, open func(string) store.Store) {
	a, b := open("mx1"), open("mx2")
	ev := pauseEvent("acme", "complaint-rate", t0)
	r := get(a.Record(ctx, ev, store.Change{Op: store.PauseScope, Scope: "acme"}))(t)
	ps := get(b.Pauses(ctx))(t)
	want := ev
	want.ID, want.Relay = r.EventID, "mx1"
	if len(ps) != 1 || ps[0].Scope != "acme" || ps[0].EventID != r.EventID || !ps[0].Since.Equal(t0) || ps[0].Cause != want {
		t.Fatalf("mx2 reads the pause as %+v, want cause %+v", ps, want)
	}
	if r := get(b.Record(ctx, pauseEvent("acme", "manual", t0.Add(time.Hour)), store.Change{Op: store.PauseScope, Scope: "acme"}))(t); r.Changed {
		t.Errorf("mx2 pausing a scope mx1 paused: %+v", r)
	}
	rs := store.Event{At: t0.Add(2 * time.Hour), Type: store.Resumed, Scope: "acme", Source: "cli:root"}
	if r := get(b.Record(ctx, rs, store.Change{Op: store.ResumeScope, Scope: "acme"}))(t); !r.Changed {
		t.Errorf("mx2 resuming: %+v", r)
	}
	if ps := get(a.Pauses(ctx))(t); len(ps) != 0 {
		t.Errorf("mx1 after mx2 resumed: %+v", ps)
	}

	// Four relays pause globex at once: one pause, four events.
	const handles = 4
	var changed atomic.Int64
	ids := make([]int64, handles)
	var wg sync.WaitGroup
	for i := range handles {
		h := open(fmt.Sprint("mx", i))
		wg.Go(func() {
			r, err := h.Record(ctx, pauseEvent("globex", "hard-bounce-rate", t0), store.Change{Op: store.PauseScope, Scope: "globex"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.EventID
			if r.Changed {
				changed.Add(1)
			}
		})
	}
	wg.Wait()
	if changed.Load() != 1 {
		t.Errorf("%d of %d concurrent pauses changed something, want 1", changed.Load(), handles)
	}
	ps = get(a.Pauses(ctx))(t)
	if len(ps) != 1 || ps[0].Scope != "globex" || ps[0].EventID != ps[0].Cause.ID {
		t.Fatalf("after concurrent pauses: %+v", ps)
	}
	first := false
	for _, id := range ids {
		first = first || id == ps[0].EventID
	}
	if !first {
		t.Errorf("the pause's event %d is none of the recorded %v", ps[0].EventID, ids)
	}
	if n := countEvents(t, a, store.EventFilter{Scope: "globex", Types: []store.EventType{store.Paused}}); n != handles {
		t.Errorf("%d pause events for globex, want %d", n, handles)
	}
}

// testWarmupShared: relays count a warm-up's days each under their own
// name; WarmupDays sums them, Held when any relay held; handles of one
// relay adding at once lose nothing.
func testWarmupShared(t *testing.T, open func(string) store.Store) {
	a, b := open("mx1"), open("mx2")
	d1 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.FixedZone("CET", 3600)).UTC()
	d2 := d1.Add(24 * time.Hour)
	const w = "new-ip"
	noErr(t, a.AddWarmup(ctx, []store.WarmupDay{
		{Warmup: w, Destination: "google.com", Day: d1, Sent: 100},
		{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 40},
	}))
	noErr(t, b.AddWarmup(ctx, []store.WarmupDay{
		{Warmup: w, Destination: "google.com", Day: d1, Sent: 30, Held: true, Relay: "mx1"}, // Relay is the handle's
		{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 2},
		{Warmup: w, Destination: "yahoo.com", Day: d2, Sent: 9},
	}))
	noErr(t, a.AddWarmup(ctx, []store.WarmupDay{{Warmup: w, Destination: "google.com", Day: d1, Sent: 5}}))
	want := []store.WarmupDay{
		{Warmup: w, Destination: "google.com", Day: d1, Sent: 135, Held: true},
		{Warmup: w, Destination: "yahoo.com", Day: d1, Sent: 42},
		{Warmup: w, Destination: "yahoo.com", Day: d2, Sent: 9},
	}
	checkWarmup(t, "read on mx1", get(a.WarmupDays(ctx, w, d1))(t), want...)
	checkWarmup(t, "read on mx2", get(b.WarmupDays(ctx, w, d1))(t), want...)

	// Handles of two relays (two of each) add one at a time, at once.
	const handles, adds = 4, 25
	var wg sync.WaitGroup
	for i := range handles {
		h := open(fmt.Sprint("mx", 1+i%2))
		wg.Go(func() {
			for range adds {
				if err := h.AddWarmup(ctx, []store.WarmupDay{
					{Warmup: w, Destination: "yahoo.com", Day: d2, Sent: 1},
					{Warmup: w, Destination: "google.com", Day: d2, Sent: 2},
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkWarmup(t, "after concurrent adds", get(b.WarmupDays(ctx, w, d2))(t),
		store.WarmupDay{Warmup: w, Destination: "google.com", Day: d2, Sent: 2 * handles * adds},
		store.WarmupDay{Warmup: w, Destination: "yahoo.com", Day: d2, Sent: 9 + handles*adds},
	)
}
