package bouncepipe

import (
	"strings"
)

// IsUnsubscribeRequest reports whether a mail with this subject and body
// reads like a request to be removed from a mailing list (RFC 2369 §3.2
// mailto commands are usually just "unsubscribe"). It looks only at the
// subject and the first few lines of the body, each short, so a person's
// long reply, or one quoting a footer with an unsubscribe link, does not
// count.
func IsUnsubscribeRequest(subject, body string) bool {
	if isReplySubject(subject) {
		if i := strings.IndexByte(subject, ':'); i >= 0 {
			subject = subject[i+1:]
		}
	}
	if shortRequest(subject) {
		return true
	}
	n := 0
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ">") || hasPrefixFold(l, "on ") && strings.HasSuffix(l, "wrote:") || strings.HasPrefix(l, "--") {
			break // quoted text or a signature follows
		}
		if shortRequest(l) {
			return true
		}
		if n++; n >= 3 {
			break
		}
	}
	return false
}

// shortRequest reports whether s is a short line asking to unsubscribe.
func shortRequest(s string) bool {
	return wording.hasShort(s, listTag(listUnsubscribe), 8)
}

// isAppleUnsubscribe reports whether the message is the mail Apple Mail
// sends to a List-Unsubscribe mailto address on the user's behalf.
func (m *mailView) isAppleUnsubscribe() bool {
	return strings.EqualFold(strings.TrimSpace(m.c.header.Get("X-Apple-Unsubscribe")), "true")
}

// unsubscribe reports the message as an unsubscribe request from its
// author: one record with reason "feedback", as an RFC 5965 opt-out report
// would say.
func (m *mailView) unsubscribe() {
	rep := m.rep
	rep.Kind = Unsubscribe
	rep.FeedbackType = "opt-out"
	rep.AutoReply = ""
	rep.Records = []Record{{Recipient: rep.From, Reason: "feedback"}}
	m.ctx = nil
}
