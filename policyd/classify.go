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
	if t.IsBlocklist(text) {
		return Blocklisted
	}
	// RFC 3463 §3.2, §3.3: X.1.* and X.2.* are about one address or
	// mailbox (over quota, a per-user rate): not the destination's state.
	_, rest, _ := strings.Cut(r.DSN, ".")
	subject, _, _ := strings.Cut(rest, ".")
	mailboxLevel := subject == "1" || subject == "2"
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

// hardStatus reports whether an enhanced status code alone makes a
// failure hard: the design's "user unknown (5.1.1), 5.1.2, null MX
// (5.1.10, RFC 7505 §4.2)", and 5.1.3 (bad address syntax). Anything
// else counts toward the soft-bounce streak.
func hardStatus(dsn string) bool {
	switch dsn {
	case "5.1.1", "5.1.2", "5.1.3", "5.1.10":
		return true
	}
	return false
}

// reasonOf names a logged failure as Sisimai does, from its enhanced
// status code.
func reasonOf(o Outcome, dsn string) string {
	switch {
	case o == Blocklisted:
		return "blocked"
	case o == RateLimited:
		return "toomanyconn"
	case dsn == "5.1.1" || dsn == "5.1.3":
		return "userunknown"
	case dsn == "5.1.2":
		return "hostunknown"
	case dsn == "5.1.10":
		return "notaccept"
	case strings.HasPrefix(dsn, "4.2.2") || dsn == "5.2.2":
		return "mailboxfull"
	case strings.HasSuffix(dsn, ".4.7"):
		return "expired"
	}
	return "undefined"
}
