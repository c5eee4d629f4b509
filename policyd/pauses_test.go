package policyd

import (
	"context"
	"testing"

	"github.com/senderkit/senderkit/internal/store"
)

// A paused scope's bulk mail is deferred at RCPT with the reason; its
// transactional stream (chosen by sender) and other scopes pass, until
// pause_transactional says otherwise or the scope is resumed.
func TestDecidePaused(t *testing.T) {
	f := newFixture(t, `
[[scope]]
name = "umbrella"
sender_domains = ["umbrella.example"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
  senders = ["billing@umbrella.example"]
`)
	ctx := context.Background()
	umbrella := f.cfg.Load().Scope("umbrella")
	if _, err := f.store.Record(ctx, store.Event{At: t0, Type: store.Paused, Scope: "umbrella", Reason: "complaint-rate",
		Diagnostic: "complaint rate 0.52 % (13 of 2500 delivered copies sent in the last 24h) is above 0.30 %", Source: "vetting"},
		store.Change{Op: store.PauseScope, Scope: "umbrella"}); err != nil {
		t.Fatal(err)
	}
	f.policy.Pauses = &Pauses{}
	if got := f.policy.Decide(ctx, rcpt("news@umbrella.example", "a@dest.example")); got != "DUNNO" {
		t.Errorf("before the pauses are read: %q", got)
	}
	if err := f.policy.Pauses.Refresh(ctx, f.store); err != nil {
		t.Fatal(err)
	}
	const deferred = "DEFER_IF_PERMIT 4.7.1 mail from umbrella is paused since 2026-11-02 09:30 UTC: complaint rate 0.52 % (13 of 2500 delivered copies sent in the last 24h) is above 0.30 %; its administrator must resume it"
	for _, c := range []struct{ sender, want string }{
		{"news@umbrella.example", deferred},
		{"billing@umbrella.example", "DUNNO"}, // transactional: receipts
		{"news@acme.example", "DUNNO"},
	} {
		if got := f.policy.Decide(ctx, rcpt(c.sender, "a@dest.example")); got != c.want {
			t.Errorf("%s: %q; want %q", c.sender, got, c.want)
		}
	}
	umbrella.Vetting.PauseTransactional = true
	if got := f.policy.Decide(ctx, rcpt("billing@umbrella.example", "a@dest.example")); got != deferred {
		t.Errorf("transactional with pause_transactional: %q", got)
	}
	if _, err := f.store.Record(ctx, store.Event{At: t0, Type: store.Resumed, Scope: "umbrella", Source: "cli"},
		store.Change{Op: store.ResumeScope, Scope: "umbrella"}); err != nil {
		t.Fatal(err)
	}
	f.policy.Pauses.Refresh(ctx, f.store)
	if got := f.policy.Decide(ctx, rcpt("news@umbrella.example", "a@dest.example")); got != "DUNNO" {
		t.Errorf("after resume: %q", got)
	}
}
