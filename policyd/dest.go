package policyd

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"
)

// MX is one mail exchanger of a domain.
type MX struct {
	Host string // without the final dot
	Pref uint16
}

// Resolver looks up a domain's MX records. A domain that does not exist
// or has no MX records gives no records and no error.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) (mxs []MX, ttl time.Duration, err error)
}

// DNSResolver asks one DNS server (a recursive resolver), over UDP and
// over TCP when the answer is truncated.
type DNSResolver struct {
	// Server is "IP:PORT"; "" means the first nameserver of
	// /etc/resolv.conf.
	Server  string
	Timeout time.Duration // per query; default 2s
}

// LookupMX implements Resolver.
func (r *DNSResolver) LookupMX(ctx context.Context, domain string) ([]MX, time.Duration, error) {
	server := r.Server
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return nil, 0, fmt.Errorf("policyd: no DNS server: /etc/resolv.conf: %v", err)
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(domain), dns.TypeMX)
	c := &dns.Client{Timeout: timeout}
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("policyd: MX %s at %s: %w", domain, server, err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, 0, fmt.Errorf("policyd: MX %s at %s: %s", domain, server, dns.RcodeToString[in.Rcode])
	}
	var mxs []MX
	ttl := time.Duration(0)
	for _, rr := range in.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, MX{Host: strings.TrimSuffix(strings.ToLower(mx.Mx), "."), Pref: mx.Preference})
			if t := time.Duration(mx.Hdr.Ttl) * time.Second; ttl == 0 || t < ttl {
				ttl = t
			}
		}
	}
	if len(mxs) == 0 {
		// RFC 2308 §5: a negative answer lives as long as the SOA's minimum.
		for _, rr := range in.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = time.Duration(min(soa.Minttl, soa.Hdr.Ttl)) * time.Second
			}
		}
	}
	return mxs, ttl, nil
}

// Grouper maps a recipient domain to its destination: the domains an
// administrator grouped by name (Static), else the registered domain
// (public suffix + 1) of the domain's primary mail exchanger, so that
// gmail.com (gmail-smtp-in.l.google.com) and a Google-hosted domain
// (aspmx.l.google.com) are both "google.com". A domain without MX
// records (RFC 5321 §5.1: its address is the implicit MX), or whose
// lookup fails, is grouped by its own registered domain; one with a null
// MX (RFC 7505) is its own destination.
// Answers are cached for their DNS TTL, within [MinTTL, MaxTTL].
type Grouper struct {
	Resolver Resolver
	Static   func(domain string) string // "" when not grouped by name
	Now      func() time.Time
	MinTTL   time.Duration // default 1m; also the life of a failed lookup
	MaxTTL   time.Duration // default 24h

	mu       sync.Mutex
	cache    map[string]groupEntry
	inflight map[string]chan struct{}
}

type groupEntry struct {
	group   string
	expires time.Time
}

// maxCached bounds the cache; beyond it, expired entries are dropped,
// and then everything.
const maxCached = 200_000

// Group returns the destination of a normalised domain. It may wait for
// a DNS lookup, within ctx.
func (g *Grouper) Group(ctx context.Context, domain string) string {
	if s := g.Static(domain); s != "" {
		return s
	}
	now := g.Now()
	for {
		g.mu.Lock()
		if e, ok := g.cache[domain]; ok && now.Before(e.expires) {
			g.mu.Unlock()
			return e.group
		}
		if wait, ok := g.inflight[domain]; ok {
			g.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return registered(domain)
			}
		}
		if g.inflight == nil {
			g.inflight, g.cache = map[string]chan struct{}{}, map[string]groupEntry{}
		}
		done := make(chan struct{})
		g.inflight[domain] = done
		g.mu.Unlock()

		group, ttl := g.lookup(ctx, domain)
		g.mu.Lock()
		if len(g.cache) >= maxCached {
			g.evict(now)
		}
		g.cache[domain] = groupEntry{group, now.Add(ttl)}
		delete(g.inflight, domain)
		close(done)
		g.mu.Unlock()
		return group
	}
}

func (g *Grouper) evict(now time.Time) {
	for d, e := range g.cache {
		if !now.Before(e.expires) {
			delete(g.cache, d)
		}
	}
	if len(g.cache) >= maxCached {
		clear(g.cache)
	}
}

func (g *Grouper) lookup(ctx context.Context, domain string) (string, time.Duration) {
	lo, hi := g.MinTTL, g.MaxTTL
	if lo <= 0 {
		lo = time.Minute
	}
	if hi <= 0 {
		hi = 24 * time.Hour
	}
	mxs, ttl, err := g.Resolver.LookupMX(ctx, domain)
	if err != nil {
		return registered(domain), lo
	}
	ttl = min(max(ttl, lo), hi)
	if len(mxs) == 0 {
		return registered(domain), ttl
	}
	sort.Slice(mxs, func(i, j int) bool {
		if mxs[i].Pref != mxs[j].Pref {
			return mxs[i].Pref < mxs[j].Pref
		}
		return mxs[i].Host < mxs[j].Host
	})
	host := mxs[0].Host
	if host == "" || host == "." {
		return domain, ttl // RFC 7505 null MX: no mail goes there anyway
	}
	return registered(host), ttl
}

// registered returns the registered domain (eTLD+1) of a host name, or
// the name itself when it has none (a bare public suffix).
func registered(host string) string {
	r, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return r
}
