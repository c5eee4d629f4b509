package dkim

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// OrgDomain is the organisational domain of d (RFC 7489 §3.2): the
// public suffix plus one label, by the Public Suffix List compiled into
// golang.org/x/net/publicsuffix. A domain that is itself a public suffix
// is its own organisational domain. d is lower-case, in A-labels.
func OrgDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

// Aligned reports whether a signature by d= signing aligns with the
// From domain from in relaxed mode (RFC 7489 §3.1.1): both have the
// same organisational domain. DMARC's default is relaxed (adkim=r).
func Aligned(signing, from string) bool {
	return strings.EqualFold(OrgDomain(signing), OrgDomain(from))
}
