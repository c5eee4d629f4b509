// Package doctor is `senderkit check --dns`: it asks DNS (and the
// unsubscribe endpoint) whether the world sees this Postfix as a
// well-run bulk sender should be seen, as the M3AAWG Sender BCP v3
// §3.3 and the Gmail and Yahoo bulk-sender rules of 2024 ask:
//
//   - SPF (RFC 7208) at the bounce domain, the envelope sender domain of
//     every message senderkit sends, passes for each sending address;
//   - each configured DKIM key (RFC 6376, RFC 8463) is published as
//     configured;
//   - each From domain has a DMARC record (RFC 7489) and its mail aligns
//     with it, through DKIM or SPF;
//   - each sending address has a PTR record that resolves back to it
//     and agrees with the HELO name (forward-confirmed reverse DNS);
//   - the bounce domain's MX reaches this Postfix;
//   - the one-click unsubscribe URL answers over HTTPS with a valid
//     certificate (RFC 8058 §3.1).
//
// Every check yields a Result: pass, warn or fail, what was found, and
// for a warning or failure how to fix it, with the record to publish
// where senderkit can compute it. DNS goes only to the configured
// resolver, through github.com/miekg/dns; SPF is evaluated by
// blitiri.com.ar/go/spf over that same resolver.
package doctor

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/milter/dkim"
)

// Options are what one run of the doctor looks at.
type Options struct {
	// Config is the loaded configuration.
	Config *conf.Config
	// DKIM is the loaded signing configuration (nil when nothing is
	// signed).
	DKIM *dkim.Set
	// Resolver answers every DNS question, including the address of
	// the unsubscribe URL's host.
	Resolver *Resolver
	// HELOName is the name this Postfix says in EHLO: check.helo_name,
	// or what the caller found when that is empty. "" is reported as a
	// failure.
	HELOName string
	// RootCAs verifies the unsubscribe URL's certificate; nil means the
	// system's roots. Tests set their own CA here.
	RootCAs *x509.CertPool
	// Now is the clock, for certificate expiry; nil means time.Now.
	Now func() time.Time
}

// run is the state of one run: what later checks need from earlier
// ones.
type run struct {
	o      Options
	cfg    *conf.Config
	r      *Resolver
	report Report

	spfPass bool            // SPF passes at the bounce domain for every sending address
	dkimOK  map[string]bool // DKIM record name -> the published key is the configured one
}

// Run runs every check and returns the results in order.
func Run(ctx context.Context, o Options) Report {
	x := &run{o: o, cfg: o.Config, r: o.Resolver, dkimOK: map[string]bool{}}
	ck := &x.cfg.Check
	if len(ck.Sending()) == 0 {
		x.add(Result{Check: CheckConfig, What: "config check.sending_addresses", Status: Fail,
			Detail: "no sending address is configured: SPF and reverse DNS cannot be checked",
			Fix:    "list the public IP addresses this Postfix sends from in [check] sending_addresses"})
	}
	x.checkSPF(ctx)
	x.checkReverse(ctx)
	x.checkMX(ctx)
	fds := x.fromDomains()
	if len(fds) == 0 {
		x.add(Result{Check: CheckConfig, What: "config From domains", Status: Warn,
			Detail: "no From domain is known (no scope lists sender_domains, no SigningTable line names a domain): DKIM and DMARC are not checked",
			Fix:    "list the domains your mail comes from in [check] from_domains"})
	}
	for _, fd := range fds {
		x.checkDomain(ctx, fd)
	}
	x.checkOtherKeys(ctx)
	x.checkUnsubscribe(ctx)
	return x.report
}

func (x *run) add(r Result) { x.report = append(x.report, r) }

func (x *run) now() time.Time {
	if x.o.Now != nil {
		return x.o.Now()
	}
	return time.Now()
}

// fromDomain is one From domain to check, with what made it known.
type fromDomain struct {
	name   string
	scopes []string            // scopes whose sender_domains list it
	locals map[string]struct{} // local parts SigningTable lines name for it ("" for any)
}

// fromDomains lists the From domains to check: each scope's
// sender_domains, the domains SigningTable lines name, and
// check.from_domains; sorted.
func (x *run) fromDomains() []*fromDomain {
	byName := map[string]*fromDomain{}
	get := func(d string) *fromDomain {
		fd := byName[d]
		if fd == nil {
			fd = &fromDomain{name: d, locals: map[string]struct{}{"": {}}}
			byName[d] = fd
		}
		return fd
	}
	for _, sc := range x.cfg.Scopes {
		for _, d := range sc.SenderDomains {
			if n, err := addr.NormalizeDomain(d); err == nil {
				fd := get(n)
				fd.scopes = append(fd.scopes, sc.Name)
			}
		}
	}
	for _, d := range x.cfg.Check.FromDomains {
		get(d)
	}
	for _, p := range x.signingPatterns() {
		local, dom := p[0], p[1]
		get(dom).locals[local] = struct{}{}
	}
	out := make([]*fromDomain, 0, len(byName))
	for _, fd := range byName {
		out = append(out, fd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// signingPatterns reads the SigningTable again and returns, for each
// line that names one From domain (not a wildcard or a parent for its
// subdomains), its local part ("" for the whole domain) and domain.
func (x *run) signingPatterns() [][2]string {
	if x.o.DKIM == nil {
		return nil
	}
	_, ds := x.o.DKIM.Datasets()
	f, err := os.Open(ds.Path)
	if err != nil {
		return nil // Load read it a moment ago; a vanished file is Load's problem
	}
	defer f.Close()
	st, err := dkim.ParseSigningTable(f, ds)
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, rule := range st.Rules {
		local, dom := "", rule.Pattern
		if i := strings.LastIndexByte(dom, '@'); i >= 0 {
			local, dom = dom[:i], dom[i+1:]
		}
		if ds.Regex {
			if local == "*" {
				local = ""
			}
			if strings.ContainsAny(local, "*+?()[]{}|^$\\") {
				local = ""
			}
		}
		if strings.HasPrefix(dom, ".") || strings.ContainsAny(dom, "*+?()[]{}|^$\\") || !strings.Contains(dom, ".") {
			continue
		}
		if n, err := addr.NormalizeDomain(dom); err == nil {
			out = append(out, [2]string{local, n})
		}
	}
	return out
}

// label names a From domain with its scopes: "acme.example (scope acme)".
func (fd *fromDomain) label() string {
	if len(fd.scopes) == 0 {
		return fd.name
	}
	return fmt.Sprintf("%s (scope %s)", fd.name, strings.Join(fd.scopes, ", "))
}

// dnsFailure describes a lookup that failed for a reason other than the
// record not existing, and the fix for it.
func dnsFailure(what string, err error) (string, string) {
	return fmt.Sprintf("DNS lookup of %s failed: %v", what, err),
		"make sure the resolver (check.resolver, else /etc/resolv.conf) answers, and that the zone's name servers do; then run the check again"
}
