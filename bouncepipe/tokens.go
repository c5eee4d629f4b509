package bouncepipe

import (
	"strings"
)

// Token shape: senderkit writes its per-copy tokens in lower-case base32
// (RFC 4648 §6 alphabet, no padding), 42 to 48 characters. MTAs may change
// the case of a local part, so the match is case-insensitive.
const (
	tokenMinLen = 42
	tokenMaxLen = 48
)

// isTokenShaped reports whether s could be a token.
func isTokenShaped(s string) bool {
	if len(s) < tokenMinLen || len(s) > tokenMaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBase32(s[i]) {
			return false
		}
	}
	return true
}

// isBase32 reports whether c is in the RFC 4648 §6 alphabet, either case.
func isBase32(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '2' && c <= '7'
}

// isUnsubscribeAddress reports whether addr is our List-Unsubscribe mailto
// address "<UnsubscribePrefix>+<token>@<BounceDomain>".
func (o *Options) isUnsubscribeAddress(addr string) bool {
	_, ok := o.tokenOf(addr, o.UnsubscribePrefix)
	return ok
}

// tokenOf returns the token of addr when addr is "<prefix>+<token>@<our
// bounce domain>".
func (o *Options) tokenOf(addr, prefix string) (string, bool) {
	if o.BounceDomain == "" || prefix == "" {
		return "", false
	}
	a := cleanAddress(addr)
	if a == "" || !strings.EqualFold(domainPart(a), o.BounceDomain) {
		return "", false
	}
	p, tok, ok := strings.Cut(localPart(a), "+")
	if !ok || !strings.EqualFold(p, prefix) || !isTokenShaped(tok) {
		return "", false
	}
	return strings.ToLower(tok), true
}

// ourTokens calls fn with the token of every one of our VERP or
// unsubscribe addresses, "<prefix>+<token>@<bounce domain>", in s.
func (o *Options) ourTokens(s string, fn func(tok string)) {
	if o.BounceDomain == "" || len(s) < len(o.BounceDomain)+tokenMinLen+3 {
		return
	}
	at := "@" + o.BounceDomain
	for off := 0; ; {
		i := indexFold(s[off:], at)
		if i < 0 {
			return
		}
		i += off
		off = i + len(at)
		if off < len(s) && isDomainByte(s[off]) && !(s[off] == '.' && (off+1 == len(s) || !isDomainByte(s[off+1]))) {
			continue // a longer domain
		}
		start := i
		for start > 0 && i-start < tokenMaxLen && isBase32(s[start-1]) {
			start--
		}
		if start == 0 || s[start-1] != '+' || i-start < tokenMinLen {
			continue
		}
		plus := start - 1
		for _, p := range []string{o.VERPPrefix, o.UnsubscribePrefix} {
			if p == "" || plus < len(p) || !strings.EqualFold(s[plus-len(p):plus], p) {
				continue
			}
			if b := plus - len(p); b > 0 && isLocalByte(s[b-1]) {
				continue // the prefix is the end of a longer local part
			}
			fn(strings.ToLower(s[start:i]))
			break
		}
	}
}

// links calls fn with every http(s) link in s.
func links(s string, fn func(string)) {
	for off := 0; ; {
		i := indexFold(s[off:], "http")
		if i < 0 {
			return
		}
		i += off
		off = i + 4
		rest := s[i:]
		if !hasPrefixFold(rest, "https://") && !hasPrefixFold(rest, "http://") {
			continue
		}
		end := strings.IndexAny(rest, " \t\r\n<>\"'")
		if end < 0 {
			end = len(rest)
		}
		fn(rest[:end])
		off = i + end
	}
}

// urlToken returns the token at the end of an unsubscribe link's path.
func (o *Options) urlToken(u string) (string, bool) {
	if o.UnsubscribeURL != "" && !strings.HasPrefix(strings.ToLower(u), strings.ToLower(o.UnsubscribeURL)) {
		return "", false
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	u = strings.TrimRight(u, "/>.,;)")
	seg := u[strings.LastIndexByte(u, '/')+1:]
	if !isTokenShaped(seg) {
		return "", false
	}
	return strings.ToLower(seg), true
}

// candidates collects tokens in the order they are found, each once.
type candidates struct {
	list []Candidate
	seen map[string]bool
}

func (c *candidates) add(tok, where string) {
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if tok == "" || c.seen[tok] {
		return
	}
	c.seen[tok] = true
	c.list = append(c.list, Candidate{Token: tok, Where: where})
}

// findTokens collects the candidate tokens of a report, the most
// trustworthy place first: the envelope recipient the report was
// delivered to, the original envelope sender a feedback report names
// (RFC 5965 §3.2), the returned original's Return-Path and
// List-Unsubscribe (RFC 2369 §3.2) and other headers, then the text.
// Only our own addresses and links count; none is verified here.
func findTokens(rep *Report, c *collected, opt *Options) []Candidate {
	var cs candidates
	if opt.BounceDomain == "" {
		return nil
	}
	for _, p := range []string{opt.VERPPrefix, opt.UnsubscribePrefix} {
		if tok, ok := opt.tokenOf(opt.Recipient, p); ok {
			cs.add(tok, WhereRecipient)
		}
	}
	for _, k := range []string{"X-Original-To", "Delivered-To", "To"} {
		for _, v := range c.header.Values(k) {
			opt.ourTokens(v, func(tok string) { cs.add(tok, WhereReportHeader) })
		}
	}
	if tok, ok := opt.tokenOf(rep.OriginalMailFrom, opt.VERPPrefix); ok {
		cs.add(tok, WhereMailFrom)
	}
	if rep.Original != nil {
		o := rep.Original
		opt.ourTokens(o.Get("Return-Path"), func(tok string) { cs.add(tok, WhereReturnPath) })
		for _, v := range o.Values("List-Unsubscribe") {
			opt.ourTokens(v, func(tok string) { cs.add(tok, WhereListUnsubscribe) })
			links(v, func(u string) {
				if tok, ok := opt.urlToken(u); ok {
					cs.add(tok, WhereListUnsubscribe)
				}
			})
		}
		for _, f := range o.Fields() {
			if strings.EqualFold(f.Name, "Return-Path") || strings.EqualFold(f.Name, "List-Unsubscribe") {
				continue
			}
			opt.ourTokens(f.Value, func(tok string) { cs.add(tok, WhereOriginalHeader) })
		}
	}
	texts := append([]string(nil), c.texts...)
	texts = append(texts, string(c.originalBody))
	for _, t := range texts {
		opt.ourTokens(t, func(tok string) { cs.add(tok, WhereBody) })
		if opt.UnsubscribeURL != "" {
			links(t, func(u string) {
				if tok, ok := opt.urlToken(u); ok {
					cs.add(tok, WhereBody)
				}
			})
		}
	}
	return cs.list
}
