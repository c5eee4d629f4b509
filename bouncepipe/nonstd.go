package bouncepipe

import (
	"strings"
)

// Non-standard bounces: the free-text reports that MTAs wrote before RFC
// 3464 and that many still write (qmail, Exim without DSN, Exchange,
// Domino, Courier, provider-specific ones). They share a few shapes, all
// read here by the same rules: the recipient's address on a line of its
// own or at the start of a line ("<rcpt>:", "  rcpt", "rcpt ... reason"),
// or after words that name it ("RCPT TO:<rcpt>", "delivery to rcpt
// failed"); the remote server's reply in the lines that follow it.

// looksLikeBounce reports whether a message without a delivery-status
// part reads like a non-delivery report: a daemon sender or a bounce
// subject together with report wording, or Exim's X-Failed-Recipients.
func (m *mailView) looksLikeBounce() bool {
	h := m.c.header
	if h.Get("X-Failed-Recipients") != "" {
		return true
	}
	subject := m.rep.Subject
	reply := isReplySubject(subject)
	// A multipart/report of type delivery-status (RFC 6522) speaks for
	// itself even when its delivery-status part is empty.
	bySender := wording.has(strings.ReplaceAll(h.Get("From"), "@", " "), listTag(listBounceFrom)) ||
		strings.TrimSpace(h.Get("Return-Path")) == "<>" || m.c.reportType == "delivery-status"
	bySubject := !reply && (wording.has(subject, listTag(listBounceSubject)) || containsAny(subject, bounceSubjectCJK))
	if !bySender && !bySubject {
		return false // the body alone does not make a bounce
	}
	if bySender && bySubject {
		return true
	}
	all := m.report().all()
	return all.has(listTag(listBounceBody))
}

// bounceSubjectCJK are words of Japanese and Chinese bounce subjects,
// which are not split into words: "error", "not delivered", "delivery
// failed", "returned".
var bounceSubjectCJK = []string{"エラー", "不達", "配信失敗", "送信失敗", "未達", "送信できません", "退信", "退回", "失败", "无法投递", "無法投遞"}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// isReplySubject reports whether a subject is that of a reply or a forward
// written by a person: a forwarded bounce is mail for a person.
func isReplySubject(s string) bool {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && i < 4 && isLetter(s[i]) {
		i++
	}
	if i == 0 || i > 3 {
		return false
	}
	switch strings.ToLower(s[:i]) {
	case "re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "rif", "r", "antw":
	default:
		return false
	}
	rest := strings.TrimLeft(s[i:], " ")
	if strings.HasPrefix(rest, "[") {
		if j := strings.IndexByte(rest, ']'); j > 0 {
			rest = strings.TrimLeft(rest[j+1:], " ")
		}
	}
	return strings.HasPrefix(rest, ":")
}

// reportText returns the text of the report itself: the text parts, each
// cut where a quoted copy of the returned message starts.
func (m *mailView) reportText() string {
	if m.reportStr != nil {
		return *m.reportStr
	}
	var parts []string
	for _, sp := range m.splits() {
		if !isBlankString(sp[0]) {
			parts = append(parts, sp[0])
		}
	}
	s := ""
	if len(parts) == 1 {
		s = parts[0] // no copy
	} else if len(parts) > 1 {
		s = strings.Join(parts, "\n") + "\n"
	}
	m.reportStr = &s
	return s
}

// splits returns each text part split into report and returned message,
// once.
func (m *mailView) splits() [][2]string {
	if m.splitCache == nil {
		m.splitCache = make([][2]string, len(m.c.texts))
		for i, t := range m.c.texts {
			if m.c.attached && len(m.c.dsn) > 0 {
				// A DSN with its original attached: the text parts
				// are the report alone.
				m.splitCache[i][0] = t
				continue
			}
			m.splitCache[i][0], m.splitCache[i][1] = splitReport(t)
		}
	}
	return m.splitCache
}

// report returns the report text read for phrases.
func (m *mailView) report() *view {
	if m.reportView == nil {
		m.reportView = newView(m.reportText())
	}
	return m.reportView
}

// mention is one address named in the report.
type mention struct {
	line   int
	addr   string
	weight int // 3 starts its line, 2 named as recipient, 1 in passing, 0 an alias source
}

// mentions finds the addresses named in the report's lines, weighed by
// the words around them.
func mentions(v *view, skip func(string) bool) []mention {
	var out []mention
	for l := 0; l < v.lines(); l++ {
		line := v.line(l)
		if strings.IndexByte(line, '@') < 0 {
			continue
		}
		if indexFold(line, "mail from:") >= 0 || indexFold(line, "message-id") >= 0 || indexFold(line, "envelope-from") >= 0 {
			continue
		}
		carry := -2
		scanAddresses(line, func(start, end int) {
			w := mentionWeight(line[:start])
			if carry != -2 {
				w, carry = carry, -2
			}
			if rest := strings.TrimLeft(line[end:], " \t"); strings.HasPrefix(rest, "<") {
				if j := strings.IndexByte(rest, '>'); j > 0 && strings.IndexByte(rest[:j], '@') > 0 {
					// "a@x <b@y>": RFC 5322 name-addr, the address is in
					// the angle brackets; what comes before is its name.
					carry = w
					return
				}
			}
			a := cleanAddress(line[start:end])
			if a == "" || skip(a) {
				return
			}
			if w >= 0 {
				out = append(out, mention{line: l, addr: a, weight: w})
			}
		})
	}
	return out
}

// mentionWeight weighs an address by what comes before it on its line
// (any case).
func mentionWeight(before string) int {
	if len(before) > 64 {
		before = before[len(before)-64:] // only the last words matter
	}
	b := strings.TrimRight(before, " \t<(\"'[")
	if strings.TrimLeft(b, " \t>*-•·|:.)0123456789") == "" || isReplyLead(b) {
		return 3 // the line starts with it: "<rcpt>:", "  rcpt", "550 <rcpt>..."
	}
	for _, typed := range []string{"smtp=", "smtp:", "rfc822;", "rfc822="} {
		if hasSuffixFold(b, typed) {
			return 3 // a typed address, as X.400 gateways write "SMTP=rcpt"
		}
	}
	b = strings.TrimRight(b, ":=")
	b = strings.TrimRight(b, " \t")
	last := b
	if i := strings.LastIndexAny(b, " \t<(\"'[,;"); i >= 0 {
		last = b[i+1:]
	}
	if equalsAnyFold(last, "from", "by") {
		prev := strings.TrimSpace(b[:len(b)-len(last)])
		if i := strings.LastIndexAny(prev, " \t(\"'"); i >= 0 {
			prev = prev[i+1:]
		}
		if equalsAnyFold(prev, "generated", "expanded", "forwarded", "redirected", "originally", "aliased", "alias", "rewritten") {
			return 0 // an alias the recipient was expanded from
		}
		return -1 // the sender: "mail from", "accepting mail from"
	}
	if strings.EqualFold(last, "sender") {
		return -1
	}
	if equalsAnyFold(last, "to", "rcpt", "recipient", "recipients", "address", "addressee", "mailbox", "user", "for", "account",
		"error-for", "failed", "invalid", "unknown", "destinataire", "empfänger", "recipient(s)") {
		return 2
	}
	return 1
}

// equalsAnyFold reports whether s equals one of words, ignoring ASCII case.
func equalsAnyFold(s string, words ...string) bool {
	for _, w := range words {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

// hasSuffixFold is strings.HasSuffix ignoring ASCII case.
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// isReplyLead reports whether before is only an SMTP reply code and
// status, as in Sendmail's "554 <rcpt>... Service unavailable".
func isReplyLead(before string) bool {
	t := strings.TrimSpace(before)
	if len(t) < 3 || !isDigit(t[0]) || !isDigit(t[1]) || !isDigit(t[2]) {
		return false
	}
	t = strings.TrimLeft(t[3:], " -")
	return t == "" || findStatus(t) == t
}

// nonStandard reads a non-standard bounce: one record per recipient the
// report names, with the lines that follow each as its diagnostic.
func (m *mailView) nonStandard() bool {
	if !m.looksLikeBounce() {
		return false
	}
	v := m.report()

	ms := mentions(v, m.notRecipients())
	rcpts := chooseRecipients(ms)
	strong := strongMentions(ms)
	if len(rcpts) == 0 {
		// The bounce may name only the sender it went back to when the
		// recipient and the sender are the same; try again without
		// excluding the envelope addresses.
		ms = mentions(v, isDaemonAddress)
		rcpts = chooseRecipients(ms)
	}
	if xf := findAddresses(m.c.header.Get("X-Failed-Recipients")); len(xf) > 0 && !strong {
		rcpts = xf // Exim names every failed recipient here
	}
	if len(rcpts) == 0 {
		// The report names nobody: the returned original's recipient,
		// when it has exactly one, is the one that failed.
		rcpts = m.originalRecipient()
	}
	delayed := m.isDelayReport()
	segs := segments(v, ms, rcpts)
	if len(rcpts) == 0 {
		rcpts = []string{""}
		segs = map[string][]lineRange{"": {{0, v.lines()}}}
	}
	for _, a := range rcpts {
		r := Record{Recipient: a, Action: "failed"}
		if delayed {
			r.Action = "delayed"
		}
		seg := segs[a]
		text := segmentText(v, seg, a)
		r.Diagnostic = trimDiagnostic(text)
		r.Status = failureStatus(text)
		r.ReplyCode = failureReplyCode(text)
		if r.Status == "" && r.ReplyCode == "" && len(rcpts) == 1 {
			// The report's one reply may come before the recipient
			// it names ("Could not be delivered because of 550 5.1.1
			// User unknown. The following recipients were affected:").
			all := m.reportText()
			if st := failureStatus(all); st != "" && st[0] != '2' {
				r.Status, r.ReplyCode = st, failureReplyCode(all)
			}
		}
		r.Command = commandIn(text)
		r.RemoteMTA = findRemoteHost(text)
		x := recordCtx{v: v, seg: seg}
		if u := unfoldReply(text); u != text {
			x.diag = scanTags(u)
		} else {
			x.diag = segmentTags(v, seg) // the same words, already read
		}
		m.addRecord(r, x)
	}
	m.rep.Kind = Bounce
	if delayed {
		m.rep.Kind = Delay
	}
	return true
}

// notRecipients returns a test for the addresses that cannot be the
// failed recipient: the report's own sender and recipients (the original
// sender), our envelope addresses, the returned original's sender, and
// daemon addresses.
func (m *mailView) notRecipients() func(string) bool {
	not := map[string]bool{}
	add := func(v string) {
		for _, a := range findAddresses(v) {
			not[a] = true
		}
	}
	for _, f := range m.c.header.Fields() {
		for _, k := range []string{"From", "To", "Cc", "Reply-To", "Sender", "Return-Path", "Delivered-To", "X-Original-To"} {
			if strings.EqualFold(f.Name, k) {
				add(f.Value)
				break
			}
		}
	}
	add(m.opt.Recipient)
	add(m.opt.Sender)
	// Who sent the returned message: from its attached header, or the
	// one quoted in the text ("A message sent by <sender> could not be
	// delivered": Exim names the sender on a line of its own, as it
	// names the recipients).
	o := m.c.original
	if o == nil {
		o = m.inlineOriginal()
	}
	if o != nil {
		for _, k := range []string{"From", "Sender", "Return-Path", "Reply-To"} {
			add(o.Get(k))
		}
	}
	return func(a string) bool { return not[a] || isDaemonAddress(a) }
}

// strongMentions reports whether some line starts with an address.
func strongMentions(ms []mention) bool {
	for _, x := range ms {
		if x.weight == 3 {
			return true
		}
	}
	return false
}

// chooseRecipients returns the addresses named with the highest weight,
// in order of first mention.
func chooseRecipients(ms []mention) []string {
	best := 0
	for _, x := range ms {
		best = max(best, x.weight)
	}
	var out []string
	for _, x := range ms {
		if x.weight == best && !contains(out, x.addr) {
			out = append(out, x.addr)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// lineRange is lines [from, to) of a view.
type lineRange struct{ from, to int }

// segments gives each recipient the report lines that speak of it: from
// each line naming it to the next line naming another recipient.
// The mentions come in line order; the first one of a line names its
// owner.
func segments(v *view, ms []mention, rcpts []string) map[string][]lineRange {
	out := make(map[string][]lineRange, len(rcpts))
	cur, start, last := "", 0, -1
	for _, x := range ms {
		if x.line == last || !contains(rcpts, x.addr) {
			continue
		}
		last = x.line
		if x.addr != cur {
			if cur != "" {
				out[cur] = append(out[cur], lineRange{start, x.line})
			}
			cur, start = x.addr, x.line
		}
	}
	if cur != "" {
		out[cur] = append(out[cur], lineRange{start, v.lines()})
	}
	for a, rs := range out {
		for i, r := range rs {
			for l := r.from + 1; l < r.to; l++ {
				if isMailerHostLine(v.line(l)) {
					rs[i].to = l
					break
				}
			}
		}
		out[a] = rs
	}
	return out
}

// isMailerHostLine reports whether a line is Sendmail's status of a
// host rather than of a recipient: "550 example.org (smtp)... 550 Host
// unknown", "421 mx.example.org (smtp)... Deferred: ...". Sendmail
// writes it before the recipient lines it led to, so it ends the lines
// about the recipient above it.
func isMailerHostLine(line string) bool {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	t := line[i:]
	if len(t) < 12 || !isDigit(t[0]) || !isDigit(t[1]) || !isDigit(t[2]) || t[3] != ' ' {
		return false
	}
	t = t[4:]
	sp := strings.IndexByte(t, ' ')
	if sp <= 0 || strings.ContainsAny(t[:sp], "@<>") {
		return false
	}
	t = t[sp+1:]
	if len(t) < 2 || t[0] != '(' {
		return false
	}
	end := strings.IndexByte(t, ')')
	return end > 1 && !strings.ContainsAny(t[1:end], " @") && strings.HasPrefix(t[end+1:], "...")
}

// segmentText makes one line of a recipient's report lines, without lines
// that only repeat its address or print the machine-readable DSN fields.
func segmentText(v *view, seg []lineRange, rcpt string) string {
	var b strings.Builder
	for _, r := range seg {
		for l := r.from; l < r.to; l++ {
			t := strings.TrimSpace(v.line(l))
			if t == "" || rcpt != "" && strings.EqualFold(strings.Trim(t, "<>:;,. \t\"'*-•>"), rcpt) || isDSNFieldLine(t) || isAliasNote(t) {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(t)
		}
	}
	return b.String()
}

// isAliasNote reports whether a line only says which address the
// recipient was expanded from, as Exim and Sendmail note it: "(generated
// from x@y)", "(expanded from: <x@y>)".
func isAliasNote(t string) bool {
	t = strings.Trim(t, "() \t")
	for _, p := range []string{"generated from", "ultimately generated from", "expanded from", "expanded from:"} {
		if hasPrefixFold(t, p) {
			rest := strings.TrimSpace(t[len(p):])
			return len(findAddresses(rest)) == 1 && !strings.Contains(strings.TrimSpace(rest[strings.LastIndexAny(rest, "@>")+1:]), " ")
		}
	}
	return false
}

// segmentTags returns the phrases of a recipient's report lines.
func segmentTags(v *view, seg []lineRange) tagSet {
	var ts tagSet
	for _, r := range seg {
		a, b := v.wordRange(r.from, r.to)
		one := v.tags(a, b)
		ts.merge(&one)
	}
	return ts
}

// dsnFieldNames are the RFC 3464 fields some MTAs print in their text.
var dsnFieldNames = []string{"reporting-mta:", "received-from-mta:", "arrival-date:", "final-recipient:", "original-recipient:",
	"action:", "status:", "remote-mta:", "last-attempt-date:", "will-retry-until:", "x-postfix-", "x-actual-recipient:",
	"original-envelope-id:", "dsn-gateway:", "x-original-message-id:", "x-display-name:"}

func isDSNFieldLine(t string) bool { return hasAnyPrefixFold(t, dsnFieldNames) }

// isDelayReport reports whether a report says delivery is still being
// tried rather than that it failed.
func (m *mailView) isDelayReport() bool {
	ts := m.report().headTags(4096) // a warning says so at its start
	if ts.has(listTag(listDelayFailed)) {
		return false
	}
	s := strings.ToLower(m.rep.Subject)
	if strings.Contains(s, "delay") || strings.Contains(s, "warning") && !strings.Contains(s, "fail") {
		return true
	}
	return ts.has(listTag(listDelay))
}

// trimDiagnostic collapses white space and cuts at MaxDiagnostic bytes,
// on a UTF-8 boundary.
func trimDiagnostic(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= MaxDiagnostic && !hasSpaceRun(s) {
		return s // nothing to collapse: no copy
	}
	b := make([]byte, 0, min(len(s), MaxDiagnostic+4))
	space := false
	for i := 0; i < len(s) && len(b) < MaxDiagnostic+4; i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
			space = true
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	if len(b) > MaxDiagnostic {
		cut := MaxDiagnostic
		for cut > 0 && b[cut]&0xC0 == 0x80 {
			cut--
		}
		b = b[:cut]
	}
	return string(b)
}

// hasSpaceRun reports whether s has white space other than single spaces.
func hasSpaceRun(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\t', '\n', '\r', '\v', '\f':
			return true
		case ' ':
			if i+1 < len(s) && s[i+1] == ' ' {
				return true
			}
		}
	}
	return false
}

// commandWords are how reports name the SMTP command a reply answered
// (Postfix "(in reply to RCPT TO command)", Exim "after RCPT TO:<...>",
// Sendmail transcripts ">>> RCPT To:<...>", qmail "does not like
// recipient"), lower-cased, with the command as Sisimai names it.
var commandWords = []struct{ words, cmd string }{
	{"rcpt to", "RCPT"}, {"rcpt:", "RCPT"}, {"rcpt command", "RCPT"}, {"after rcpt", "RCPT"}, {"smtp:rcpt", "RCPT"}, {"does not like recipient", "RCPT"},
	{"mail from", "MAIL"}, {"mailfrom:", "MAIL"}, {"does not like sender", "MAIL"}, {"sender was rejected", "MAIL"},
	{"end of data", "DATA"}, {"data command", "DATA"}, {">>> data", "DATA"}, {"after data", "DATA"}, {"command data", "DATA"},
	{"smtp command: data", "DATA"}, {"command: data", "DATA"}, {"bdat", "DATA"},
	{"initial connection", "CONN"}, {"refused to talk to me", "CONN"}, {"greeting", "CONN"}, {"connection refused", "CONN"},
	{"connection timed out", "CONN"}, {"ehlo", "EHLO"}, {"helo", "EHLO"},
}

// commandByFirst indexes commandWords by their first byte; startsCommand
// marks those bytes.
var commandByFirst, startsCommand = func() (idx [256][]int, starts [256]bool) {
	for i, c := range commandWords {
		idx[c.words[0]] = append(idx[c.words[0]], i)
		starts[c.words[0]] = true
	}
	return idx, starts
}()

// commandIn returns the SMTP command a failure answered, as Sisimai names
// them (CONN, EHLO, MAIL, RCPT, DATA): in a transcript the last one named
// is the one that failed. It returns "" when the text names none. Only
// word starts are tried. What a local delivery program printed (Postfix
// pipe(8) and local(8) quote it after "Command output:") is no SMTP
// dialogue: "Connection refused" there is the program's own failure.
func commandIn(s string) string {
	if i := indexFold(s, "command output:"); i >= 0 {
		s = s[:i]
	}
	best := ""
	for i := 0; i < len(s); i++ {
		c := lowerByte[s[i]]
		if !startsCommand[c] || i > 0 && isLetter(s[i-1]) {
			continue
		}
		for _, k := range commandByFirst[c] {
			if hasPrefixFold(s[i:], commandWords[k].words) {
				best = commandWords[k].cmd
				break
			}
		}
	}
	return best
}

// findRemoteHost returns the host named before a remote reply: "host
// mx.example.com[192.0.2.1] said:", "mx.example.com [192.0.2.1]:".
func findRemoteHost(s string) string {
	lower := asciiLower(s)
	for _, w := range []string{"host ", "server ", "talking to ", "connecting to "} {
		i := strings.Index(lower, w)
		if i < 0 {
			continue
		}
		rest := s[i+len(w):]
		end := 0
		for end < len(rest) && (isDomainByte(rest[end]) && rest[end] < 0x80) {
			end++
		}
		h := strings.Trim(rest[:end], ".-")
		if strings.Contains(h, ".") {
			return strings.ToLower(h)
		}
	}
	return ""
}

// originalRecipient returns the one recipient the returned original was
// addressed to, if it had exactly one.
func (m *mailView) originalRecipient() []string {
	o := m.c.original
	if o == nil {
		o = m.inlineOriginal()
	}
	var all []string
	if o == nil {
		// A summary of the original ("Original message: From: ... To:
		// ..."), too short to read as a header.
		for _, sp := range m.splits() {
			rest := sp[1]
			for i := 0; i < 20 && rest != ""; i++ {
				line := rest
				if j := strings.IndexByte(rest, '\n'); j >= 0 {
					line, rest = rest[:j], rest[j+1:]
				} else {
					rest = ""
				}
				if hasPrefixFold(strings.TrimSpace(line), "to:") {
					all = append(all, findAddresses(line)...)
				}
			}
		}
	} else {
		// The newest Received names the recipient the message had
		// there ("for <rcpt>"), as the MTA that returned it wrote, even
		// when To names a list or someone else.
		if a := receivedFor(o.Get("Received")); a != "" {
			return []string{a}
		}
		list := listAddresses(o)
		for _, k := range []string{"To", "Cc"} {
			for _, a := range findAddresses(o.Get(k)) {
				if !list[a] {
					all = append(all, a)
				}
			}
		}
	}
	if len(all) != 1 {
		return nil
	}
	return all
}

// receivedFor returns the address in a Received field's "for" clause
// (RFC 5321 §4.4), or "".
func receivedFor(v string) string {
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		v = v[:i] // the date
	}
	f := strings.Fields(v)
	for i := len(f) - 2; i >= 0; i-- {
		if strings.EqualFold(f[i], "for") {
			if as := findAddresses(f[i+1]); len(as) == 1 {
				return as[0]
			}
			return ""
		}
	}
	return ""
}

// listAddresses returns the addresses a mailing list's fields name as
// the list's own (RFC 2369 List-Post, Mailman's X-BeenThere): a copy a
// list sent is addressed To the list, not to the member it failed for.
func listAddresses(h *Header) map[string]bool {
	list := map[string]bool{}
	for _, k := range []string{"List-Post", "X-BeenThere"} {
		for _, a := range findAddresses(h.Get(k)) {
			list[a] = true
		}
	}
	return list
}

// asciiLower lower-cases the ASCII letters of s only, keeping its length.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// unfoldReply joins a multi-line SMTP reply (RFC 5321 §4.2.1) that an MTA
// quoted with each line's code: "550-5.7.1 Messages with multiple 550-5.7.1
// addresses" reads "550-5.7.1 Messages with multiple addresses". Only the
// repeats of the first line's code and status are dropped.
func unfoldReply(s string) string {
	code := findReplyCode(s)
	if code == "" || strings.Count(s, code) < 2 {
		return s
	}
	first := strings.Index(s, code)
	var b strings.Builder
	b.WriteString(s[:first+len(code)])
	rest := s[first+len(code):]
	for {
		i := strings.Index(rest, code)
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		j := i + len(code)
		if (i == 0 || rest[i-1] == ' ') && j < len(rest) && (rest[j] == '-' || rest[j] == ' ') {
			b.WriteString(rest[:i])
			j++
			if st := findStatus(rest[j:min(len(rest), j+8)]); st != "" && strings.HasPrefix(rest[j:], st) {
				j += len(st)
				for j < len(rest) && rest[j] == ' ' {
					j++
				}
			}
			rest = rest[j:]
			continue
		}
		b.WriteString(rest[:j])
		rest = rest[j:]
	}
}
