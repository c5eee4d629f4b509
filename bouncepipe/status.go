package bouncepipe

import (
	"strings"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits returns how many digits start s, at most max+1.
func digits(s string, max int) int {
	n := 0
	for n < len(s) && n <= max && isDigit(s[n]) {
		n++
	}
	return n
}

// findStatus returns the first RFC 3463 enhanced status code in s, class
// "." subject "." detail, class 2, 4 or 5 (RFC 3463 §2), with subject and
// detail of one to three digits; "" if there is none.
func findStatus(s string) string {
	for i := 0; i+5 <= len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' || s[i+1] != '.' {
			continue
		}
		if i > 0 && (isDigit(s[i-1]) || s[i-1] == '.') {
			continue
		}
		a := digits(s[i+2:], 3)
		if a == 0 || a > 3 || i+2+a >= len(s) || s[i+2+a] != '.' {
			continue
		}
		k := i + 3 + a
		b := digits(s[k:], 3)
		if b == 0 || b > 3 {
			continue
		}
		e := k + b
		if e < len(s) && s[e] == '.' && e+1 < len(s) && isDigit(s[e+1]) {
			continue // 5.1.1.1, an IP address or a version
		}
		return string(c) + "." + trimZeros(s[i+2:i+2+a]) + "." + trimZeros(s[k:e])
	}
	return ""
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

// replyWords are the words after which MTAs quote a remote reply code.
var replyWords = []string{"said", "says", "reply", "replied", "response", "responded", "answer", "error", "status", "code",
	"returned", "host", "server", "<<<", ">>>"}

// findReplyCode returns the SMTP reply code (RFC 5321 §4.2) a diagnostic
// quotes: one at its start ("550 5.1.1 ..."), else one before an enhanced
// status code ("said: 550 5.1.1"), else one after the words that
// introduce a reply ("Remote host said: 550"); "" if there is none.
func findReplyCode(s string) string {
	best, rank := "", 5
	for i := 0; i+3 <= len(s) && rank > 1; i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' || s[i+1] < '0' || s[i+1] > '5' || !isDigit(s[i+2]) {
			continue
		}
		if i > 0 && (isDigit(s[i-1]) || s[i-1] == '.') {
			continue
		}
		e := i + 3
		if e < len(s) && !(s[e] == ' ' || s[e] == '-' || s[e] == ':' || s[e] == ')' || s[e] == ']' || s[e] == ',' || s[e] == ';' ||
			s[e] == '\t' || s[e] == '\n' || s[e] == '\r' || s[e] == '.' && (e+1 == len(s) || !isDigit(s[e+1]))) {
			continue
		}
		r := 5
		before := strings.TrimRight(s[:i], " \t:=#([")
		switch {
		case strings.TrimSpace(before) == "":
			r = 1
		case strings.HasSuffix(strings.TrimRight(s[:i], " \t"), ":") || strings.HasSuffix(strings.TrimRight(s[:i], " \t"), ">"):
			r = 4 // "<rcpt>: 550 unknown user"
		case e+1 < len(s) && (s[e] == ' ' || s[e] == '-') && findStatus(s[e+1:min(len(s), e+10)]) != "" && strings.IndexByte("245", s[e+1]) >= 0 ||
			e+2 < len(s) && (s[e] == ' ' || s[e] == '-') && s[e+1] == '#' && findStatus(s[e+2:min(len(s), e+11)]) != "":
			r = 2
		default:
			lb := strings.ToLower(before[max(0, len(before)-16):])
			for _, w := range replyWords {
				if strings.HasSuffix(lb, w) {
					r = 3
					break
				}
			}
			if r == 5 && e < len(s) && s[e] == '-' && e+1 < len(s) && !isDigit(s[e+1]) {
				r = 4 // a multi-line reply, "550-'Unknown user"
			}
		}
		if r < rank && r < 5 {
			best, rank = s[i:e], r
		}
	}
	return best
}

// statusReasons maps an enhanced status code to the reason it names on
// its own, from the meanings RFC 3463 §3 and the IANA "Enumerated Status
// Codes" registry give each code. It is the fallback when the text does
// not say more (M3AAWG BCP §3.8: the code alone is often wrong).
var statusReasons = map[string]string{
	"1.0":  "userunknown", // X.1.0 Other address status
	"1.1":  "userunknown", // X.1.1 Bad destination mailbox address
	"1.2":  "hostunknown", // X.1.2 Bad destination system address
	"1.3":  "userunknown", // X.1.3 Bad destination mailbox address syntax
	"1.4":  "filtered",    // X.1.4 Destination mailbox address ambiguous
	"1.6":  "hasmoved",    // X.1.6 Destination mailbox has moved, no forwarding address
	"1.7":  "rejected",    // X.1.7 Bad sender's mailbox address syntax
	"1.8":  "rejected",    // X.1.8 Bad sender's system address
	"1.9":  "systemerror", // X.1.9 Message relayed to non-compliant mailer (RFC 3886)
	"1.10": "notaccept",   // X.1.10 Recipient address has null MX (RFC 7505)
	"2.0":  "filtered",    // X.2.0 Other or undefined mailbox status
	"2.1":  "filtered",    // X.2.1 Mailbox disabled, not accepting messages
	"2.2":  "mailboxfull", // X.2.2 Mailbox full
	"2.3":  "exceedlimit", // X.2.3 Message length exceeds administrative limit
	"2.4":  "systemerror", // X.2.4 Mailing list expansion problem
	"3.0":  "systemerror", // X.3.0 Other or undefined mail system status
	"3.1":  "systemfull",  // X.3.1 Mail system full
	"3.2":  "notaccept",   // X.3.2 System not accepting network messages
	"3.3":  "systemerror", // X.3.3 System not capable of selected features
	"3.4":  "mesgtoobig",  // X.3.4 Message too big for system
	"3.5":  "systemerror", // X.3.5 System incorrectly configured
	"4.0":  "networkerror",
	"4.1":  "expired",      // X.4.1 No answer from host
	"4.2":  "networkerror", // X.4.2 Bad connection
	"4.3":  "systemerror",  // X.4.3 Directory server failure
	"4.4":  "hostunknown",  // X.4.4 Unable to route
	"4.5":  "systemfull",   // X.4.5 Mail system congestion
	"4.6":  "networkerror", // X.4.6 Routing loop detected
	"4.7":  "expired",      // X.4.7 Delivery time expired
	"4.8":  "networkerror", // X.4.8 Retry on IPv4 (RFC 7504... registry)
	"5.2":  "syntaxerror",  // X.5.2 Syntax error
	"5.3":  "toomanyconn",  // X.5.3 Too many recipients
	"5.4":  "syntaxerror",  // X.5.4 Invalid command arguments
	"5.5":  "systemerror",  // X.5.5 Wrong protocol version
	"5.6":  "syntaxerror",  // X.5.6 Authentication exchange line too long (RFC 4954)
	"6.0":  "contenterror", // X.6.* message content or media status
	"6.1":  "contenterror",
	"6.2":  "contenterror",
	"6.3":  "contenterror",
	"6.4":  "contenterror",
	"6.5":  "contenterror",
	"6.6":  "contenterror",
	"6.7":  "contenterror",
	"6.8":  "contenterror",
	"6.9":  "contenterror",
	"6.10": "contenterror",
	"7.0":  "securityerror",  // X.7.0 Other or undefined security status
	"7.1":  "securityerror",  // X.7.1 Delivery not authorized, message refused
	"7.2":  "securityerror",  // X.7.2 Mailing list expansion prohibited
	"7.3":  "securityerror",  // X.7.3 Security conversion required
	"7.4":  "securityerror",  // X.7.4 Security features not supported
	"7.5":  "securityerror",  // X.7.5 Cryptographic failure
	"7.6":  "securityerror",  // X.7.6 Cryptographic algorithm not supported
	"7.7":  "securityerror",  // X.7.7 Message integrity failure
	"7.8":  "securityerror",  // X.7.8 Authentication credentials invalid (RFC 4954)
	"7.9":  "securityerror",  // X.7.9 Authentication mechanism too weak (RFC 4954)
	"7.10": "securityerror",  // X.7.10 Encryption needed (RFC 5248)
	"7.11": "securityerror",  // X.7.11 Encryption required (RFC 4954)
	"7.12": "securityerror",  // X.7.12 Password transition needed (RFC 4954)
	"7.13": "suspend",        // X.7.13 User account disabled (RFC 5248)
	"7.14": "securityerror",  // X.7.14 Trust relationship required (RFC 5248)
	"7.15": "securityerror",  // X.7.15 Priority level too low (RFC 6710)
	"7.16": "mesgtoobig",     // X.7.16 Message too big for the specified priority (RFC 6710)
	"7.17": "hasmoved",       // X.7.17 Mailbox owner has changed (RFC 7293)
	"7.18": "hasmoved",       // X.7.18 Domain owner has changed (RFC 7293)
	"7.19": "securityerror",  // X.7.19 RRVS test cannot be completed (RFC 7293)
	"7.20": "authfailure",    // X.7.20 No passing DKIM signature found (RFC 7372)
	"7.21": "authfailure",    // X.7.21 No acceptable DKIM signature found (RFC 7372)
	"7.22": "authfailure",    // X.7.22 No valid author-matched DKIM signature (RFC 7372)
	"7.23": "authfailure",    // X.7.23 SPF validation failed (RFC 7372)
	"7.24": "authfailure",    // X.7.24 SPF validation error (RFC 7372)
	"7.25": "requireptr",     // X.7.25 Reverse DNS validation failed (RFC 7372)
	"7.26": "authfailure",    // X.7.26 Multiple authentication checks failed (RFC 7372)
	"7.27": "notaccept",      // X.7.27 Sender address has null MX (RFC 7505)
	"7.28": "spamdetected",   // X.7.28 Mail flood detected (RFC 8689 registry)
	"7.29": "authfailure",    // X.7.29 ARC validation failure (RFC 8617)
	"7.30": "failedstarttls", // X.7.30 REQUIRETLS support required (RFC 8689)
}

// statusReason returns the reason an enhanced status code names on its
// own, or "" for codes that name none (X.0.0, unknown codes).
func statusReason(status string) string {
	if status == "" {
		return ""
	}
	class, rest, _ := strings.Cut(status, ".")
	if class == "2" {
		return "delivered"
	}
	r, ok := statusReasons[rest]
	if !ok {
		return "" // a vendor detail code (5.1.351, 5.7.509): say nothing
	}
	if class == "4" {
		switch rest {
		case "1.1", "1.0", "1.3", "2.0":
			return "" // a temporary "bad mailbox" is not a user unknown
		case "3.0", "4.0", "5.0", "7.0":
			// "Other or undefined" system, network, protocol or
			// security status, for now: it says only where something
			// failed for a while, not what.
			return ""
		}
	}
	return r
}

// failureStatus returns the first enhanced status code of class 4 or 5 in
// a diagnostic, else its first code: a transcript quotes the replies that
// succeeded before the one that failed.
func failureStatus(s string) string {
	first := ""
	for rest := s; rest != ""; {
		st := findStatus(rest)
		if st == "" {
			break
		}
		if st[0] != '2' {
			return st
		}
		if first == "" {
			first = st
		}
		i := strings.Index(rest, st)
		if i < 0 {
			break
		}
		rest = rest[i+len(st):]
	}
	return first
}

// failureReplyCode is findReplyCode preferring a failure (4xx, 5xx) to a
// success quoted before it.
func failureReplyCode(s string) string {
	code := findReplyCode(s)
	for n := 0; strings.HasPrefix(code, "2") && n < 8; n++ {
		i := strings.Index(s, code)
		if i < 0 {
			break
		}
		s = s[i+len(code):]
		next := findReplyCode(s)
		if next == "" {
			break
		}
		code = next
	}
	return code
}
