// Package rules turns what happened to a delivered copy into an event and
// a change of the suppression list, as the M3AAWG Sender BCP (v3 §3.8)
// and RFC 6449 ask, and as the configuration tunes. The bounce pipe, the
// unsubscribe endpoint and the log follower all go through here, so that
// one unsubscribe behaves the same by mail and by web.
//
// Every function records exactly one event, with the evidence the caller
// put in it, and the change it implies, in one transaction (store.Record);
// an event whose Key was recorded before changes nothing and returns
// store.ErrDuplicate.
package rules

import (
	"context"
	"strings"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
)

// Rules applies the configuration's rules to the store.
type Rules struct {
	Store  store.Store
	Config *conf.Config
}

// scope returns the configured scope of ev, or nil when the scope is no
// longer configured (its defaults then apply).
func (r Rules) scope(ev store.Event) *conf.Scope { return r.Config.Scope(ev.Scope) }

// transactional reports whether ev's stream is configured transactional.
func (r Rules) transactional(ev store.Event) bool {
	sc := r.scope(ev)
	if sc == nil || ev.Stream == "" {
		return false
	}
	st := sc.Stream(ev.Stream)
	return st != nil && st.Kind == conf.Transactional
}

// Bounce records a failed delivery of ev.Address. A failure that blames
// the sender (a blocklisted IP, content, policy, authentication) is
// recorded as a sender problem and never held against the recipient; a
// hard failure ("user unknown", 5.1.1, 5.1.2, null MX) suppresses at
// once; any other counts toward the recipient's soft-bounce streak, which
// suppresses, for a while, after enough bounces over enough days.
func (r Rules) Bounce(ctx context.Context, ev store.Event, senderProblem bool) (store.Result, error) {
	if senderProblem {
		ev.Type = store.SenderProblem
		return r.Store.Record(ctx, ev, store.Change{})
	}
	ev.Type = store.Bounced
	if ev.Hard {
		return r.Store.Record(ctx, ev, store.Change{Op: store.Suppress, Scope: ev.Scope, Address: ev.Address, Reason: store.HardBounce})
	}
	if ev.SendID == 0 {
		// A soft bounce counts per send; without one it is only history.
		return r.Store.Record(ctx, ev, store.Change{})
	}
	n, span := r.Config.SoftRule(r.scope(ev))
	return r.Store.Record(ctx, ev, store.Change{
		Op: store.CountSoftBounce, Scope: ev.Scope, Address: ev.Address,
		MinBounces: n, MinSpan: span.D(),
		TTL: r.Config.Suppression.SoftExpiry.D(), MaxTTL: r.Config.Suppression.SoftExpiryMax.D(),
	})
}

// Delivered records a delivery, which ends the recipient's soft-bounce
// streak.
func (r Rules) Delivered(ctx context.Context, ev store.Event) (store.Result, error) {
	ev.Type = store.Delivered
	return r.Store.Record(ctx, ev, store.Change{Op: store.ResetStreak, Scope: ev.Scope, Address: ev.Address})
}

// Unsubscribe records a request to stop mail (the one-click POST, mail to
// the List-Unsubscribe mailto address, an ARF opt-out report) and
// suppresses the address for the whole scope, or for the stream when the
// scope's unsubscribe_covers says so. It takes effect at once (M3AAWG
// Sender BCP v3 §2.3).
func (r Rules) Unsubscribe(ctx context.Context, ev store.Event) (store.Result, error) {
	ev.Type = store.Unsubscribed
	ch := store.Change{Op: store.Suppress, Scope: ev.Scope, Address: ev.Address, Reason: store.Unsubscribe}
	if sc := r.scope(ev); sc != nil && sc.UnsubscribeCovers == conf.CoverStream {
		ch.Stream = ev.Stream
	}
	return r.Store.Record(ctx, ev, ch)
}

// Complaint records a complaint (an ARF report, RFC 5965). By its
// Feedback-Type (§3.1 and RFC 6650 §3):
//   - abuse, fraud, virus, other and unknown types: the recipient does not
//     want this mail; like an unsubscribe for the whole scope, never
//     across scopes (RFC 6449 §4.3), except that streams configured as
//     transactional are exempt;
//   - opt-out: an unsubscribe;
//   - not-spam: the recipient rescued the mail; recorded only;
//   - auth-failure: our authentication failed at the receiver (RFC 6591):
//     a sender problem, not the recipient's doing.
func (r Rules) Complaint(ctx context.Context, ev store.Event) (store.Result, error) {
	switch strings.ToLower(ev.FeedbackType) {
	case "opt-out":
		return r.Unsubscribe(ctx, ev)
	case "not-spam":
		ev.Type = store.Complaint
		return r.Store.Record(ctx, ev, store.Change{})
	case "auth-failure":
		ev.Type = store.SenderProblem
		return r.Store.Record(ctx, ev, store.Change{})
	}
	ev.Type = store.Complaint
	if r.transactional(ev) {
		return r.Store.Record(ctx, ev, store.Change{})
	}
	return r.Store.Record(ctx, ev, store.Change{Op: store.Suppress, Scope: ev.Scope, Address: ev.Address, Reason: store.Complained})
}

// Note records ev as history only: a delayed delivery, an auto-reply, a
// report whose token did not verify.
func (r Rules) Note(ctx context.Context, ev store.Event) (store.Result, error) {
	return r.Store.Record(ctx, ev, store.Change{})
}
