package bouncepipe

import (
	"fmt"
)

// Kind says what a returned message is.
type Kind int

// The kinds of returned mail. The zero value is Unknown.
const (
	// Unknown is a message that could not be read at all.
	Unknown Kind = iota
	// Bounce is a failed delivery: a DSN with Action: failed (RFC 3464
	// §2.3.3) or a non-standard non-delivery report.
	Bounce
	// Delay is a warning that delivery is still being retried (Action:
	// delayed) and nothing failed yet.
	Delay
	// Delivered is a positive DSN: delivered, relayed or expanded.
	Delivered
	// Complaint is a feedback report (RFC 5965): a recipient pressed
	// "this is spam", or an authentication failure report.
	Complaint
	// AutoReply is an automatic response (RFC 3834): vacation or
	// out-of-office notices, challenge-response requests.
	AutoReply
	// Unsubscribe is a request to be removed, sent to our unsubscribe
	// address (RFC 2369 List-Unsubscribe mailto).
	Unsubscribe
	// Human is anything else: a person's reply, or a provider's
	// administrative mail. It is forwarded to a person, never dropped.
	Human
)

var kindNames = [...]string{
	Unknown:     "unknown",
	Bounce:      "bounce",
	Delay:       "delay",
	Delivered:   "delivered",
	Complaint:   "complaint",
	AutoReply:   "autoreply",
	Unsubscribe: "unsubscribe",
	Human:       "human",
}

// String returns the lower-case name of k, such as "bounce".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// MarshalText encodes k as its name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("bouncepipe: unknown kind %q", b)
}

// Report is what Parse found in one returned message.
type Report struct {
	Kind Kind `json:"kind"`
	// Records has one entry per recipient the message reports on: a DSN
	// may report several, a complaint names the complained-about
	// recipient if the provider did not redact it, an auto-reply its
	// author.
	Records []Record `json:"records,omitempty"`

	// ReportingMTA is the Reporting-MTA of a DSN (RFC 3464 §2.2.2) or
	// the Reporting-MTA of a feedback report (RFC 5965 §3.2), without
	// its "dns;" type.
	ReportingMTA string `json:"reporting_mta,omitempty"`

	// Feedback report fields, RFC 5965 §3.1 and §3.2.
	FeedbackType     string   `json:"feedback_type,omitempty"`
	UserAgent        string   `json:"user_agent,omitempty"`
	SourceIP         string   `json:"source_ip,omitempty"`
	ArrivalDate      string   `json:"arrival_date,omitempty"`
	ReportedDomain   []string `json:"reported_domain,omitempty"`
	ReportedURI      []string `json:"reported_uri,omitempty"`
	OriginalMailFrom string   `json:"original_mail_from,omitempty"`
	OriginalRcptTo   []string `json:"original_rcpt_to,omitempty"`
	// AuthFailure is the Auth-Failure field of an auth-failure report
	// (RFC 6591 §3.2): "dkim", "spf", "dmarc", ...
	AuthFailure string `json:"auth_failure,omitempty"`

	// AutoReply says which kind of automatic reply a Kind AutoReply
	// message is: "vacation" (out of office and other RFC 3834
	// responses) or "challenge-response".
	AutoReply string `json:"auto_reply,omitempty"`
	// AsksUnsubscribe is set when a message from a person reads like a
	// request to be removed ("unsubscribe", "remove me"): the caller may
	// treat it as one when the mail came to a list address.
	AsksUnsubscribe bool `json:"asks_unsubscribe,omitempty"`

	// From and Subject of the returned message itself, decoded.
	From    string `json:"from,omitempty"`
	Subject string `json:"subject,omitempty"`

	// Original is the header of the returned original message, taken
	// from a message/rfc822, message/global, text/rfc822-headers or
	// message/rfc822-headers part, or from headers quoted inline by a
	// non-standard bounce. It is nil when the report carries none. Only
	// the first kilobytes of it are kept.
	Original *Header `json:"-"`

	// Tokens are the candidate per-copy tokens found in our own
	// addresses and links, best first. None is verified.
	Tokens []Candidate `json:"tokens,omitempty"`
}

// Record is what a report says about one recipient.
type Record struct {
	// Recipient is the lower-cased address the report names: the
	// Final-Recipient of a DSN (RFC 3464 §2.3.2), else its
	// Original-Recipient, else the address a non-standard bounce names.
	// It is "" when the report does not say, or redacts it.
	Recipient string `json:"recipient"`
	// Action is the DSN action (RFC 3464 §2.3.3): failed, delayed,
	// delivered, relayed or expanded; "" for complaints and replies.
	Action string `json:"action,omitempty"`
	// Status is the RFC 3463 enhanced status code, "5.1.1", or "".
	Status string `json:"status,omitempty"`
	// ReplyCode is the SMTP reply code, "550", or "".
	ReplyCode string `json:"reply_code,omitempty"`
	// Diagnostic is the remote server's text on one line, trimmed to
	// MaxDiagnostic bytes.
	Diagnostic string `json:"diagnostic,omitempty"`
	// RemoteMTA is the server that gave the diagnostic, if named.
	RemoteMTA string `json:"remote_mta,omitempty"`
	// Command is the SMTP command the failure answered (CONN, EHLO,
	// MAIL, RCPT, DATA), if the report says.
	Command string `json:"command,omitempty"`
	// Reason is the Sisimai v5 reason name: userunknown, mailboxfull,
	// blocked, feedback, vacation, delivered, ...
	Reason string `json:"reason"`
	// Hard marks a permanent, address-level failure: only these
	// suppress the recipient at once (M3AAWG BCP §3.8).
	Hard bool `json:"hard"`
	// SenderProblem marks a failure that blames the sender rather than
	// the recipient: a blocklisted IP, spam content, policy,
	// authentication, reputation, rate limits. It is recorded but never
	// held against the recipient (M3AAWG BCP §3.8).
	SenderProblem bool `json:"sender_problem,omitempty"`
}

// MaxDiagnostic is the longest Record.Diagnostic kept, in bytes.
const MaxDiagnostic = 512

// Categories returned by Record.Category, as the corpus labels write them.
const (
	CategoryHard      = "hard"
	CategorySoft      = "soft"
	CategoryComplaint = "complaint"
)

// Category returns "hard" for a hard failure, "soft" for any other
// failure or delay, "complaint" for a feedback report and "" for
// anything that is not a failure (delivered, auto-replies).
func (r Record) Category() string {
	switch r.Reason {
	case "feedback":
		return CategoryComplaint
	case "delivered", "vacation", "":
		return ""
	}
	if r.Hard {
		return CategoryHard
	}
	return CategorySoft
}

// Category returns the strongest category among the records: complaint,
// then hard, then soft; "" when no record is a failure.
func (rep *Report) Category() string {
	best := ""
	rank := map[string]int{"": 0, CategorySoft: 1, CategoryHard: 2, CategoryComplaint: 3}
	for _, r := range rep.Records {
		if c := r.Category(); rank[c] > rank[best] {
			best = c
		}
	}
	return best
}

// Candidate is a string shaped like a senderkit token, found in one of our
// own addresses or links. It is not verified.
type Candidate struct {
	// Token is the token, lower-cased.
	Token string `json:"token"`
	// Where says where it was found, one of the Where constants:
	// "recipient" (the envelope recipient the report was delivered to,
	// Options.Recipient), "report-header" (the report's own To,
	// Delivered-To or X-Original-To), "report-original-mail-from" (a
	// feedback report's Original-Mail-From, RFC 5965 §3.2),
	// "original-return-path", "original-list-unsubscribe" (RFC 2369),
	// "original-header" (another field of the returned original naming
	// our address), "body" (our address or link in the text).
	Where string `json:"where"`
}

// Where values of Candidate, most trustworthy first.
const (
	WhereRecipient       = "recipient"
	WhereReportHeader    = "report-header"
	WhereMailFrom        = "report-original-mail-from"
	WhereReturnPath      = "original-return-path"
	WhereListUnsubscribe = "original-list-unsubscribe"
	WhereOriginalHeader  = "original-header"
	WhereBody            = "body"
)
