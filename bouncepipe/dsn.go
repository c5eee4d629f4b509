package bouncepipe

import (
	"sort"
	"strings"
)

// dsn is the content of a message/delivery-status part (RFC 3464 §2).
type dsn struct {
	reportingMTA string // RFC 3464 §2.2.2
	arrivalDate  string // RFC 3464 §2.2.5
	recipients   []dsnRecipient
}

// dsnRecipient is one per-recipient block (RFC 3464 §2.3).
type dsnRecipient struct {
	finalRecipient    string // §2.3.2
	originalRecipient string // §2.3.1
	actualRecipient   string // X-Actual-Recipient (Sendmail)
	action            string // §2.3.3
	status            string // §2.3.4
	remoteMTA         string // §2.3.5
	diagnosticType    string // §2.3.6: "smtp", "x-unix", ...
	diagnostic        string
	diagnosticStatus  string // X-Postfix-... or vendor "X-...-Status"
	statusComment     string // "(host name lookup failure)" after the status
}

func (r *dsnRecipient) empty() bool {
	return *r == dsnRecipient{}
}

func (r *dsnRecipient) hasAddress() bool {
	return r.finalRecipient != "" || r.originalRecipient != ""
}

// field is one unfolded "Name: value" line.
type field struct {
	name  string // lower-cased
	value string
	blank bool // a blank line, separating blocks
}

// splitFields unfolds the header-like lines of b into fields (RFC 3464
// §2.1 uses RFC 822 header syntax), keeping blank lines as separators.
// Lines that are not fields are dropped.
func splitFields(b string) []field {
	out := make([]field, 0, strings.Count(b, "\n")+1)
	for rest := b; rest != ""; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			out = append(out, field{blank: true})
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(out); n > 0 && !out[n-1].blank {
				out[n-1].value += " " + strings.TrimSpace(line)
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(strings.TrimSpace(name), " \t") || name == "" {
			continue
		}
		out = append(out, field{name: fieldName(strings.TrimSpace(name)), value: strings.TrimSpace(value)})
	}
	return out
}

// parseDSN reads the per-message and per-recipient fields of a
// delivery-status body (RFC 3464 §2.2, §2.3). It is lenient: a block
// missing its blank line still starts a new recipient when a second
// Final-Recipient or Original-Recipient appears.
func parseDSN(b string) dsn {
	var d dsn
	var cur *dsnRecipient
	flush := func() {
		if cur != nil && !cur.empty() {
			d.recipients = append(d.recipients, *cur)
		}
		cur = nil
	}
	for _, f := range splitFields(b) {
		if f.blank {
			if cur != nil && cur.hasAddress() {
				flush()
			}
			continue
		}
		v := f.value
		switch f.name {
		case "reporting-mta":
			d.reportingMTA = typedValue(v)
			continue
		case "arrival-date":
			d.arrivalDate = v
			continue
		case "final-recipient", "original-recipient", "x-actual-recipient":
			// A second address of the same kind starts a new block.
			if cur != nil && (f.name == "final-recipient" && cur.finalRecipient != "" ||
				f.name == "original-recipient" && cur.originalRecipient != "") {
				flush()
			}
			if cur == nil {
				cur = &dsnRecipient{}
			}
			switch f.name {
			case "final-recipient":
				cur.finalRecipient = cleanAddress(v)
			case "original-recipient":
				cur.originalRecipient = cleanAddress(v)
			default:
				cur.actualRecipient = cleanAddress(v)
			}
			continue
		}
		rf := recipientField(f.name)
		if rf == "" {
			continue
		}
		if cur == nil {
			// A per-recipient field after a stray blank line: it belongs
			// to the last recipient if that one lacks it.
			if n := len(d.recipients); n > 0 && !d.recipients[n-1].has(rf) {
				cur = &d.recipients[n-1]
				d.recipients = d.recipients[:n-1]
			} else {
				cur = &dsnRecipient{}
			}
		}
		cur.set(rf, v)
	}
	flush()
	return d
}

// recipientField maps a field name to the per-recipient field it fills.
func recipientField(name string) string {
	switch name {
	case "action", "status", "remote-mta", "diagnostic-code":
		return name
	case "x-postfix-sender", "x-postfix-queue-id":
		return ""
	}
	return ""
}

func (r *dsnRecipient) has(name string) bool {
	switch name {
	case "action":
		return r.action != ""
	case "status":
		return r.status != ""
	case "remote-mta":
		return r.remoteMTA != ""
	case "diagnostic-code":
		return r.diagnostic != ""
	}
	return false
}

func (r *dsnRecipient) set(name, v string) {
	switch name {
	case "action":
		// RFC 3464 §2.3.3 allows a comment after the action.
		a := strings.ToLower(strings.TrimSpace(v))
		if i := strings.IndexAny(a, " \t(;"); i > 0 {
			a = a[:i]
		}
		r.action = a
	case "status":
		r.status = findStatus(v)
		if i := strings.IndexByte(v, '('); i >= 0 {
			r.statusComment = strings.Trim(v[i:], "() \t")
		}
	case "remote-mta":
		r.remoteMTA = typedValue(v)
	case "diagnostic-code":
		t, text, ok := strings.Cut(v, ";")
		if ok && !strings.ContainsAny(strings.TrimSpace(t), " \t") && len(t) < 20 {
			r.diagnosticType = strings.ToLower(strings.TrimSpace(t))
			r.diagnostic = strings.TrimSpace(text)
		} else {
			r.diagnostic = v
		}
	}
}

// typedValue drops the type of a "dns; mx.example.com" value (RFC 3464
// §2.1.2) and the comments MTAs add after the name.
func typedValue(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(strings.TrimSpace(t), " \t") {
		v = rest
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t("); i > 0 {
		v = v[:i]
	}
	return strings.Trim(v, "[]<>")
}

// hasDSNFields reports whether text carries RFC 3464 per-recipient fields
// written as plain text, as some MTAs do instead of a delivery-status part.
func hasDSNFields(text string) bool {
	f := reportFields(text)
	return f&(fieldFinalRecipient|fieldOriginalRecipient) != 0 && f&(fieldAction|fieldStatus) != 0
}

// dsnRecords fills the report from delivery-status parts, or from DSN
// fields written in a text part. It returns false when there are none
// with a recipient or an action.
func (m *mailView) dsnRecords() bool {
	var all []dsnRecipient
	reporting := ""
	read := func(b string) {
		d := parseDSN(b)
		if reporting == "" {
			reporting = d.reportingMTA
		}
		for _, r := range d.recipients {
			if r.hasAddress() || r.action != "" || r.status != "" {
				all = append(all, r)
			}
		}
	}
	for _, b := range m.c.dsn {
		read(b)
	}
	if len(all) == 0 {
		for _, t := range m.c.texts {
			if hasDSNFields(t) {
				read(t)
			}
		}
	}
	if len(all) == 0 {
		return false
	}
	rep := m.rep
	rep.ReportingMTA = reporting
	var rcpts []string
	for _, r := range all {
		if a := r.address(); a != "" {
			rcpts = append(rcpts, a)
		}
	}
	if len(rcpts) < len(all) {
		// A block without an address (a pipe, a redacted one): take
		// the one Exim names in X-Failed-Recipients.
		fill := findAddresses(m.c.header.Get("X-Failed-Recipients"))
		for i := range all {
			if all[i].address() == "" && len(fill) > 0 {
				all[i].finalRecipient = fill[0]
				fill = fill[1:]
				rcpts = append(rcpts, all[i].finalRecipient)
			}
		}
	}
	v := m.report()
	segs := segments(v, recipientLines(v, rcpts), rcpts)

	failed, delayed, delivered := false, false, false
	for _, d := range all {
		r := Record{
			Recipient: d.address(),
			Action:    d.action,
			Status:    d.status,
			RemoteMTA: d.remoteMTA,
		}
		seg := segs[r.Recipient]
		if r.Recipient == "" && len(all) == 1 {
			seg = []lineRange{{0, v.lines()}}
		}
		text := segmentText(v, seg, r.Recipient)
		diag := d.diagnostic
		if diag == "" && d.statusComment != "" && !isGenericComment(d.statusComment) {
			diag = d.statusComment // RFC 3464 §2.3.4 allows a comment after the code
		}
		if diag == "" {
			diag = text // the human-readable part says what the DSN does not
		}
		r.Diagnostic = trimDiagnostic(diag)
		r.ReplyCode = failureReplyCode(diag)
		if s := failureStatus(diag); s != "" && (r.Status == "" || isGenericStatus(r.Status) && s[0] == r.Status[0]) {
			r.Status = s // a detail the Status field left out
		}
		r.Command = commandIn(diag)
		if r.Command == "" && diag != text {
			r.Command = commandIn(text)
		}
		if r.Action == "" {
			r.Action = actionFromStatus(r.Status)
		}
		switch r.Action {
		case "failed", "failure", "expired":
			r.Action = "failed"
			failed = true
		case "delayed":
			delayed = true
		case "delivered", "relayed", "expanded":
			delivered = true
		case "deliverable":
			// Postfix's answer to an address verification request
			// (sendmail -bv): the address would have been delivered.
			r.Action = "delivered"
			delivered = true
		default:
			failed = true
		}
		x := recordCtx{diag: scanTags(unfoldReply(diag)), v: v, seg: seg, shared: len(all) > 1}
		if d.diagnosticType == "x-unix" {
			r.Command = "" // a local delivery program, not an SMTP server
			x.mailer = true
		}
		m.addRecord(r, x)
	}
	switch {
	case failed:
		rep.Kind = Bounce
	case delayed:
		rep.Kind = Delay
	case delivered:
		rep.Kind = Delivered
	default:
		rep.Kind = Bounce
	}
	return true
}

// address returns the recipient a DSN block names: Final-Recipient (RFC
// 3464 §2.3.2), else Original-Recipient, else X-Actual-Recipient.
func (r *dsnRecipient) address() string {
	switch {
	case r.finalRecipient != "":
		return r.finalRecipient
	case r.originalRecipient != "":
		return r.originalRecipient
	}
	return r.actualRecipient
}

// isGenericStatus reports whether a status says only its class: X.0.0.
func isGenericStatus(s string) bool {
	return strings.HasSuffix(s, ".0.0")
}

// actionFromStatus guesses a missing Action from the status class (RFC
// 3463 §3.1: 2 success, 4 persistent transient, 5 permanent).
func actionFromStatus(s string) string {
	switch {
	case strings.HasPrefix(s, "2."):
		return "delivered"
	case strings.HasPrefix(s, "4."):
		return "delayed"
	}
	return "failed"
}

// recipientLines finds the report lines that name one of rcpts.
func recipientLines(v *view, rcpts []string) []mention {
	var out []mention
	for _, a := range rcpts {
		for off := 0; off < len(v.text); {
			i := indexFold(v.text[off:], a)
			if i < 0 {
				break
			}
			at := off + i
			off = at + len(a)
			if at > 0 && isLocalByte(v.text[at-1]) && v.text[at-1] != '=' || off < len(v.text) && isDomainByte(v.text[off]) && v.text[off] != '.' {
				continue // part of a longer address
			}
			out = append(out, mention{line: v.lineAt(at), addr: a, weight: 3})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].line < out[j].line })
	return out
}

// knownFields are the report fields read, lower-cased (RFC 3464 §2.2,
// §2.3; RFC 5965 §3.1, §3.2; RFC 6591 §3.2).
var knownFields = []string{"reporting-mta", "arrival-date", "final-recipient", "original-recipient", "x-actual-recipient",
	"action", "status", "remote-mta", "diagnostic-code", "feedback-type", "user-agent", "version", "received-date",
	"source-ip", "original-mail-from", "original-rcpt-to", "removal-recipient", "reported-domain", "reported-uri", "auth-failure"}

// fieldName returns the lower-case name of a known field without
// allocating, or the name lower-cased.
func fieldName(name string) string {
	for _, k := range knownFields {
		if equalFoldASCII(name, k) {
			return k
		}
	}
	return asciiLower(name)
}

// isGenericComment reports whether a status comment only restates the
// code's meaning: "(permanent failure)", "(other or undefined network or
// routing status)", as RFC 3463 words them.
func isGenericComment(c string) bool {
	c = asciiLower(c)
	return strings.Contains(c, "permanent failure") || strings.Contains(c, "temporary failure") ||
		strings.Contains(c, "persistent transient failure") || strings.Contains(c, "other or undefined") || c == "success"
}
