package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver asks recursive DNS servers, over UDP with EDNS0 and over TCP
// when an answer is truncated, and nothing else: the doctor never
// consults the system's resolver library, so what it reports is what
// the configured server says, and tests can point it at a server on
// loopback. Its methods follow net.Resolver's, so that it can serve
// blitiri.com.ar/go/spf: a name that does not exist, or has no record of
// the type asked, gives a *net.DNSError with IsNotFound; a server that
// fails or does not answer gives one with IsTemporary or IsTimeout.
type Resolver struct {
	// Servers are "IP:PORT", asked in turn until one answers.
	Servers []string
	// Timeout bounds each exchange; default 5s.
	Timeout time.Duration
}

// NewResolver returns a resolver asking server ("IP:PORT"), or, when
// server is "", the nameservers of /etc/resolv.conf.
func NewResolver(server string, timeout time.Duration) (*Resolver, error) {
	if server != "" {
		return &Resolver{Servers: []string{server}, Timeout: timeout}, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("doctor: no DNS server: %w", err)
	}
	if len(cc.Servers) == 0 {
		return nil, errors.New("doctor: no DNS server: /etc/resolv.conf lists no nameserver")
	}
	r := &Resolver{Timeout: timeout}
	for _, s := range cc.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cc.Port))
	}
	return r, nil
}

// ednsSize is the UDP payload size we advertise (the DNS flag day 2020
// value): large enough for a 2048-bit DKIM key, small enough not to be
// fragmented.
const ednsSize = 1232

// maxCNAME bounds how many aliases an answer may chain.
const maxCNAME = 8

// query asks for name's records of type qtype and returns those of the
// answer section that belong to name or to the aliases it leads to.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	fqdn := dns.Fqdn(strings.ToLower(name))
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return nil, &net.DNSError{Err: "not a domain name", Name: name}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(ednsSize, false)
	var in *dns.Msg
	var server string
	var err error
	if len(r.Servers) == 0 {
		return nil, &net.DNSError{Err: "no DNS server configured", Name: name, IsTemporary: true}
	}
	for _, server = range r.Servers {
		c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsSize}
		in, _, err = c.ExchangeContext(ctx, m, server)
		if err == nil && in.Truncated {
			// RFC 7766 §5: a truncated answer is asked again over TCP.
			c.Net = "tcp"
			in, _, err = c.ExchangeContext(ctx, m, server)
		}
		if err == nil && in.Rcode != dns.RcodeServerFailure && in.Rcode != dns.RcodeRefused {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		var ne net.Error
		timedOut := errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
		return nil, &net.DNSError{Err: err.Error(), Name: name, Server: server, IsTimeout: timedOut, IsTemporary: true}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, &net.DNSError{Err: "no such host", Name: name, Server: server, IsNotFound: true}
	default:
		return nil, &net.DNSError{Err: "server answered " + dns.RcodeToString[in.Rcode], Name: name, Server: server,
			IsTemporary: in.Rcode == dns.RcodeServerFailure}
	}
	// Follow the alias chain the server gave (RFC 1034 §3.6.2).
	owner := fqdn
	for range maxCNAME {
		next := ""
		for _, rr := range in.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, owner) && qtype != dns.TypeCNAME {
				next = strings.ToLower(c.Target)
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	var out []dns.RR
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, owner) {
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		// NODATA (RFC 2308 §2.2): the name exists, not this type.
		return nil, &net.DNSError{Err: "no " + dns.TypeToString[qtype] + " record", Name: name, Server: server, IsNotFound: true}
	}
	return out, nil
}

// LookupTXT returns name's TXT records, each one's character-strings
// joined without separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns name's MX records by preference. A null MX (RFC 7505)
// is one record whose Host is ".".
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: strings.ToLower(mx.Mx), Pref: mx.Preference})
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupNetIP returns host's addresses: A and AAAA records. It fails
// with IsNotFound only when the host has neither.
func (r *Resolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	var out []netip.Addr
	var firstErr error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, host, t)
		if err != nil {
			if !isNotFound(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, rr := range rrs {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &net.DNSError{Err: "no A or AAAA record", Name: host, IsNotFound: true}
}

// LookupIPAddr is LookupNetIP in net.Resolver's form.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	as, err := r.LookupNetIP(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]net.IPAddr, len(as))
	for i, a := range as {
		out[i] = net.IPAddr{IP: a.AsSlice()}
	}
	return out, nil
}

// LookupAddr returns the names the PTR records of address addr give,
// with their final dot.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr}
	}
	rrs, err := r.query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ToLower(rr.(*dns.PTR).Ptr))
	}
	return out, nil
}

// isNotFound reports whether err says a name or record does not exist.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
