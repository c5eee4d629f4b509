package bouncepipe

import (
	"strings"
)

// feedbackReport is the content of a message/feedback-report part
// (RFC 5965 §3).
type feedbackReport struct {
	feedbackType     string   // §3.1 Feedback-Type, lower-cased
	userAgent        string   // §3.1 User-Agent
	version          string   // §3.1 Version
	arrivalDate      string   // §3.2 Arrival-Date (or Received-Date)
	sourceIP         string   // §3.2 Source-IP
	reportingMTA     string   // §3.2 Reporting-MTA
	originalMailFrom string   // §3.2 Original-Mail-From
	originalRcptTo   []string // §3.2 Original-Rcpt-To
	reportedDomain   []string // §3.2 Reported-Domain
	reportedURI      []string // §3.2 Reported-URI
	removalRecipient []string // Removal-Recipient, RFC 5965 §3.2 note (opt-out)
	authFailure      string   // RFC 6591 §3.2 Auth-Failure
}

// parseFeedback reads the fields of a feedback report. Field names are
// case-insensitive; unknown fields are ignored (RFC 5965 §3.3).
func parseFeedback(b string) feedbackReport {
	var f feedbackReport
	for _, fl := range splitFields(b) {
		if fl.blank {
			continue
		}
		v := fl.value
		switch fl.name {
		case "feedback-type":
			f.feedbackType = strings.ToLower(firstWord(v))
		case "user-agent":
			f.userAgent = v
		case "version":
			f.version = v
		case "arrival-date", "received-date":
			if f.arrivalDate == "" {
				f.arrivalDate = v
			}
		case "source-ip":
			f.sourceIP = firstWord(v)
		case "reporting-mta":
			f.reportingMTA = typedValue(v)
		case "original-mail-from":
			f.originalMailFrom = cleanAddress(v)
		case "original-rcpt-to":
			if a := cleanAddress(v); a != "" {
				f.originalRcptTo = append(f.originalRcptTo, a)
			}
		case "removal-recipient":
			if a := cleanAddress(v); a != "" {
				f.removalRecipient = append(f.removalRecipient, a)
			}
		case "reported-domain":
			f.reportedDomain = append(f.reportedDomain, strings.ToLower(firstWord(v)))
		case "reported-uri":
			f.reportedURI = append(f.reportedURI, firstWord(v))
		case "auth-failure":
			f.authFailure = strings.ToLower(firstWord(v))
		}
	}
	return f
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t;"); i > 0 {
		s = s[:i]
	}
	return strings.Trim(s, "[]<>")
}

// isFeedback reports whether the message is a complaint: it has a
// message/feedback-report part or is a multipart/report of that type
// (RFC 5965 §2), carries feedback fields in a mislabelled text part, or is
// a Microsoft JMRP report, whose attached original names the complaining
// recipient in X-HmXmrOriginalRecipient.
func (m *mailView) isFeedback() bool {
	c := m.c
	if len(c.feedback) > 0 || c.reportType == "feedback-report" {
		return true
	}
	if len(c.dsn) > 0 {
		return false
	}
	for _, t := range c.texts {
		if hasFeedbackFields(t) {
			return true
		}
	}
	return c.original != nil && c.original.Get("X-HmXmrOriginalRecipient") != ""
}

// hasFeedbackFields reports whether text holds RFC 5965 §3.1 required
// fields written as plain text.
func hasFeedbackFields(text string) bool {
	f := reportFields(text)
	return f&fieldFeedbackType != 0 && f&(fieldUserAgent|fieldVersion) != 0
}

// Report fields that may start a line of text, as reportFields finds them.
const (
	fieldFeedbackType = 1 << iota // RFC 5965 §3.1
	fieldUserAgent
	fieldVersion
	fieldFinalRecipient // RFC 3464 §2.3
	fieldOriginalRecipient
	fieldAction
	fieldStatus
)

// reportFieldNames are the fields reportFields looks for, lower-cased,
// in the order of their bits.
var reportFieldNames = [...]string{"feedback-type:", "user-agent:", "version:", "final-recipient:", "original-recipient:", "action:", "status:"}

// reportFields returns which report fields start a line of text (any
// case), in one pass over its lines.
func reportFields(text string) int {
	found := 0
	for off := 0; off < len(text); {
		switch lowerByte[text[off]] {
		case 'f', 'u', 'v', 'o', 'a', 's':
			for i, name := range reportFieldNames {
				if found&(1<<i) == 0 && hasPrefixFold(text[off:], name) {
					found |= 1 << i
				}
			}
		}
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	return found
}

// feedback fills the report from a feedback report: one record per
// Original-Rcpt-To (RFC 5965 §3.2), else per Removal-Recipient, else the
// recipient the returned original names. Providers often redact it
// (RFC 6449 §4.1.4); the record then has no recipient.
func (m *mailView) feedback() {
	rep := m.rep
	rep.Kind = Complaint
	var f feedbackReport
	switch {
	case len(m.c.feedback) > 0:
		f = parseFeedback(m.c.feedback[0])
	default:
		for _, t := range m.c.texts {
			if hasFeedbackFields(t) {
				f = parseFeedback(t)
				break
			}
		}
	}
	ft := normalFeedbackType(f.feedbackType)
	if ft == "" {
		ft = "abuse" // a JMRP report or a report without its type is a spam complaint
	}
	rep.FeedbackType = ft
	rep.UserAgent = f.userAgent
	rep.SourceIP = f.sourceIP
	rep.ArrivalDate = f.arrivalDate
	rep.ReportingMTA = f.reportingMTA
	rep.OriginalMailFrom = f.originalMailFrom
	rep.OriginalRcptTo = f.originalRcptTo
	rep.ReportedDomain = f.reportedDomain
	rep.ReportedURI = f.reportedURI
	rep.AuthFailure = f.authFailure

	rcpts := f.originalRcptTo
	if len(rcpts) == 0 {
		rcpts = f.removalRecipient
	}
	if len(rcpts) == 0 && m.c.original != nil {
		o := m.c.original
		if a := cleanAddress(o.Get("X-HmXmrOriginalRecipient")); a != "" {
			rcpts = []string{a} // Microsoft JMRP
		} else if to := findAddresses(o.Get("To")); len(to) == 1 {
			rcpts = to
		}
	}
	if len(rcpts) == 0 {
		rcpts = []string{""}
	}
	seen := map[string]bool{}
	for _, a := range rcpts {
		if seen[a] {
			continue
		}
		seen[a] = true
		rep.Records = append(rep.Records, Record{Recipient: a, Reason: "feedback"})
	}
}

// normalFeedbackType returns a Feedback-Type lower-cased, with the
// draft-era names of RFC 6591 reports mapped to "auth-failure"; other
// types are kept as written, as RFC 5965 §7.3 lets the registry grow.
func normalFeedbackType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	switch t {
	case "":
		return ""
	case "dkim", "spf", "dmarc":
		return "auth-failure" // draft-era names for RFC 6591 reports
	case "optout":
		return "opt-out"
	}
	return t
}
