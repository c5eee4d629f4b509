package policyd

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/rules"
	"github.com/senderkit/senderkit/internal/store"
)

func newDeliveries(f *fixture) *Deliveries {
	return &Deliveries{Store: f.store, Config: f.cfg.Load, Throttle: f.policy.Throttle, Grouper: f.policy.Grouper,
		Log: slog.New(slog.DiscardHandler), Now: f.clock, Location: time.UTC}
}

func (f *fixture) addSend(t *testing.T, id uint64, qid, rcpt string) {
	t.Helper()
	if err := f.store.AddSend(context.Background(), store.Send{ID: id, Scope: "acme", Stream: "bulk", Recipient: rcpt, QueueID: qid, At: t0}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) events(t *testing.T, address string) []store.Event {
	t.Helper()
	var evs []store.Event
	if err := f.store.Events(context.Background(), store.EventFilter{Address: address}, func(e store.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return evs
}

func types(evs []store.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, string(e.Type)+"/"+e.Source)
	}
	return fmt.Sprint(s)
}

// logLine is a Postfix smtp(8) line at the fixture's clock less 10 s.
func logLine(f *fixture, qid, rcpt, dsn, status, text string) string {
	return fmt.Sprintf("%s lab postfix/smtp[4242]: %s: to=<%s>, relay=mx.dest.example[192.0.2.25]:25, delay=0.1, delays=0/0/0/0.1, dsn=%s, status=%s (%s)",
		f.clock().Add(-10*time.Second).Format(time.Stamp), qid, rcpt, dsn, status, text)
}

// TestDeliveriesRecord: log lines about recorded copies become events,
// once each, whichever path reports a bounce first.
func TestDeliveriesRecord(t *testing.T) {
	f := newFixture(t, "")
	d := newDeliveries(f)
	ctx := context.Background()

	// A delivery, read twice (a restart after a crash), counts once.
	f.addSend(t, 101, "4A1B2C3D4E", "ok@dest.example")
	sent := logLine(f, "4A1B2C3D4E", "ok@dest.example", "2.0.0", "sent", "250 2.0.0 OK: queued as X")
	d.Line(sent)
	d.Line(sent)
	if evs := f.events(t, "ok@dest.example"); types(evs) != "[delivered/log]" || evs[0].SendID != 101 || evs[0].Scope != "acme" || evs[0].Stream != "bulk" {
		t.Errorf("delivery: %+v", evs)
	}

	// A bounce the bounce pipe recorded first (Postfix's DSN came back by
	// mail), then logged: one event, one suppression.
	f.addSend(t, 102, "4A1B2C3D4F", "gone@dest.example")
	cfg := f.cfg.Load()
	_, err := rules.Rules{Store: f.store, Config: cfg}.Bounce(ctx, store.Event{At: t0, Scope: "acme", Address: "gone@dest.example", SendID: 102,
		Hard: true, Status: "5.1.1", Source: "bouncepipe", Key: store.BounceKey(102, "gone@dest.example")}, false)
	if err != nil {
		t.Fatal(err)
	}
	d.Line(logLine(f, "4A1B2C3D4F", "gone@dest.example", "5.1.1", "bounced", "host mx.dest.example[192.0.2.25] said: 550 5.1.1 user unknown (in reply to RCPT TO command)"))
	if evs := f.events(t, "gone@dest.example"); types(evs) != "[bounced/bouncepipe]" {
		t.Errorf("a bounce reported by both paths: %s", types(evs))
	}
	// Logged first: the log's event suppresses, the DSN is a duplicate.
	f.addSend(t, 103, "4A1B2C3D50", "gone2@dest.example")
	d.Line(logLine(f, "4A1B2C3D50", "gone2@dest.example", "5.1.1", "bounced", "host mx.dest.example[192.0.2.25] said: 550 5.1.1 user unknown (in reply to RCPT TO command)"))
	_, err = rules.Rules{Store: f.store, Config: cfg}.Bounce(ctx, store.Event{At: t0, Scope: "acme", Address: "gone2@dest.example", SendID: 103,
		Hard: true, Status: "5.1.1", Source: "bouncepipe", Key: store.BounceKey(103, "gone2@dest.example")}, false)
	if err == nil {
		t.Error("the bounce pipe recorded a bounce the log follower had recorded")
	}
	evs := f.events(t, "gone2@dest.example")
	if types(evs) != "[bounced/log]" || !evs[0].Hard || evs[0].Reason != "userunknown" || evs[0].Diagnostic != "550 5.1.1 user unknown" {
		t.Errorf("logged bounce: %+v", evs)
	}
	if e, ok, _ := f.store.Lookup(ctx, store.Query{Scope: "acme", Address: "gone2@dest.example", At: f.clock()}); !ok || e.Reason != store.HardBounce {
		t.Errorf("a logged user unknown did not suppress: %+v %v", e, ok)
	}

	// A delivery ends the recipient's soft-bounce streak.
	soft := func(send uint64) store.Result {
		f.addSend(t, send, fmt.Sprintf("5B%08d", send), "full@dest.example")
		d.Line(logLine(f, fmt.Sprintf("5B%08d", send), "full@dest.example", "5.2.2", "bounced", "host mx.dest.example[192.0.2.25] said: 552 5.2.2 mailbox full (in reply to RCPT TO command)"))
		r, err := f.store.Record(ctx, store.Event{At: f.clock(), Type: store.Bounced, Scope: "acme", Address: "full@dest.example", SendID: send + 1000, Source: "test"},
			store.Change{Op: store.CountSoftBounce, Scope: "acme", Address: "full@dest.example", MinBounces: 10})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := soft(201); r.Streak.Sends != 2 {
		t.Fatalf("streak after a logged soft bounce and another: %+v", r.Streak)
	}
	f.addSend(t, 202, "5C00000202", "full@dest.example")
	d.Line(logLine(f, "5C00000202", "full@dest.example", "2.0.0", "sent", "250 ok"))
	if r := soft(203); r.Streak.Sends != 2 {
		t.Errorf("streak after a delivery: %+v, want the delivery to have reset it", r.Streak)
	}

	// Lines about mail senderkit did not record change nothing in the store.
	d.Line(logLine(f, "6D6D6D6D6D", "stranger@dest.example", "2.0.0", "sent", "250 ok"))
	if evs := f.events(t, "stranger@dest.example"); len(evs) != 0 {
		t.Errorf("events for mail without a send: %s", types(evs))
	}
}

// TestDeliveriesFeedThrottle: deferrals throttle the recipient's
// destination; a blocklist reply suspends the scope that the log's own
// client and sender lines name, and is recorded as a sender problem.
func TestDeliveriesFeedThrottle(t *testing.T) {
	f := newFixture(t, "")
	d := newDeliveries(f)
	f.policy.Grouper.Resolver = tableResolver{"gmail.com": {{Host: "gmail-smtp-in.l.google.com", Pref: 5}}}
	for i := range 3 {
		d.Line(logLine(f, fmt.Sprintf("7E0000000%d", i), fmt.Sprintf("u%d@gmail.com", i), "4.7.28", "deferred",
			"host gmail-smtp-in.l.google.com[192.0.2.26] said: 421-4.7.28 Our system has detected an unusual rate of unsolicited mail (in reply to end of DATA command)"))
	}
	if v := f.policy.Throttle.Admit("google.com", "acme"); v.OK || v.Reason != "rate-limited" {
		t.Errorf("google.com after rate-limit replies: %+v", v)
	}
	if !f.policy.Throttle.Admit("dest.example", "acme").OK {
		t.Error("another destination is throttled")
	}
	// A message of globex's (by its client address), then a blocklist reply.
	stamp := f.clock().Add(-10 * time.Second).Format(time.Stamp)
	d.Line(stamp + " lab postfix/smtpd[1]: 8F00000001: client=app.globex.example[192.0.2.44]")
	d.Line(stamp + " lab postfix/qmgr[2]: 8F00000001: from=<news@other.example>, size=100, nrcpt=1 (queue active)")
	d.Line(logLine(f, "8F00000001", "x@dest.example", "5.7.1", "bounced",
		"host mx.dest.example[192.0.2.25] said: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org (in reply to RCPT TO command)"))
	if v := f.policy.Throttle.Admit("dest.example", "globex"); v.OK || !v.Suspend {
		t.Errorf("globex at dest.example after a blocklist reply: %+v", v)
	}
	if !f.policy.Throttle.Admit("dest.example", "acme").OK {
		t.Error("acme suspended for globex's blocklisting")
	}
	evs := f.events(t, "x@dest.example")
	if types(evs) != "[sender-problem/log]" || evs[0].Scope != "globex" || evs[0].Reason != "blocked" {
		t.Errorf("sender problem: %+v", evs)
	}
}

// TestDeliveriesClassify: logged failures are classified by the bounce
// pipe's classifier (bouncepipe.ClassifyReply), as their DSNs would be: a
// blocklist reply is a sender problem even when the throttle's own
// blocklist patterns do not know its wording, a full mailbox a soft
// bounce that suppresses nothing yet.
func TestDeliveriesClassify(t *testing.T) {
	f := newFixture(t, "")
	cfg, err := conf.Parse([]byte(strings.Replace(testConfig, "[policy.throttle]\n",
		"[policy.throttle]\nblocklist_patterns = ['(?i)no reply says this']\n", 1)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Store(cfg)
	d := newDeliveries(f)
	ctx := context.Background()

	f.addSend(t, 301, "9A00000301", "x@dest.example")
	d.Line(logLine(f, "9A00000301", "x@dest.example", "5.7.1", "bounced",
		"host mx.dest.example[192.0.2.25] said: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1 (in reply to RCPT TO command)"))
	evs := f.events(t, "x@dest.example")
	if types(evs) != "[sender-problem/log]" || evs[0].Reason != "blocked" || evs[0].SendID != 301 {
		t.Errorf("a logged blocklist rejection: %+v", evs)
	}
	if e, ok, _ := f.store.Lookup(ctx, store.Query{Scope: "acme", Address: "x@dest.example", At: f.clock()}); ok {
		t.Errorf("a sender problem suppressed the recipient: %+v", e)
	}

	f.addSend(t, 302, "9A00000302", "full@dest.example")
	d.Line(logLine(f, "9A00000302", "full@dest.example", "5.2.2", "bounced",
		"host mx.dest.example[192.0.2.25] said: 552 5.2.2 <full@dest.example>: mailbox full (in reply to RCPT TO command)"))
	evs = f.events(t, "full@dest.example")
	if types(evs) != "[bounced/log]" || evs[0].Reason != "mailboxfull" || evs[0].Hard {
		t.Errorf("a logged full mailbox: %+v", evs)
	}
	if e, ok, _ := f.store.Lookup(ctx, store.Query{Scope: "acme", Address: "full@dest.example", At: f.clock()}); ok {
		t.Errorf("one soft bounce suppressed the recipient: %+v", e)
	}

	// Domino's unknown user is a hard bounce of the address, though
	// its words match a blocklist pattern ("listed in").
	f.addSend(t, 304, "9A00000304", "gone@dest.example")
	d.Line(logLine(f, "9A00000304", "gone@dest.example", "5.1.1", "bounced",
		"host mx.dest.example[192.0.2.25] said: 550 5.1.1 User not listed in public Name & Address Book (in reply to RCPT TO command)"))
	evs = f.events(t, "gone@dest.example")
	if types(evs) != "[bounced/log]" || evs[0].Reason != "userunknown" || !evs[0].Hard {
		t.Errorf("Domino's unknown user: %+v", evs)
	}
	if _, ok, _ := f.store.Lookup(ctx, store.Query{Scope: "acme", Address: "gone@dest.example", At: f.clock()}); !ok {
		t.Error("Domino's unknown user was not suppressed")
	}

	// A deferral keeps its reason; one that blames the sender is noted
	// as a sender problem.
	f.addSend(t, 303, "9A00000303", "later@dest.example")
	d.Line(logLine(f, "9A00000303", "later@dest.example", "4.2.2", "deferred",
		"host mx.dest.example[192.0.2.25] said: 452 4.2.2 The email account that you tried to reach is over quota (in reply to RCPT TO command)"))
	f.setNow(f.clock().Add(time.Minute)) // the next attempt
	d.Line(logLine(f, "9A00000303", "later@dest.example", "4.7.1", "deferred",
		"host mx.dest.example[192.0.2.25] said: 450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1] (in reply to RCPT TO command)"))
	evs = f.events(t, "later@dest.example")
	if types(evs) != "[deferred/log sender-problem/log]" || evs[0].Reason != "mailboxfull" || evs[1].Reason != "requireptr" {
		t.Errorf("logged deferrals: %+v", evs)
	}
}

// TestDeliveriesWaitForTheStore: a line that arrives while the store is
// locked is held, and recorded once the store is back; if serve stops
// first, the line is left unhandled, to be read again at the next start.
func TestDeliveriesWaitForTheStore(t *testing.T) {
	f := newFixture(t, "")
	d := newDeliveries(f)
	f.addSend(t, 301, "4A1B2C3D60", "held@dest.example")
	line := logLine(f, "4A1B2C3D60", "held@dest.example", "2.0.0", "sent", "250 2.0.0 OK")

	lock := func() func() {
		raw, err := sql.Open("sqlite3", "file:"+f.store.Path()+"?_busy_timeout=0")
		if err != nil {
			t.Fatal(err)
		}
		raw.SetMaxOpenConns(1)
		if _, err := raw.Exec("BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return func() { raw.Exec("ROLLBACK"); raw.Close() }
	}
	// Stopping while the store is locked: not handled.
	release := lock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if d.Handler(ctx)(line) {
		t.Error("a line that could not be recorded was reported handled")
	}
	cancel()
	release()
	if evs := f.events(t, "held@dest.example"); len(evs) != 0 {
		t.Fatalf("recorded while locked: %+v", evs)
	}
	// Locked for a while, then released: the handler waits and records.
	release = lock()
	time.AfterFunc(700*time.Millisecond, release)
	if !d.Handler(context.Background())(line) {
		t.Fatal("the line was not handled once the store came back")
	}
	if evs := f.events(t, "held@dest.example"); types(evs) != "[delivered/log]" {
		t.Errorf("events = %+v", evs)
	}
}
