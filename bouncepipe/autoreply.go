package bouncepipe

import (
	"strings"
)

// Automatic replies. RFC 3834 §5 asks responders to mark their replies
// "Auto-Submitted: auto-replied"; many older ones use vendor fields
// instead, and some use nothing but their subject. Challenge-response
// systems ask the sender to prove they are human before the mail is
// delivered: to a bulk sender they are auto-replies, never to be answered.

// autoReply recognises an automatic reply and reports it with one record
// naming its author, reason "vacation".
func (m *mailView) autoReply() bool {
	h := m.c.header
	kind := ""
	as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted")))
	text := m.firstText()
	head := text
	if len(head) > 4096 {
		head = head[:4096]
	}
	body := scanTags(head)
	subj := scanTags(m.rep.Subject)
	switch {
	case body.has(listTag(listChallenge)) || subj.has(listTag(listChallenge)) ||
		h.Get("X-Boxbe-Challenge") != "" || h.Get("X-Challenge") != "":
		kind = "challenge-response"
	case strings.HasPrefix(as, "auto-replied"): // RFC 3834 §5
		kind = "vacation"
	case h.Get("X-Autoreply") != "" || h.Get("X-Autorespond") != "" || h.Get("X-Auto-Reply") != "" ||
		h.Get("X-Autoresponse") != "" || h.Get("X-Vacation") != "":
		kind = "vacation"
	case strings.EqualFold(strings.TrimSpace(h.Get("Precedence")), "auto_reply") ||
		strings.EqualFold(strings.TrimSpace(h.Get("X-Precedence")), "auto_reply"):
		kind = "vacation"
	case subj.has(listTag(listAutoSubject)) || hasPrefixFold(strings.TrimSpace(m.rep.Subject), "auto:"):
		kind = "vacation"
	case strings.HasPrefix(as, "auto-generated") && body.has(listTag(listAutoBody)):
		kind = "vacation"
	case h.Get("X-Auto-Response-Suppress") != "" && body.has(listTag(listAutoBody)) && !isReplySubject(m.rep.Subject):
		kind = "vacation"
	case strings.TrimSpace(h.Get("Return-Path")) == "<>" && body.has(listTag(listAutoBody)) && !isReplySubject(m.rep.Subject):
		// RFC 3834 §3.3: a responder sends its reply with a null
		// return path; a person's mail does not come so.
		kind = "vacation"
	}
	if kind == "" {
		return false
	}
	m.rep.Kind = AutoReply
	m.rep.AutoReply = kind
	r := Record{Recipient: m.rep.From, Reason: "vacation"}
	d := strings.TrimSpace(head)
	r.Diagnostic = trimDiagnostic(d)
	m.addRecord(r, recordCtx{})
	return true
}
