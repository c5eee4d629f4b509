package bouncepipe

import (
	"encoding/json"
	"strings"
)

// Amazon SES sends its bounce, complaint and delivery notifications as a
// JSON document in the text of a mail (SES Developer Guide, "Contents of
// notifications for Amazon SES"): a relay that sends through SES sees its
// returned mail in that form.

type sesNotification struct {
	NotificationType string `json:"notificationType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"` // Permanent, Transient, Undetermined
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
		ReportingMTA string `json:"reportingMTA"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
		UserAgent             string `json:"userAgent"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ArrivalDate           string `json:"arrivalDate"`
	} `json:"complaint"`
	Delivery *struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
		ReportingMTA string   `json:"reportingMTA"`
	} `json:"delivery"`
	Mail struct {
		Source string `json:"source"`
	} `json:"mail"`
}

// snsEnvelope is the Amazon SNS message an SES notification may come in
// when a topic delivers to an email endpoint in JSON.
type snsEnvelope struct {
	Type    string `json:"Type"`
	Message string `json:"Message"`
}

// sesNotice finds an SES notification in the text parts, bare or inside
// an SNS envelope.
func (m *mailView) sesNotice() *sesNotification {
	for _, t := range m.c.texts {
		if strings.Contains(t, `"Type"`) && strings.Contains(t, `"Notification"`) && strings.Contains(t, `notificationType`) {
			if i, j := strings.IndexByte(t, '{'), strings.LastIndexByte(t, '}'); i >= 0 && j > i {
				var env snsEnvelope
				if json.Unmarshal([]byte(strings.ReplaceAll(t[i:j+1], "\n", "")), &env) == nil && env.Message != "" {
					t = env.Message
				}
			}
		}
		i := strings.Index(t, `{"notificationType"`)
		if i < 0 {
			continue
		}
		t = t[i:]
		if j := strings.LastIndexByte(t, '}'); j > 0 {
			t = t[:j+1]
		}
		// Mail clients and SNS wrap the one-line document; JSON has no
		// line breaks inside strings, so dropping them loses nothing.
		t = strings.ReplaceAll(t, "\n", "")
		var n sesNotification
		if json.Unmarshal([]byte(t), &n) == nil && n.NotificationType != "" {
			return &n
		}
	}
	return nil
}

// ses fills the report from an SES notification; false when there is none.
func (m *mailView) ses() bool {
	n := m.sesNotice()
	if n == nil {
		return false
	}
	rep := m.rep
	switch {
	case n.NotificationType == "Complaint" && n.Complaint != nil:
		rep.Kind = Complaint
		rep.FeedbackType = normalFeedbackType(n.Complaint.ComplaintFeedbackType)
		if rep.FeedbackType == "" {
			rep.FeedbackType = "abuse"
		}
		rep.UserAgent = n.Complaint.UserAgent
		rep.ArrivalDate = n.Complaint.ArrivalDate
		rep.OriginalMailFrom = cleanAddress(n.Mail.Source)
		for _, r := range n.Complaint.ComplainedRecipients {
			rep.Records = append(rep.Records, Record{Recipient: cleanAddress(r.EmailAddress), Reason: "feedback"})
		}
		if len(rep.Records) == 0 {
			rep.Records = append(rep.Records, Record{Reason: "feedback"})
		}
	case n.NotificationType == "Bounce" && n.Bounce != nil:
		rep.Kind = Bounce
		if n.Bounce.BounceType == "Transient" {
			rep.Kind = Delay
		}
		rep.ReportingMTA = typedValue(n.Bounce.ReportingMTA)
		for _, b := range n.Bounce.BouncedRecipients {
			r := Record{Recipient: cleanAddress(b.EmailAddress), Action: strings.ToLower(b.Action), Status: findStatus(b.Status)}
			diag := b.DiagnosticCode
			if t, rest, ok := strings.Cut(diag, ";"); ok && !strings.ContainsAny(strings.TrimSpace(t), " \t") {
				diag = strings.TrimSpace(rest)
			}
			r.Diagnostic = trimDiagnostic(diag)
			r.ReplyCode = findReplyCode(diag)
			if r.Action == "" {
				r.Action = "failed"
			}
			d := scanTags(diag)
			m.addRecord(r, recordCtx{diag: d})
		}
	case n.NotificationType == "Delivery" && n.Delivery != nil:
		rep.Kind = Delivered
		rep.ReportingMTA = n.Delivery.ReportingMTA
		for _, a := range n.Delivery.Recipients {
			r := Record{Recipient: cleanAddress(a), Action: "delivered", Status: findStatus(n.Delivery.SMTPResponse)}
			r.Diagnostic = trimDiagnostic(n.Delivery.SMTPResponse)
			r.ReplyCode = findReplyCode(n.Delivery.SMTPResponse)
			m.addRecord(r, recordCtx{})
		}
	default:
		return false
	}
	return true
}
