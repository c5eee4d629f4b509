package conf

import (
	"net/netip"
	"strings"

	"github.com/senderkit/senderkit/internal/addr"
)

// Envelope is what scope and stream selection look at.
type Envelope struct {
	SASLUser string     // the SASL login name, "" when none
	Sender   string     // the envelope sender as given; "" for the null sender
	Client   netip.Addr // the SMTP client's address
	Daemon   string     // the submission service: the milter's {daemon_name} (milter_macro_daemon_name), the policy request's policy_context
}

// ScopeFor returns the first scope that e matches (by SASL login,
// sender domain or client address), or nil.
func (c *Config) ScopeFor(e Envelope) *Scope {
	domain := ""
	if e.Sender != "" {
		if d, err := addr.NormalizeDomain(addr.Domain(e.Sender)); err == nil {
			domain = d
		}
	}
	client := e.Client.Unmap()
	for i := range c.Scopes {
		sc := &c.Scopes[i]
		if e.SASLUser != "" && sc.saslUsers[e.SASLUser] {
			return sc
		}
		if domain != "" && sc.senderDomains[domain] {
			return sc
		}
		if client.IsValid() {
			for _, p := range sc.clients {
				if p.Contains(client) {
					return sc
				}
			}
		}
	}
	return nil
}

// Scope returns the scope with the given name, or nil.
func (c *Config) Scope(name string) *Scope {
	for i := range c.Scopes {
		if c.Scopes[i].Name == name {
			return &c.Scopes[i]
		}
	}
	return nil
}

// Stream returns the stream with the given name (compared
// case-insensitively, as applications write headers by hand), or nil.
func (sc *Scope) Stream(name string) *Stream {
	for i := range sc.Streams {
		if strings.EqualFold(sc.Streams[i].Name, name) {
			return &sc.Streams[i]
		}
	}
	return nil
}

// StreamFor picks the stream of a message: the one the stream header
// names, else the one whose daemon_names include daemon, else the one
// whose senders include the envelope sender (or its "*@domain"), else
// the default stream. It never returns nil. known is false when header
// named a stream this scope does not have (the caller may want to log it).
func (sc *Scope) StreamFor(header, daemon, sender string) (st *Stream, known bool) {
	header = strings.TrimSpace(header)
	if header != "" {
		if st := sc.Stream(header); st != nil {
			return st, true
		}
	}
	known = header == ""
	if daemon != "" {
		for i := range sc.Streams {
			for _, d := range sc.Streams[i].DaemonNames {
				if d == daemon {
					return &sc.Streams[i], known
				}
			}
		}
	}
	if sender != "" {
		if n, err := addr.Normalize(sender, addr.Options{}); err == nil {
			dom := addr.DomainPattern(n)
			for i := range sc.Streams {
				if s := sc.Streams[i].senders; s[n] || s[dom] {
					return &sc.Streams[i], known
				}
			}
		}
	}
	return sc.Stream(sc.DefaultStream), known
}

// IsBulk reports whether the stream is bulk mail.
func (st *Stream) IsBulk() bool { return st.Kind == Bulk }
