package bouncepipe

import (
	"fmt"
	"strings"
	"testing"
)

// TestClassifyReply: the log follower's lines classify as the returned
// DSN of the same failure would.
func TestClassifyReply(t *testing.T) {
	for _, c := range []struct {
		status, text string
		reason       string
		hard, sender bool
	}{
		{"5.1.1", "host mx.example.com[192.0.2.25] said: 550 5.1.1 <a@example.com>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
			"userunknown", true, false},
		{"5.7.1", "host mx.example.com[192.0.2.25] said: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1 (in reply to RCPT TO command)",
			"blocked", false, true},
		{"5.2.2", "host mx.example.com[192.0.2.25] said: 552 5.2.2 <a@example.com>: mailbox full (in reply to RCPT TO command)",
			"mailboxfull", false, false},
		{"4.2.2", "host mx.example.com[192.0.2.25] said: 452 4.2.2 The email account that you tried to reach is over quota (in reply to RCPT TO command)",
			"mailboxfull", false, false},
		{"4.7.28", "host gmail-smtp-in.l.google.com[192.0.2.26] said: 421-4.7.28 Our system has detected an unusual rate of unsolicited mail (in reply to end of DATA command)",
			"spamdetected", false, true},
		{"5.7.26", "host mx.example.com[192.0.2.25] said: 550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users (in reply to end of DATA command)",
			"authfailure", false, true},
		{"4.4.1", "connect to mx.example.com[192.0.2.25]:25: Connection timed out",
			"expired", false, false},
		{"5.1.2", "Host or domain name not found. Name service error for name=nxdomain.example type=A: Host not found",
			"hostunknown", true, false},
		{"5.1.10", "host mx.example.com[192.0.2.25] said: 556 5.1.10 Recipient address has null MX",
			"notaccept", true, false},
		// "user unknown" after DATA, with no code about the address, is
		// a content filter's wording as often as not: soft.
		{"5.0.0", "host mx.example.com[192.0.2.25] said: 550 User unknown (in reply to end of DATA command)",
			"filtered", false, false},
		// A temporary "user unknown" is never hard (RFC 5321 §4.2.1).
		{"4.1.1", "host mx.example.com[192.0.2.25] said: 450 4.1.1 <a@example.com>: Recipient address rejected: User unknown in local recipient table (in reply to RCPT TO command)",
			"userunknown", false, false},
		{"2.0.0", "250 2.0.0 OK", "delivered", false, false},
	} {
		reason, hard, sender := ClassifyReply(c.status, c.text)
		if reason != c.reason || hard != c.hard || sender != c.sender {
			t.Errorf("ClassifyReply(%q, %q) = %s hard=%v sender=%v, want %s hard=%v sender=%v",
				c.status, c.text, reason, hard, sender, c.reason, c.hard, c.sender)
		}
		// The DSN Postfix returns for the same failure says the same.
		if _, said, ok := strings.Cut(c.text, "said: "); ok {
			reply, _, _ := strings.Cut(said, " (in reply to")
			rep, err := Parse(strings.NewReader(postfixDSN(c.status, c.text, reply)), Options{})
			if err != nil || len(rep.Records) != 1 {
				t.Fatalf("parsing the DSN of %q: %v %+v", c.text, err, rep)
			}
			if r := rep.Records[0]; r.Reason != reason || r.Hard != hard || r.SenderProblem != sender {
				t.Errorf("the DSN of %q gives %s hard=%v sender=%v, the log line %s hard=%v sender=%v",
					c.text, r.Reason, r.Hard, r.SenderProblem, reason, hard, sender)
			}
		}
	}
}

// postfixDSN is the delivery status notification Postfix's bounce(8)
// writes for one failed recipient, as in testdata/01-postfix-dsn-failed.eml.
func postfixDSN(status, text, reply string) string {
	action := "failed"
	if strings.HasPrefix(status, "4.") {
		action = "delayed"
	}
	return fmt.Sprintf(`From: MAILER-DAEMON@mta.example.org (Mail Delivery System)
To: b+token@bounces.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mta.example.org.

<a@example.com>: %s

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mta.example.org

Final-Recipient: rfc822; a@example.com
Action: %s
Status: %s
Diagnostic-Code: smtp; %s

--B--
`, text, action, status, reply)
}
