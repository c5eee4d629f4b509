package policyd

import (
	"strings"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlog"
)

// Outcome is what one delivery attempt says about its destination's
// health.
type Outcome int

// Outcomes.
const (
	// Neutral: nothing about the destination (a recipient-level failure
	// such as "user unknown" or "mailbox full").
	Neutral Outcome = iota
	// Success: the destination took the mail.
	Success
	// Tempfail: a temporary failure of the destination (4xx, or no
	// answer at all).
	Tempfail
	// RateLimited: the destination said we send too fast.
	RateLimited
	// Blocklisted: the destination refuses us because of a blocklist
	// listing: it blames the sender (M3AAWG Sender BCP v3 §3.8).
	Blocklisted
)

var outcomeNames = [...]string{"neutral", "success", "tempfail", "rate-limited", "blocklisted"}

func (o Outcome) String() string { return outcomeNames[o] }

// Classify reads a delivery line. The remote's reply is preferred to
// Postfix's own text when there is one.
func Classify(t *conf.Throttle, r postfixlog.Record) Outcome {
	if r.Status == postfixlog.Sent {
		return Success
	}
	text := r.Reply
	if text == "" {
		text = r.Text
	}
	// RFC 3463 §3.2, §3.3: X.1.* and X.2.* are about one address or
	// mailbox (over quota, a per-user rate): not the destination's state,
	// whatever words the reply uses ("User not listed in public Name &
	// Address Book" is Domino's unknown user, not a blocklist).
	_, rest, _ := strings.Cut(r.DSN, ".")
	subject, _, _ := strings.Cut(rest, ".")
	mailboxLevel := subject == "1" || subject == "2"
	if !mailboxLevel && t.IsBlocklist(text) {
		return Blocklisted
	}
	switch r.Status {
	case postfixlog.Deferred:
		if mailboxLevel {
			return Neutral
		}
		if t.IsRateLimit(text) {
			return RateLimited
		}
		return Tempfail
	case postfixlog.Bounced, postfixlog.Expired:
		if !mailboxLevel && t.IsRateLimit(text) {
			return RateLimited
		}
	}
	return Neutral
}
