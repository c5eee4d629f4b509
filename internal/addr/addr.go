// Package addr normalises e-mail addresses so that the suppression list,
// the send log and the policy server all compare them the same way.
//
// The rules are deliberately plain: the domain is lower-cased and
// IDNA-encoded (RFC 5890), the local part is compared case-insensitively
// unless configured otherwise (RFC 5321 §2.4 lets a receiver treat it as
// case-sensitive, almost none do), and nothing provider-specific (Gmail's
// dots, "+tags") is folded away: two addresses that may reach different
// people must stay two entries.
package addr

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Errors returned by Normalize and friends; test with errors.Is.
var (
	ErrEmpty   = errors.New("addr: empty address")
	ErrNoAt    = errors.New("addr: no @ in address")
	ErrLocal   = errors.New("addr: bad local part")
	ErrDomain  = errors.New("addr: bad domain")
	ErrTooLong = errors.New("addr: address too long")
)

// Limits from RFC 5321 §4.5.3.1.
const (
	maxLocal   = 64
	maxDomain  = 255
	maxAddress = 254 // a path is at most 256 octets including the angle brackets
	maxLabel   = 63
)

// Options says how addresses compare.
type Options struct {
	// CaseSensitiveLocal keeps the case of the local part. Off by
	// default: "Bob@example.com" and "bob@example.com" are one recipient.
	CaseSensitiveLocal bool
}

// idnaProfile converts U-labels to A-labels the way a resolver would
// (UTS #46 mapping, lower-casing included) but without the STD3 host
// name rules, which would refuse the underscores found in real domains.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.BidiRule(),
)

// Normalize returns the canonical form of the address s: optional angle
// brackets removed, domain lower-cased and IDNA-encoded, local part
// lower-cased unless o.CaseSensitiveLocal, and a quoted local part
// unquoted when the quotes are not needed.
func Normalize(s string, o Options) (string, error) {
	local, domain, err := split(s)
	if err != nil {
		return "", err
	}
	local, err = normalizeLocal(local, o)
	if err != nil {
		return "", fmt.Errorf("%w in %q", err, s)
	}
	domain, err = NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("%w in %q", err, s)
	}
	a := local + "@" + domain
	if len(a) > maxAddress {
		return "", fmt.Errorf("%w: %q is %d octets, at most %d", ErrTooLong, s, len(a), maxAddress)
	}
	return a, nil
}

// NormalizeInternal is Normalize for an address in Postfix's internal
// form, as smtpd hands it to a policy server: a local part that needs
// quotes comes without them ("john smith"@example.com arrives as john
// smith@example.com), and is quoted again here.
func NormalizeInternal(s string, o Options) (string, error) {
	a, err := Normalize(s, o)
	if err == nil {
		return a, nil
	}
	i := strings.LastIndexByte(s, '@')
	if i <= 0 {
		return "", err
	}
	return Normalize(quote(s[:i])+s[i:], o)
}

// NormalizePattern accepts what Normalize accepts plus the domain-wide
// form "*@example.com", which it returns with the domain normalised.
func NormalizePattern(s string, o Options) (string, error) {
	t := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(t, "*@"); ok {
		d, err := NormalizeDomain(rest)
		if err != nil {
			return "", fmt.Errorf("%w in %q", err, s)
		}
		return "*@" + d, nil
	}
	return Normalize(s, o)
}

// IsDomainPattern reports whether a (as returned by NormalizePattern)
// stands for a whole domain.
func IsDomainPattern(a string) bool { return strings.HasPrefix(a, "*@") }

// DomainPattern returns the domain-wide pattern that covers the
// normalised address a.
func DomainPattern(a string) string { return "*@" + Domain(a) }

// Domain returns the part of a normalised address after the last '@',
// or "" when there is none.
func Domain(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return ""
	}
	return a[i+1:]
}

// Local returns the part of a normalised address before the last '@'.
func Local(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return a
	}
	return a[:i]
}

// split separates local part and domain at the last '@' that is not
// inside a quoted local part.
func split(s string) (local, domain string, err error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") {
		t = strings.TrimSpace(t[1 : len(t)-1])
	}
	if t == "" {
		return "", "", ErrEmpty
	}
	if !utf8.ValidString(t) {
		return "", "", fmt.Errorf("%w: %q is not valid UTF-8", ErrLocal, s)
	}
	i := strings.LastIndexByte(t, '@')
	if i < 0 {
		return "", "", fmt.Errorf("%w: %q", ErrNoAt, s)
	}
	local, domain = t[:i], t[i+1:]
	if local == "" {
		return "", "", fmt.Errorf("%w: empty in %q", ErrLocal, s)
	}
	if domain == "" {
		return "", "", fmt.Errorf("%w: empty in %q", ErrDomain, s)
	}
	return local, domain, nil
}

func normalizeLocal(local string, o Options) (string, error) {
	if strings.HasPrefix(local, `"`) {
		u, err := unquote(local)
		if err != nil {
			return "", err
		}
		local = u
	} else if !isDotAtom(local) {
		return "", fmt.Errorf("%w: %q is neither a dot-atom nor quoted", ErrLocal, local)
	}
	local = norm.NFC.String(local) // RFC 6532 §3.1: UTF-8 in NFC
	if !o.CaseSensitiveLocal {
		local = strings.ToLower(local)
	}
	if !isDotAtom(local) {
		local = quote(local)
	}
	if len(local) > maxLocal {
		return "", fmt.Errorf("%w: local part is %d octets, at most %d", ErrTooLong, len(local), maxLocal)
	}
	return local, nil
}

// isDotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text,
// with UTF-8 allowed as RFC 6531 §3.3 extends atext.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r == '.' || isAtext(r) {
			continue
		}
		return false
	}
	return true
}

func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r >= 0x80:
		return r != utf8.RuneError && r > 0x9f // no C1 controls
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// unquote decodes an RFC 5321 §4.1.2 Quoted-string.
func unquote(q string) (string, error) {
	if len(q) < 2 || !strings.HasSuffix(q, `"`) {
		return "", fmt.Errorf("%w: unterminated quoted string %q", ErrLocal, q)
	}
	var b strings.Builder
	body := q[1 : len(q)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\':
			i++
			if i == len(body) || body[i] < 0x20 || body[i] == 0x7f {
				return "", fmt.Errorf("%w: bad escape in %q", ErrLocal, q)
			}
			b.WriteByte(body[i])
		case c == '"':
			return "", fmt.Errorf("%w: stray quote in %q", ErrLocal, q)
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w: control character in %q", ErrLocal, q)
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%w: empty quoted string", ErrLocal)
	}
	return b.String(), nil
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// plainASCII returns d lower-cased when the IDNA mapping would leave it
// so: every label made of ASCII letters, digits, '_' and '-', not
// starting or ending with '-', and without "--" in its third and fourth
// places (RFC 5891 §4.2.3.1, which also keeps A-labels, "xn--", for
// IDNA to check). It spares the common domain the IDNA machinery, which
// the policy server would otherwise run for every recipient.
func plainASCII(d string) (string, bool) {
	start := 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			c := d[i] | 0x20
			if !(c >= 'a' && c <= 'z' || d[i] >= '0' && d[i] <= '9' || d[i] == '-' || d[i] == '_') {
				return "", false
			}
			continue
		}
		l := d[start:i]
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' || len(l) >= 4 && l[2] == '-' && l[3] == '-' {
			return "", false
		}
		start = i + 1
	}
	return strings.ToLower(d), true
}

// NormalizeDomain lower-cases and IDNA-encodes a domain name, drops one
// trailing dot, and checks label and name lengths (RFC 1035 §2.3.4).
// An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is returned in
// canonical form.
func NormalizeDomain(d string) (string, error) {
	d = strings.TrimSpace(d)
	if strings.HasPrefix(d, "[") {
		return normalizeLiteral(d)
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", fmt.Errorf("%w: empty", ErrDomain)
	}
	if !utf8.ValidString(d) {
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrDomain, d)
	}
	a, ok := plainASCII(d)
	if !ok {
		var err error
		a, err = idnaProfile.ToASCII(d)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrDomain, d, err)
		}
		a = strings.ToLower(a)
	}
	if len(a) > maxDomain-2 { // 253 in presentation form
		return "", fmt.Errorf("%w: %q is %d octets long", ErrTooLong, d, len(a))
	}
	for _, l := range strings.Split(a, ".") {
		if l == "" || len(l) > maxLabel {
			return "", fmt.Errorf("%w: %q has an empty or over-long label", ErrDomain, d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: %q contains %q", ErrDomain, d, c)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: label %q of %q starts or ends with a hyphen", ErrDomain, l, d)
		}
	}
	return a, nil
}

// normalizeLiteral handles RFC 5321 §4.1.3 address literals.
func normalizeLiteral(d string) (string, error) {
	if !strings.HasSuffix(d, "]") {
		return "", fmt.Errorf("%w: unterminated address literal %q", ErrDomain, d)
	}
	in := d[1 : len(d)-1]
	v6 := false
	if len(in) > 5 && strings.EqualFold(in[:5], "ipv6:") {
		in, v6 = in[5:], true
	}
	ip, err := netip.ParseAddr(in)
	if err != nil || ip.Zone() != "" || ip.Is6() != v6 {
		return "", fmt.Errorf("%w: bad address literal %q", ErrDomain, d)
	}
	if v6 {
		return "[IPv6:" + ip.String() + "]", nil
	}
	return "[" + ip.String() + "]", nil
}
