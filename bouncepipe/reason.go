package bouncepipe

import (
	"strings"
)

// classify sets the reason, Hard and SenderProblem of a record from its
// status code and the remote's text together (M3AAWG BCP §3.8: the code
// alone is often wrong).
func classify(r *Record, x recordCtx) {
	if r.Reason == "" {
		r.Reason = findReason(r, x)
	}
	r.Hard = isHard(r.Reason, r.Status, r.ReplyCode)
	r.SenderProblem = senderProblems[r.Reason]
}

// findReason decides the reason of a failure record. It reads, in turn,
// the remote's reply (weighed with the status code), the report's lines
// about the recipient, then the whole report; then falls back on the
// status code, the SMTP command and the action.
func findReason(r *Record, x recordCtx) string {
	switch r.Action {
	case "delivered", "relayed", "expanded":
		return "delivered" // RFC 3464 §2.3.3
	}
	if strings.HasPrefix(r.Status, "2.") {
		return "delivered" // RFC 3463 §3.1, class 2: success
	}
	if x.mailer {
		// RFC 3464 §2.3.6 x-unix: a local delivery program failed. Its
		// words may still say the mailbox or the disk is full.
		for i, tr := range textRules {
			if x.diag.has(i) && mailerReasons[tr.reason] {
				return tr.reason
			}
		}
		return "mailererror"
	}
	if pr := providerCodeReason(r.Diagnostic); pr != "" {
		return pr // the provider's own code names the cause
	}
	if x.diag.has(userunknownIndex) && unnamedUnknown(r.Diagnostic) {
		return "filtered"
	}
	switch r.ReplyCode {
	case "521", "556":
		// RFC 7504: the host or the domain does not accept mail.
		if !x.diag.has(ruleIndex("blocked")) {
			return "notaccept"
		}
	}
	byStatus := statusReason(r.Status)
	if strings.HasSuffix(r.Status, ".4.1") && len(r.ReplyCode) == 3 {
		// X.4.1 is "No answer from host" (RFC 3463 §3.5); a host that
		// answered with a reply code ("541 5.4.1 Mail rejected",
		// Exchange Online's "550 5.4.1 Recipient address rejected")
		// gave another reason, which its words must tell.
		byStatus = ""
	}
	precise := byStatus != "" && !isGenericStatus(r.Status)
	// RFC 3463 §3: detail 0 is "other or undefined" within its subject;
	// such a code gives way to words naming a reason anywhere in the
	// rules, though not to vague ones.
	detailed := precise && !strings.HasSuffix(r.Status, ".0")

	// Each reason in turn, the specific before the general: the remote's
	// reply names it, or the status code names it precisely.
	for i, tr := range textRules {
		if tr.weak {
			continue
		}
		if x.diag.has(i) {
			return refine(tr.reason, r, x)
		}
		if detailed && byStatus == tr.reason && !tr.early {
			return refine(byStatus, r, x)
		}
	}
	if precise {
		return refine(byStatus, r, x)
	}
	for i, tr := range textRules {
		if tr.weak && x.diag.has(i) {
			if tr.reason == "userunknown" && !addressStatus(r.Status) && restrictionText(r.Diagnostic) {
				return "onhold"
			}
			return refine(tr.reason, r, x)
		}
	}
	if groupPost(r) {
		return "rejected"
	}
	// Then what the report says around it, then the whole report.
	for _, get := range []func() tagSet{x.own, x.whole} {
		ts := get()
		for i, tr := range textRules {
			if ts.has(i) {
				return refine(tr.reason, r, x)
			}
		}
	}
	if byStatus != "" {
		return byStatus
	}
	switch r.Command {
	case "CONN", "EHLO", "HELO":
		return "blocked" // refused before any address was given
	case "MAIL":
		return "rejected" // the envelope sender was refused
	}
	if r.Action == "delayed" {
		return "expired"
	}
	if strings.TrimSpace(r.Diagnostic) != "" {
		return "onhold"
	}
	return "undefined"
}

// unnamedUnknown reports whether a diagnostic is a reply that says "User
// unknown" of an empty address: "550 : User unknown", "550: : User
// unknown". Where a server names the refused address it writes "550
// <rcpt>: User unknown"; au (KDDI, ezweb.ne.jp) answers with the address
// left out when the recipient's own reception filter refused the sender,
// whose mailbox exists.
func unnamedUnknown(diag string) bool {
	for rest := diag; ; {
		i := indexFold(rest, ": user unknown")
		if i < 0 {
			return false
		}
		before := strings.TrimRight(rest[:i], " ")
		before = strings.TrimRight(strings.TrimSuffix(before, ":"), " ")
		if n := len(before); n >= 3 && before[n-3] == '5' && isDigit(before[n-2]) && isDigit(before[n-1]) &&
			(n == 3 || !isDigit(before[n-4]) && before[n-4] != '.') {
			return true
		}
		rest = rest[i+len(": user unknown"):]
	}
}

// restrictionText reports whether a Postfix "Recipient address rejected:"
// goes on with words of its own: the text an access(5) table or a policy
// service gave the refusal ("Recipient address rejected: Please use the
// right MX"). None of the rules read them, so they name no known reason,
// and the prefix alone does not say the address is unknown.
func restrictionText(diag string) bool {
	const prefix = "address rejected:"
	i := indexFold(diag, prefix)
	if i < 0 {
		return false
	}
	rest := strings.TrimLeft(diag[i+len(prefix):], " ")
	if j := strings.IndexAny(rest, ".([;"); j >= 0 {
		rest = rest[:j]
	}
	for _, w := range strings.Fields(rest) {
		letters := 0
		for k := 0; k < len(w); k++ {
			if isLetter(w[k]) {
				letters++
			}
		}
		if letters >= 2 && letters == len(w) {
			return true
		}
	}
	return false
}

// mailerReasons are the reasons a local delivery program's words may
// name; anything else it says is a mailer error.
var mailerReasons = map[string]bool{"mailboxfull": true, "systemfull": true, "mesgtoobig": true, "exceedlimit": true,
	"suspend": true, "virusdetected": true, "spamdetected": true}

// refine settles a reason the text gave against the SMTP command the
// failure answered and the status code.
func refine(byText string, r *Record, x recordCtx) string {
	switch r.Command {
	case "MAIL":
		switch byText {
		case "userunknown", "filtered", "suspend", "securityerror", "hostunknown", "systemerror", "notaccept", "policyviolation":
			// Refused in reply to MAIL FROM: it is our sender address
			// that is unknown, suspended or not allowed.
			return "rejected"
		}
	case "CONN", "EHLO", "HELO":
		switch byText {
		case "userunknown", "filtered", "securityerror", "systemerror", "onhold", "policyviolation", "rejected", "notaccept":
			// Refused before any address was given: the client is.
			return "blocked"
		}
	}
	switch byText {
	case "mesgtoobig":
		if strings.HasSuffix(r.Status, ".2.3") {
			// RFC 3463 X.2.3: over the mailbox's own limit.
			return "exceedlimit"
		}
	case "hostunknown":
		if strings.HasPrefix(r.Status, "4.") || r.Status == "" && strings.HasPrefix(r.ReplyCode, "4") {
			// A domain that does not resolve now may resolve later.
			return "networkerror"
		}
	case "userunknown":
		switch {
		case addressStatus(r.Status) || r.Command == "RCPT":
			return "userunknown"
		case protocolRefusal(r):
			return "userunknown"
		case x.directory() || localUnknown(r.Diagnostic):
			// The recipient's own system says so in its own words.
			return "userunknown"
		}
		// A "user unknown" with neither an X.1.x code nor the reply to
		// RCPT TO behind it may as well come from a content filter that
		// answers so after DATA, or from a relay that lost the remote's
		// reply. Too weak to suppress the address at once; repeated, it
		// still does as a soft bounce.
		return "filtered"
	}
	return byText
}

// protocolRefusal reports whether a failure is reported with the
// protocol status 5.5.0 (RFC 3463 X.5.0) and not said to answer the
// message's content: Exchange and IIS write that code in their reports
// when a remote refused the recipient with a bare 550 ("Requested action
// not taken: mailbox unavailable"), Orange and La Poste in their own
// replies to RCPT TO. With words saying the recipient is unknown, it is
// the refusal of the address.
func protocolRefusal(r *Record) bool {
	return r.Status == "5.5.0" && r.Command != "DATA" && (r.ReplyCode == "" || r.ReplyCode == "550" || r.ReplyCode == "553")
}

// directory reports whether the report says, in the words of the
// recipient's own mail system, that its directory has no such address.
func (x recordCtx) directory() bool {
	i := directoryIndex
	if x.diag.has(i) {
		return true
	}
	own := x.own()
	if own.has(i) {
		return true
	}
	whole := x.whole()
	return whole.has(i)
}

// localUnknown reports whether a diagnostic is a local delivery agent's
// "unknown user: NAME", as Postfix local(8), Sendmail's mail.local and
// IMail write it when the name is in none of their tables.
func localUnknown(diag string) bool {
	i := indexFold(diag, "unknown user:")
	return i >= 0 && (i == 0 || diag[i-1] == ' ' || diag[i-1] == ':')
}

// userunknownIndex is the index of the main userunknown rule.
var userunknownIndex = ruleIndex("userunknown")

// directoryIndex is the index of the directory wording rule.
var directoryIndex = func() int {
	for i, tr := range textRules {
		if tr.directory {
			return i
		}
	}
	panic("bouncepipe: no directory rule")
}()

// addressStatus reports whether an enhanced status code is about the
// destination address: subject 1 (RFC 3463 §3.2), other than the codes
// about the sender's address (X.1.7, X.1.8).
func addressStatus(s string) bool {
	if len(s) < 5 || s[1:4] != ".1." {
		return false
	}
	switch s[4:] {
	case "7", "8":
		return false
	}
	return true
}

// groupPost reports whether the failed recipient is a Google Groups list
// that refused our post: Google reports those in the reader's language,
// always meaning the sender may not post to the group.
func groupPost(r *Record) bool {
	return strings.HasSuffix(r.Recipient, "@googlegroups.com") && !strings.HasPrefix(r.Status, "4.")
}

// isHard reports whether a reason is a permanent, address-level failure:
// the mailbox or its domain does not exist or has moved away, or the domain
// accepts no mail at all (RFC 7505 null MX). A temporary (4xx) reply is
// never hard (RFC 5321 §4.2.1).
func isHard(reason, status, reply string) bool {
	temporary := strings.HasPrefix(status, "4.") || status == "" && strings.HasPrefix(reply, "4")
	switch reason {
	case "userunknown", "hostunknown", "hasmoved", "notaccept":
		return !temporary
	}
	return false
}

// senderProblems are the reasons that blame the sender, not the recipient
// (M3AAWG BCP §3.8): the sending IP or domain is blocklisted or has a poor
// reputation, the content looked like spam or carried a virus, the message
// broke a policy, failed authentication (SPF, DKIM, DMARC, PTR), or came
// too fast. They are recorded but never counted against the recipient.
var senderProblems = map[string]bool{
	"blocked":         true,
	"spamdetected":    true,
	"policyviolation": true,
	"rejected":        true,
	"authfailure":     true,
	"badreputation":   true,
	"requireptr":      true,
	"speeding":        true,
	"ratelimited":     true,
	"toomanyconn":     true,
	"norelaying":      true,
	"securityerror":   true,
	"failedstarttls":  true,
	"virusdetected":   true,
	"contenterror":    true,
	"notcompliantrfc": true,
	"mesgtoobig":      true,
	"syntaxerror":     true,
}

// explain returns the reason rule and phrase that decide a text, for
// tests and debugging.
func explain(text string) (string, string) {
	ts := scanTags(text)
	for i, tr := range textRules {
		if ts.has(i) {
			return tr.reason, ts.phraseOf(i)
		}
	}
	return "", ""
}

// ruleIndex returns the index of the main rule of a reason.
func ruleIndex(reason string) int {
	for i, tr := range textRules {
		if tr.reason == reason && !tr.early {
			return i
		}
	}
	return -1
}
