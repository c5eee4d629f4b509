package bouncepipe

import "strings"

// Reply codes of providers' own. Some large providers end every refusal
// with a code of their own that names the cause more precisely than the
// words around it ("Mail rejete. Mail rejected. OFR_506 [506]"); they
// document what each code means for senders to look up. Where such a
// code is in a reply, it decides.

// orangeCodes are the codes Orange (orange.fr, wanadoo.fr) and La Poste
// (laposte.net) end their replies with: "OFR_506", "OFR006_102",
// "LPN007_416", "LPNAAA_101", "OUK_513". The last three digits name the
// cause, as their postmaster pages list them; codes that only say
// "service refused, try later" name none and are left to the words.
var orangeCodes = map[string]string{
	"101": "blocked",         // sending IP on a blocklist
	"102": "blocked",         // IP blocked for spam incidents
	"103": "blocked",         // service refused to the client
	"104": "toomanyconn",     // too many connections, slow down
	"305": "securityerror",   // invalid authentication code
	"402": "securityerror",   // authentication required
	"403": "rejected",        // invalid sender
	"405": "rejected",        // invalid sender
	"415": "rejected",        // invalid sender
	"416": "userunknown",     // invalid recipient
	"417": "mailboxfull",     // recipient over quota
	"418": "userunknown",     // invalid recipient
	"420": "suspend",         // archived recipient
	"421": "rejected",        // MAIL FROM not owned by the user
	"426": "suspend",         // recipient account blocked
	"505": "systemerror",     // service refused, try later (after data)
	"506": "spamdetected",    // message rejected as spam
	"510": "blocked",         // sender refused (after data)
	"514": "mesgtoobig",      // message size limit reached
	"517": "policyviolation", // DMARC verification failed
	"630": "policyviolation", // client host rejected by policy
	"999": "blocked",         // service refused to the client
}

// orangePrefixes are the tags those codes start with.
var orangePrefixes = []string{"lpnaaa", "lpn", "ofr", "ouk"}

// coxCodes are the codes Cox (cox.net) ends its refusals with, after
// "AUP#", as its email error code page lists them: "550 5.1.0 <a@b>
// sender rejected ... AUP#CDRBL". The words of the reply often name
// another cause than the code (a "sender rejected" for a blocked IP).
var coxCodes = map[string]string{
	"CXBL":   "blocked",       // sending IP blocked for spam-like traffic
	"CDRBL":  "blocked",       // sending IP blocked for a while, same cause
	"CXTHRT": "securityerror", // sending limited: suspicious account activity
	"CXMJ":   "securityerror", // sending blocked: suspicious account activity
	"CXSNDR": "rejected",      // a problem with the sender's domain
	"CXSMTP": "rejected",      // the sender could not be verified as legitimate
	"CXCNCT": "toomanyconn",   // too many concurrent connections per IP
	"CXMXRT": "toomanyconn",   // too many recipients or messages sent
}

// coxCodeReason returns the reason of a Cox "AUP#" code in a reply, or
// "": the codes above, IPBL... (the sending IP is on DNS blocklists) and
// URLBL... (a URL in the message is).
func coxCodeReason(diag string) string {
	i := strings.Index(diag, "AUP#")
	if i < 0 {
		return ""
	}
	code := diag[i+4:]
	n := 0
	for n < len(code) && (isDigit(code[n]) || code[n] >= 'A' && code[n] <= 'Z') {
		n++
	}
	code = code[:n]
	switch {
	case strings.HasPrefix(code, "IPBL") && len(code) > 4:
		return "blocked"
	case strings.HasPrefix(code, "URLBL") && len(code) > 5:
		return "spamdetected"
	}
	return coxCodes[code]
}

// providerCodeReason returns the reason a provider's own code in a reply
// names, or "".
func providerCodeReason(diag string) string {
	if r := coxCodeReason(diag); r != "" {
		return r
	}
	for i := 0; i < len(diag); i++ {
		c := lowerByte[diag[i]]
		if c != 'l' && c != 'o' || i > 0 && (isLetter(diag[i-1]) || isDigit(diag[i-1]) || diag[i-1] == '_') {
			continue
		}
		for _, p := range orangePrefixes {
			if !hasPrefixFold(diag[i:], p) {
				continue
			}
			if code := orangeCode(diag[i+len(p):]); code != "" {
				return orangeCodes[code]
			}
			break
		}
	}
	return ""
}

// orangeCode reads what follows the tag of an Orange or La Poste code:
// "_506", "006_102", "105-104"; it returns the three digits that name
// the cause, or "".
func orangeCode(s string) string {
	n := digits(s, 3)
	switch {
	case n == 0 && len(s) > 1 && s[0] == '_':
		s = s[1:]
	case n == 3 && len(s) > 4 && (s[3] == '_' || s[3] == '-'):
		s = s[4:]
	default:
		return ""
	}
	if digits(s, 3) != 3 || len(s) > 3 && (isLetter(s[3]) || isDigit(s[3]) || s[3] == '_') {
		return ""
	}
	return s[:3]
}
