package conf

import (
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
}

// ScopeBounce holds a scope's bounce-pipe settings.
type ScopeBounce struct{}

func defaultBounce() Bounce {
	return Bounce{
		Domain:            "bounces.example.test",
		VERPPrefix:        "b",
		UnsubscribePrefix: "unsubscribe",
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
}

func (sb *ScopeBounce) complete(key string, sc *Scope, l *errorList) {}
