package policyd

import (
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlog"
	"github.com/senderkit/senderkit/internal/store"
)

// admitted counts how many of n messages are admitted at one instant.
func admitted(th *Throttler, group, scope string, n int) int {
	ok := 0
	for range n {
		if th.Admit(group, scope).OK {
			ok++
		}
	}
	return ok
}

// TestThrottleAIMD walks a destination through a burst of tempfails
// (multiplicative decrease), recovery (additive increase) and back to
// unthrottled, with the fixture's thresholds: window 1m, 3 tempfails at
// 50%, halve, +10/min each minute, 1 to 60 a minute.
func TestThrottleAIMD(t *testing.T) {
	f := newFixture(t, "")
	th := f.policy.Throttle
	now := f.clock()
	// Healthy traffic: 20 deliveries in the minute; nothing throttled.
	for i := range 20 {
		th.Observe("google.com", "acme", Success, now.Add(time.Duration(i)*time.Second), "")
	}
	if th.Active() || admitted(th, "google.com", "acme", 100) != 100 {
		t.Fatal("throttled after successes")
	}
	// Two tempfails of 22 attempts: below both thresholds.
	th.Observe("google.com", "acme", Tempfail, now, "451 4.3.0 try later")
	th.Observe("google.com", "acme", Tempfail, now, "451 4.3.0 try later")
	if th.Active() {
		t.Fatal("throttled after two tempfails")
	}
	// A burst: 30 tempfails, now most of the window's attempts.
	for range 30 {
		th.Observe("google.com", "acme", Tempfail, now, "451 4.3.0 try later")
	}
	if !th.Active() {
		t.Fatal("not throttled after a burst of tempfails")
	}
	snap := th.Snapshot()
	// Throttled at the 20th tempfail, when they were half of the 40
	// attempts in the 1-minute window: 40 a minute, halved.
	if len(snap) != 1 || snap[0].Destination != "google.com" || snap[0].State != store.ThrottleLimited || snap[0].Rate != 20 || snap[0].Reason != "tempfail" {
		t.Fatalf("snapshot after the burst: %+v", snap)
	}
	// The token bucket starts empty and fills at 20 a minute.
	v := th.Admit("google.com", "acme")
	if v.OK || v.Reason != "tempfail" || v.Retry.Sub(now) != 3*time.Second {
		t.Errorf("first admission: %+v", v)
	}
	if th.Admit("other.example", "acme").OK != true {
		t.Error("another destination is throttled")
	}
	// More failures within increase_every do not cut again.
	th.Observe("google.com", "acme", RateLimited, now, "421 4.7.0 rate limited")
	if s := th.Snapshot(); s[0].Rate != 20 {
		t.Errorf("cut twice within a minute: %v", s[0].Rate)
	}
	// A minute later a rate-limit reply halves it: 10.
	now = now.Add(time.Minute)
	f.setNow(now)
	th.Observe("google.com", "acme", RateLimited, now, "421 4.7.0 rate limited")
	if s := th.Snapshot(); s[0].Rate != 10 || s[0].Reason != "rate-limited" {
		t.Errorf("after a rate limit a minute later: %+v", s[0])
	}
	// In 30 s, 5 messages are earned, but the bucket holds ten seconds'
	// worth (1.67): one is admitted.
	now = now.Add(30 * time.Second)
	f.setNow(now)
	if n := admitted(th, "google.com", "acme", 10); n != 1 {
		t.Errorf("admitted %d after 30s at 10/min, want 1", n)
	}
	// Each minute without a tempfail adds 10; at 60 it is free again.
	for _, want := range []float64{20, 30, 40, 50} {
		now = now.Add(time.Minute)
		f.setNow(now)
		if s := th.Snapshot(); len(s) != 1 || s[0].Rate != want {
			t.Fatalf("recovering: %+v, want rate %v", s, want)
		}
	}
	th.Observe("google.com", "acme", Success, now, "")
	now = now.Add(time.Minute)
	f.setNow(now)
	if th.Snapshot(); th.Active() || admitted(th, "google.com", "acme", 100) != 100 {
		t.Errorf("still throttled at the maximum rate: %+v", th.Snapshot())
	}
}

// TestThrottleTempfailResetsRecovery: a tempfail during recovery restarts
// the clock of the next increase.
func TestThrottleTempfailResetsRecovery(t *testing.T) {
	f := newFixture(t, "")
	th := f.policy.Throttle
	now := f.clock()
	th.Observe("yahoodns.net", "", RateLimited, now, "421 4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume")
	start := th.Snapshot()[0].Rate
	if start != 1 { // one attempt a minute, halved, at least min_rate
		t.Fatalf("rate after a first rate limit: %v", start)
	}
	now = now.Add(50 * time.Second)
	f.setNow(now)
	th.Observe("yahoodns.net", "", Tempfail, now, "451 try later")
	now = now.Add(50 * time.Second)
	f.setNow(now)
	if r := th.Snapshot()[0].Rate; r != start {
		t.Errorf("rate increased 50s after a tempfail: %v", r)
	}
	now = now.Add(10 * time.Second)
	f.setNow(now)
	if r := th.Snapshot()[0].Rate; r != start+10 {
		t.Errorf("rate a minute after the last tempfail: %v, want %v", r, start+10)
	}
}

// TestThrottleRestoreRecovers: a rate limit saved and restored after a
// while has recovered for the time that passed meanwhile.
func TestThrottleRestoreRecovers(t *testing.T) {
	f := newFixture(t, "")
	th := f.policy.Throttle
	now := f.clock()
	th.Observe("yahoodns.net", "", RateLimited, now, "421 4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume")
	snap := th.Snapshot()
	if len(snap) != 1 || snap[0].Rate != 1 {
		t.Fatalf("snapshot: %+v", snap)
	}
	// Restarted 3 minutes later: three increases of 10 are due.
	f.setNow(now.Add(3 * time.Minute))
	th2 := NewThrottler(th.Config, f.clock)
	th2.Restore(snap)
	if s := th2.Snapshot(); len(s) != 1 || s[0].Rate != 31 {
		t.Errorf("restored 3 minutes later: %+v, want rate 31", s)
	}
	// An hour later it is healthy again (max_rate 60).
	f.setNow(now.Add(time.Hour))
	th3 := NewThrottler(th.Config, f.clock)
	th3.Restore(snap)
	if s := th3.Snapshot(); len(s) != 0 {
		t.Errorf("restored an hour later: %+v, want no limit", s)
	}
}

// TestThrottleBlocklist: a blocklist reply suspends the scope that got
// it, at that destination only, and the suspension lapses.
func TestThrottleBlocklist(t *testing.T) {
	f := newFixture(t, "")
	th := f.policy.Throttle
	now := f.clock()
	th.Observe("outlook.com", "acme", Blocklisted, now, "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus")
	v := th.Admit("outlook.com", "acme")
	if v.OK || !v.Suspend || !v.Retry.Equal(now.Add(time.Hour)) {
		t.Errorf("acme at outlook.com: %+v", v)
	}
	if !th.Admit("outlook.com", "globex").OK || !th.Admit("google.com", "acme").OK {
		t.Error("the suspension spread to another scope or destination")
	}
	text := deferText("outlook.com", v)
	if !strings.Contains(text, "outlook.com") || !strings.Contains(text, "try again after") || strings.Contains(text, "192.0.2.1") {
		t.Errorf("defer text %q: want the destination and retry time, not the remote's reply", text)
	}
	snap := th.Snapshot()
	if len(snap) != 1 || snap[0].Scope != "acme" || snap[0].State != store.ThrottleSuspended {
		t.Errorf("snapshot: %+v", snap)
	}
	// Saved and restored (a restart).
	th2 := NewThrottler(th.Config, f.clock)
	th2.Restore(snap)
	if th2.Admit("outlook.com", "acme").OK {
		t.Error("the suspension did not survive a restore")
	}
	f.setNow(now.Add(time.Hour))
	if !th.Admit("outlook.com", "acme").OK || th.Active() {
		t.Error("the suspension did not lapse")
	}
}

// TestThrottleDisabled: with throttling off, nothing is observed.
func TestThrottleDisabled(t *testing.T) {
	f := newFixture(t, "")
	th := NewThrottler(func() *conf.Throttle { c := f.cfg.Load().Policy.Throttle; c.Enabled = false; return &c }, f.clock)
	th.Observe("google.com", "acme", RateLimited, f.clock(), "rate limited")
	if th.Active() || !th.Admit("google.com", "acme").OK {
		t.Error("throttled while disabled")
	}
}

// TestClassify reads the texts of real receivers.
func TestClassify(t *testing.T) {
	th := &newFixture(t, "").cfg.Load().Policy.Throttle
	for _, c := range []struct {
		status, dsn, reply, text string
		want                     Outcome
	}{
		{"sent", "2.0.0", "", "250 2.0.0 OK", Success},
		{"deferred", "4.7.28", "421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address.", "", RateLimited},
		{"deferred", "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", "", RateLimited},
		{"deferred", "4.7.650", "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", "", RateLimited},
		{"deferred", "4.3.0", "451 4.3.0 Temporary system failure", "", Tempfail},
		{"deferred", "4.4.1", "", "connect to mx.example[192.0.2.9]:25: Connection timed out", Tempfail},
		{"deferred", "4.2.2", "452-4.2.2 The email account that you tried to reach is over quota.", "", Neutral},
		{"deferred", "4.2.1", "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages", "", Neutral},
		{"bounced", "5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "", Blocklisted},
		{"bounced", "5.7.1", "550 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list", "", Blocklisted},
		{"deferred", "4.7.1", "451 4.7.1 Client host rejected: 192.0.2.1 is listed on b.barracudacentral.org", "", Blocklisted},
		{"bounced", "5.1.1", "550 5.1.1 user unknown", "", Neutral},
		// An unknown user in a blocklist's words (Lotus Domino): the
		// address, not the sender.
		{"bounced", "5.1.1", "550 5.1.1 User not listed in public Name & Address Book", "", Neutral},
		// Greylisting asks to try again later: a tempfail, no rate limit.
		{"deferred", "4.7.1", "450 4.7.1 <a@dest.example>: Recipient address rejected: Greylisted, please try again later", "", Tempfail},
	} {
		r := postfixlog.Record{Status: c.status, DSN: c.dsn, Reply: c.reply, Text: c.text}
		if got := Classify(th, r); got != c.want {
			t.Errorf("%s %s %q%q: %v, want %v", c.status, c.dsn, c.reply, c.text, got, c.want)
		}
	}
}
