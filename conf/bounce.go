package conf

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/token"
)

// Bounce configures the bounce domain and the bounce pipe.
type Bounce struct {
	// Domain receives bounces (VERP envelope senders), complaint reports
	// and mail to the List-Unsubscribe mailto address. Its MX must be this
	// Postfix, and transport_maps must route it to `senderkit bouncepipe`.
	// Default "bounces.example.test", which only suits a test.
	Domain string `toml:"domain"`
	// VERPPrefix starts the local part of the envelope sender,
	// "<prefix>+<token>@<domain>"; at most 15 characters. Default "b".
	VERPPrefix string `toml:"verp_prefix"`
	// UnsubscribePrefix starts the local part of the List-Unsubscribe
	// mailto address, "<prefix>+<token>@<domain>". Default "unsubscribe".
	UnsubscribePrefix string `toml:"unsubscribe_prefix"`
	// ForwardTo is the role address that receives, intact, what reaches
	// the bounce domain and is meant for a person: replies to the
	// envelope sender, a feedback provider's administrative mail (what
	// cannot be read goes to quarantine_dir instead). It must not be on
	// the bounce domain.
	// Default "postmaster@localhost".
	ForwardTo string `toml:"forward_to"`
	// ForwardRelay is the SMTP server ("IP:PORT") that forwarded mail is
	// handed to: this Postfix's own smtpd. Default "127.0.0.1:25".
	ForwardRelay string `toml:"forward_relay"`
	// QuarantineDir keeps messages the bounce pipe could not read, with
	// a note saying why; relative to state_dir. Default "quarantine".
	QuarantineDir string `toml:"quarantine_dir"`
	// FeedbackLoops are the complaint feedback loops this domain has
	// signed up for. Give each its own address, as RFC 6449 §3.2
	// advises, so every complaint is recorded with the loop it came from.
	// Default none.
	FeedbackLoops []FeedbackLoop `toml:"feedback_loop"`
}

// FeedbackLoop is one mailbox provider's complaint feedback loop.
type FeedbackLoop struct {
	// Address is the local part, on the bounce domain, that the
	// provider sends its reports to ("fbl-yahoo"). Required.
	Address string `toml:"address"`
	// Provider names the provider in events and reports ("Yahoo").
	// Required.
	Provider string `toml:"provider"`
}

// Unsubscribe and complaint coverage.
const (
	CoverScope  = "scope"
	CoverStream = "stream"
)

// ScopeBounce holds a scope's rules for returned mail.
type ScopeBounce struct {
	// UnsubscribeCovers is what an unsubscribe (one-click or by mail)
	// stops: "scope", all mail of this scope (the BCP's default: "remove
	// me from all mail"), or "stream", the stream the message came from.
	// Default "scope".
	UnsubscribeCovers string `toml:"unsubscribe_covers"`
	// SoftBounces overrides suppression.soft_bounces for this scope;
	// 0 keeps the global value. Default 0.
	SoftBounces int `toml:"soft_bounces"`
	// SoftSpan overrides suppression.soft_span for this scope; "0s"
	// keeps the global value. Default "0s".
	SoftSpan Duration `toml:"soft_span"`
}

func defaultBounce() Bounce {
	return Bounce{
		Domain:            "bounces.example.test",
		VERPPrefix:        "b",
		UnsubscribePrefix: "unsubscribe",
		ForwardTo:         "postmaster@localhost",
		ForwardRelay:      "127.0.0.1:25",
		QuarantineDir:     "quarantine",
	}
}

func (b *Bounce) complete(l *errorList) {
	if d, err := addr.NormalizeDomain(b.Domain); err != nil {
		l.add("bounce.domain", "%v", err)
	} else {
		b.Domain = d
	}
	if err := token.CheckPrefix(b.VERPPrefix); err != nil {
		l.add("bounce.verp_prefix", "%v", err)
	}
	if err := token.CheckPrefix(b.UnsubscribePrefix); err != nil {
		l.add("bounce.unsubscribe_prefix", "%v", err)
	}
	if strings.EqualFold(b.VERPPrefix, b.UnsubscribePrefix) {
		l.add("bounce.unsubscribe_prefix", "must differ from verp_prefix %q: a bounce must not read as an unsubscribe", b.VERPPrefix)
	}
	if a, err := addr.Normalize(b.ForwardTo, addr.Options{}); err != nil {
		l.add("bounce.forward_to", "%v", err)
	} else if addr.Domain(a) == b.Domain {
		l.add("bounce.forward_to", "%s is on the bounce domain: forwarded mail would come back to the bounce pipe", a)
	} else {
		b.ForwardTo = a
	}
	if _, err := netip.ParseAddrPort(b.ForwardRelay); err != nil {
		l.add("bounce.forward_relay", "%q: want IP:PORT", b.ForwardRelay)
	}
	if b.QuarantineDir == "" {
		l.add("bounce.quarantine_dir", "must not be empty")
	}
	seen := map[string]bool{}
	for i := range b.FeedbackLoops {
		fl := &b.FeedbackLoops[i]
		key := fmt.Sprintf("bounce.feedback_loop[%d]", i)
		fl.Address = strings.ToLower(strings.TrimSpace(fl.Address))
		if fl.Address == "" || strings.ContainsAny(fl.Address, "@+ \t") {
			l.add(key+".address", "%q: want a local part without '@' or '+' (\"fbl-yahoo\")", fl.Address)
		}
		if strings.EqualFold(fl.Address, b.VERPPrefix) || strings.EqualFold(fl.Address, b.UnsubscribePrefix) {
			l.add(key+".address", "%q is already the VERP or unsubscribe prefix", fl.Address)
		}
		if seen[fl.Address] {
			l.add(key+".address", "%q is given twice", fl.Address)
		}
		seen[fl.Address] = true
		if strings.TrimSpace(fl.Provider) == "" {
			l.add(key+".provider", "name the provider (\"Yahoo\")")
		}
	}
}

// FeedbackLoop returns the feedback loop whose address is the local part
// local, or nil.
func (b *Bounce) FeedbackLoop(local string) *FeedbackLoop {
	for i := range b.FeedbackLoops {
		if strings.EqualFold(b.FeedbackLoops[i].Address, local) {
			return &b.FeedbackLoops[i]
		}
	}
	return nil
}

func (sb *ScopeBounce) complete(key string, sc *Scope, l *errorList) {
	switch sb.UnsubscribeCovers {
	case "":
		sb.UnsubscribeCovers = CoverScope
	case CoverScope, CoverStream:
	default:
		l.add(key+".unsubscribe_covers", "%q: want \"scope\" or \"stream\"", sb.UnsubscribeCovers)
	}
	if sb.SoftBounces < 0 {
		l.add(key+".soft_bounces", "must not be negative")
	}
	if sb.SoftSpan < 0 {
		l.add(key+".soft_span", "must not be negative")
	}
}

// SoftRule returns the scope's soft-bounce thresholds: its own where
// set, the global ones otherwise.
func (c *Config) SoftRule(sc *Scope) (bounces int, span Duration) {
	bounces, span = c.Suppression.SoftBounces, c.Suppression.SoftSpan
	if sc != nil && sc.SoftBounces > 0 {
		bounces = sc.SoftBounces
	}
	if sc != nil && sc.SoftSpan > 0 {
		span = sc.SoftSpan
	}
	return bounces, span
}
