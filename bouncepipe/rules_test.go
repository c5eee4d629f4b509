package bouncepipe

import "testing"

// TestReasonRules: replies each reason rule is for, written for these
// tests (not copied from the corpus), and what they classify as.
func TestReasonRules(t *testing.T) {
	if got := commandIn("host mx.example.com said: 451 try again. Command output: rcpt to the local queue: connection refused"); got != "" {
		t.Errorf("commandIn read a command in a program's output: %q", got)
	}
	for _, c := range []struct {
		name, status, text string
		reason             string
		hard               bool
	}{
		// Orange and La Poste end their replies with a code of their
		// own that names the cause.
		{"orange spam code", "5.2.0", "host mx.orange.example[192.0.2.7] said: 550 5.2.0 Mail rejete. Mail rejected. OFR_506 [506] (in reply to end of DATA command)",
			"spamdetected", false},
		{"la poste unknown code", "5.5.0", "550 5.5.0 Destinataire inconnu. Unknown recipient. LPN105_416",
			"userunknown", true},
		{"la poste policy code", "5.7.1", "554 5.7.1 <client.example[192.0.2.8]>: Client host rejected: lpn LPN000_630",
			"policyviolation", false},
		{"orange code without a cause", "4.2.1", "421 4.2.1 Service refuse. Veuillez essayer plus tard. OFR004_201",
			"", false},
		// Postfix pipe(8) quotes what the local program printed: its
		// "Connection refused" is the program failing to reach its own
		// daemon, not a remote server refusing us.
		{"pipe command output", "4.3.0", "temporary failure. Command output: scanmail: cannot connect to the scanning daemon: Connection refused",
			"systemerror", false},
		// The protocol status X.5.0 on a bare 550 refusal of the
		// mailbox: Exchange and IIS report a refused recipient so.
		{"x.5.0 mailbox unavailable", "5.5.0", "550 Requested action not taken: mailbox unavailable (4177:-22)",
			"userunknown", true},
		// ...but not once the message's content was sent: then it may
		// as well be a filter's wording.
		{"x.5.0 after data", "5.5.0", "host mx.example.net said: 550 Requested action not taken: mailbox unavailable (in reply to end of DATA command)",
			"filtered", false},
		// Any other status that names no address keeps the doubt.
		{"x.0.0 mailbox unavailable", "5.0.0", "550 Requested action not taken: mailbox unavailable",
			"filtered", false},
		// A directory the mail system could not reach is its own
		// failure, even when the queue gave up meanwhile.
		{"ldap unreachable", "4.4.3", "Could not contact the LDAP server (#4.4.3). Giving up: the message has been in the queue too long.",
			"systemerror", false},
		{"ldap lookup failed", "4.3.0", "temporary failure: LDAP lookup for recipient failed: timeout",
			"systemerror", false},
		// Amazon SES relays only for identities its customer verified.
		{"ses unverified identity", "5.0.0", "554 Message rejected: Email address is not verified. The following identities failed the check in region EU-WEST-1: news@example.org",
			"norelaying", false},
		// A receiver that takes mail from few IPs without a verifiable
		// name; the warning's "delivery attempts will continue" does
		// not make it an expiry.
		{"unverifiable sending ip", "4.0.0", "SMTP error from remote mail server after MAIL FROM:<a@example.org>: 450 we accept mail from at most 3 unverifiable sending IPs - mta.example.org is not 192.0.2.9. Delivery attempts will continue for some time.",
			"requireptr", false},
		// A server that cannot load its own data fails on its side.
		{"could not load", "4.0.0", "host mx.example.net said: 451 Could not load the routing table for domain example.net (in reply to RCPT TO command)",
			"systemerror", false},
		// au (KDDI) refuses a sender the recipient's reception filter
		// does not allow with "User unknown" of an empty address; the
		// mailbox exists.
		{"unknown of no address", "5.0.0", "host mx.phone.example said: 550 : User unknown (in reply to end of DATA command)",
			"filtered", false},
		{"unknown of no address relayed", "5.1.351", "550 5.1.351 Remote server returned unknown recipient or mailbox unavailable -> 550 : User unknown",
			"filtered", false},
		{"unknown of a named address", "5.1.1", "550 5.1.1 <nobody@example.net>: User unknown",
			"userunknown", true},
		// "Unknown or full" in Spanish is no reason to suppress.
		{"spanish unknown or full", "", "550 <ana@example.es>: Destinatario desconocido o buzon lleno (in reply to RCPT TO command)",
			"mailboxfull", false},
		// X.4.1 is "no answer from host": a host that answered with a
		// reply did not time out.
		{"x.4.1 answered", "5.4.1", "host mx.example.org said: 541 5.4.1 Mail refused by the destination (in reply to RCPT TO command)",
			"onhold", false},
		{"x.4.1 no answer", "4.4.1", "connect to mx.example.org[192.0.2.4]:25: Connection timed out",
			"expired", false},
		// Postfix's "Recipient address rejected:" followed by an access
		// table's own words says no more than that the address was
		// refused; on its own, as the reply to RCPT TO, it still reads
		// as the address being unknown.
		{"restriction text", "5.0.0", "host mx.example.org said: 550 5.0.0 <a@example.org>: Recipient address rejected: Please use our other gateway (in reply to RCPT TO command)",
			"onhold", false},
		{"bare recipient rejected", "5.0.0", "host mx.example.org said: 550 <a@example.org>: Recipient address rejected. (in reply to RCPT TO command)",
			"userunknown", true},
		// Cox ends its refusals with a code of its own after "AUP#".
		{"cox blocked ip code", "5.1.0", "550 5.1.0 <news@example.org> sender rejected. Refer to the error codes page. AUP#CDRBL",
			"blocked", false},
		{"cox url blocklist code", "5.7.1", "554 5.7.1 message rejected, see the error codes page AUP#URLBL1001",
			"spamdetected", false},
		{"cox unknown code", "5.1.0", "550 5.1.0 <news@example.org> sender rejected AUP#ZZZZ",
			"", false},
		{"not a code", "5.0.0", "550 5.0.0 message from OFR_5061 refused: user unknown",
			"", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			reason, hard, _ := ClassifyReply(c.status, c.text)
			if c.reason == "" {
				// Not decided by the rule: the words decide, as before.
				if got := providerCodeReason(c.text); got != "" {
					t.Errorf("providerCodeReason(%q) = %q, want none", c.text, got)
				}
				return
			}
			if reason != c.reason || hard != c.hard {
				t.Errorf("ClassifyReply(%q, %q) = %s hard=%v, want %s hard=%v", c.status, c.text, reason, hard, c.reason, c.hard)
			}
		})
	}
}
