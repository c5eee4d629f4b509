package bouncepipe

import (
	"strings"
)

// isLocalByte reports whether c may be part of a dot-atom local part
// (RFC 5322 §3.2.3 atext and ".", plus the UTF-8 of RFC 6531).
func isLocalByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+/=?^_`{|}~.-", c) >= 0
}

// isDomainByte reports whether c may be part of a domain as bounces write
// them: letters, digits, dots and hyphens. Internationalized domains come
// in their A-label form (RFC 5890); text in other scripts often follows an
// address without a space, and is not part of it.
func isDomainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// scanAddresses calls fn with the start and end of every address in s, in
// order: a dot-atom local part at a domain of two or more labels, or at an
// address literal.
func scanAddresses(s string, fn func(start, end int)) {
	for i := 0; i < len(s); {
		at := strings.IndexByte(s[i:], '@')
		if at < 0 {
			return
		}
		at += i
		i = at + 1
		start := at
		for start > 0 && isLocalByte(s[start-1]) && s[start-1] != '=' {
			start-- // "SMTP=user@...", "ORCPT=rfc822;user@...": keys, not local parts
		}
		for start < at && (s[start] == '.' || s[start] == '\'' || s[start] == '`') {
			start++
		}
		if start == at {
			continue
		}
		end := at + 1
		if end < len(s) && s[end] == '[' {
			j := strings.IndexByte(s[end:], ']')
			if j < 0 {
				continue
			}
			end += j + 1
		} else {
			dots := 0
			for end < len(s) && isDomainByte(s[end]) {
				if s[end] == '.' {
					dots++
				}
				end++
			}
			for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
				if s[end-1] == '.' {
					dots--
				}
				end--
			}
			if dots == 0 || end == at+1 || s[at+1] == '.' {
				continue
			}
		}
		fn(start, end)
		i = end
	}
}

// findAddresses returns the addresses in s, in order, cleaned.
func findAddresses(s string) []string {
	var out []string
	scanAddresses(s, func(start, end int) {
		if a := cleanAddress(s[start:end]); a != "" {
			out = append(out, a)
		}
	})
	return out
}

// cleanAddress turns an address as a report writes it, "rfc822;
// <User@Example.COM>", "User@Example.COM.", into "user@example.com". It
// returns "" when what is left is not an address.
func cleanAddress(s string) string {
	s = strings.TrimSpace(s)
	if t, rest, ok := strings.Cut(s, ";"); ok && !strings.ContainsAny(t, "@<\"") {
		s = strings.TrimSpace(rest) // address type, RFC 3464 §2.3.2
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		} else {
			s = s[i+1:]
		}
	}
	s = strings.Trim(s, " \t'<>(),;:.`")
	s = strings.TrimPrefix(s, "[") // "[user@example.com]", as Exchange writes
	if !strings.Contains(s, "@[") {
		s = strings.TrimSuffix(s, "]")
	}
	if strings.HasPrefix(s, "\"") && strings.Count(s, "\"") == 1 {
		s = s[1:] // an unbalanced quote before the address
	}
	s = strings.TrimSuffix(s, "\"")
	if hasPrefixFold(s, "mailto:") {
		s = s[len("mailto:"):]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n") {
		return ""
	}
	local := strings.TrimLeft(s[:at], ".") // dots at the end stay: "user...@" may be redacted, and is not user@
	if len(local) > 2 && local[0] == '"' && local[len(local)-1] == '"' && !strings.ContainsAny(local[1:len(local)-1], "\"\\@") {
		local = local[1 : len(local)-1] // "user"@ is user@ (RFC 5321 §4.1.2)
	}
	domain := strings.Trim(s[at+1:], ".")
	if local == "" || domain == "" || !strings.Contains(domain, ".") && !strings.HasPrefix(domain, "[") {
		return ""
	}
	if len(local)+1+len(domain) == len(s) && s[len(local)] == '@' && !hasUpper(s) {
		return s // already clean: no copy
	}
	return strings.ToLower(local + "@" + domain)
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// localPart returns the part of addr before its last "@".
func localPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// domainPart returns the part of addr after its last "@".
func domainPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// isDaemonAddress reports whether addr is a mail system's own address, one
// that reports come from rather than bounce: MAILER-DAEMON and postmaster
// (RFC 5321 §4.5.1), and the usual no-reply names.
func isDaemonAddress(addr string) bool {
	l := localPart(addr)
	switch l {
	case "mailer-daemon", "mailerdaemon", "postmaster", "mail-daemon", "mailer_daemon",
		"daemon", "root", "nobody", "mail", "bounce", "bounces", "noreply", "no-reply", "do-not-reply", "donotreply":
		return true
	}
	return strings.HasPrefix(l, "mailer-daemon") || strings.HasPrefix(l, "postmaster")
}
