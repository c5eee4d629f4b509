package conf

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/senderkit/senderkit/internal/addr"
)

// Check configures `senderkit check --dns`, the DNS and compliance
// doctor.
type Check struct {
	// SendingAddresses are the public IP addresses this Postfix sends
	// from, as receivers see them: its smtp_bind_address (or
	// smtp_bind_address6), or the machine's public address behind NAT.
	// SPF at the bounce domain must allow each one, and each needs a PTR
	// record naming a host that resolves back to it (M3AAWG Sender BCP
	// v3 §3.3). check --dns reports a failure while it is empty.
	// Default none.
	SendingAddresses []string `toml:"sending_addresses"`
	// HELOName is the name this Postfix announces in EHLO (Postfix's
	// smtp_helo_name, which defaults to myhostname). "" asks Postfix:
	// `postconf -xh smtp_helo_name`, else the machine's host name.
	// Default "".
	HELOName string `toml:"helo_name"`
	// InboundAddresses are the IP addresses at which this Postfix
	// receives mail from the Internet: the bounce domain's MX hosts must
	// resolve to them. Default none, which means the sending addresses.
	InboundAddresses []string `toml:"inbound_addresses"`
	// FromDomains are From domains to check (DKIM key, DMARC record and
	// alignment) besides the scopes' sender_domains and the domains the
	// SigningTable names: list the domains of scopes chosen by SASL login
	// or client address here. Default none.
	FromDomains []string `toml:"from_domains"`
	// Resolver is the DNS server the doctor asks, a recursive resolver
	// as "IP" or "IP:PORT" (port 53 by default). "" uses the nameservers
	// of /etc/resolv.conf. Default "".
	Resolver string `toml:"resolver"`
	// Timeout bounds each DNS query and the HTTPS request to the
	// unsubscribe URL. Default "5s".
	Timeout Duration `toml:"timeout"`

	sending, inbound []netip.Addr
	resolver         string
}

func defaultCheck() Check { return Check{Timeout: Duration(5 * time.Second)} }

func (c *Check) complete(l *errorList) {
	c.sending = checkAddrs("check.sending_addresses", c.SendingAddresses, l)
	c.inbound = checkAddrs("check.inbound_addresses", c.InboundAddresses, l)
	if c.HELOName != "" {
		if d, err := addr.NormalizeDomain(c.HELOName); err != nil {
			l.add("check.helo_name", "%v", err)
		} else if !strings.Contains(d, ".") {
			l.add("check.helo_name", "%q is not a fully qualified domain name", c.HELOName)
		} else {
			c.HELOName = d
		}
	}
	for i, d := range c.FromDomains {
		n, err := addr.NormalizeDomain(d)
		if err != nil {
			l.add(fmt.Sprintf("check.from_domains[%d]", i), "%v", err)
			continue
		}
		c.FromDomains[i] = n
	}
	c.resolver = ""
	if c.Resolver != "" {
		r, err := resolverAddr(c.Resolver)
		if err != nil {
			l.add("check.resolver", "%v", err)
		}
		c.resolver = r
	}
	if d := c.Timeout.D(); d < 100*time.Millisecond || d > 5*time.Minute {
		l.add("check.timeout", "%v is outside 100ms to 5m", d)
	}
}

// checkAddrs parses a list of IP addresses.
func checkAddrs(key string, ss []string, l *errorList) []netip.Addr {
	var out []netip.Addr
	for i, s := range ss {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			l.add(fmt.Sprintf("%s[%d]", key, i), "%q is not an IP address", s)
			continue
		}
		if a = a.Unmap(); a.IsUnspecified() {
			l.add(fmt.Sprintf("%s[%d]", key, i), "%q is not the address of a host", s)
			continue
		}
		out = append(out, a)
	}
	return out
}

// resolverAddr reads "IP" or "IP:PORT" into "IP:PORT".
func resolverAddr(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return net.JoinHostPort(a.String(), "53"), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return ap.String(), nil
	}
	return "", fmt.Errorf("%q: want an IP address or IP:PORT", s)
}

// Sending returns check.sending_addresses, parsed.
func (c *Check) Sending() []netip.Addr { return c.sending }

// Inbound returns the addresses the bounce domain's MX must reach:
// check.inbound_addresses, or the sending addresses when it is empty.
func (c *Check) Inbound() []netip.Addr {
	if len(c.inbound) > 0 {
		return c.inbound
	}
	return c.sending
}

// ResolverAddr returns check.resolver as "IP:PORT", "" for the
// system's resolvers.
func (c *Check) ResolverAddr() string { return c.resolver }
