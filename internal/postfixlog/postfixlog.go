// Package postfixlog reads Postfix's log lines: the syslog framing
// (traditional "Nov 23 15:09:34 host postfix/smtp[123]: ...", as
// maillog_file and syslog write it, or RFC 3339 time stamps as Debian's
// rsyslog writes them) and the messages senderkit needs, by queue ID:
// delivery attempts (to=<...>, relay=, dsn=, status=sent|deferred|bounced
// and the remote's reply), the client and SASL login of a message, its
// envelope sender, and its removal from the queue.
//
// Parse takes outside input and never fails loudly: a line it does not
// understand gives ok=false.
package postfixlog

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Line is one log line, split into its syslog parts.
type Line struct {
	Time    time.Time
	Host    string
	Program string // "postfix/smtp", "postfix-out/relay/smtp"
	PID     int
	Message string // what follows "program[pid]: "
}

// Kind says what a message is about.
type Kind int

// Kinds of Record.
const (
	Delivery Kind = iota + 1 // a delivery attempt: "QID: to=<...>, ..., status=..."
	Client                   // smtpd: "QID: client=name[addr], sasl_username=..."
	From                     // qmgr: "QID: from=<...>, size=..., nrcpt=..."
	Removed                  // qmgr: "QID: removed"
)

// Delivery statuses (Postfix's status= field).
const (
	Sent     = "sent"
	Deferred = "deferred"
	Bounced  = "bounced"
	Expired  = "expired"
)

// Record is what one line says about a queued message.
type Record struct {
	Kind    Kind
	QueueID string
	Time    time.Time
	PID     int
	// Service is the last part of the program name: "smtp", "lmtp",
	// "pipe", "error", "smtpd", "qmgr".
	Service string

	// Delivery.
	To     string // to=<...> as logged
	OrigTo string // orig_to=<...>, when an alias rewrote the recipient
	Relay  string // relay=host[addr]:port, "none", or a transport name
	DSN    string // RFC 3463 enhanced status code, "4.7.1"
	Status string // Sent, Deferred, Bounced, Expired
	Text   string // the parenthesised explanation
	// Reply is the remote server's reply when Text quotes one ("host X
	// said: 451 4.7.1 rate limited (in reply to RCPT TO command)" gives
	// "451 4.7.1 rate limited"), else "". ReplyCode is its SMTP code.
	Reply     string
	ReplyCode string

	// Client.
	ClientAddr netip.Addr
	SASLUser   string

	// From.
	Sender string // "" for the null sender
}

// ParseSyslog splits a log line. A traditional time stamp carries no
// year: it is taken to be the latest one that is not more than a day
// after now, in loc.
func ParseSyslog(s string, now time.Time, loc *time.Location) (Line, bool) {
	var l Line
	var ok bool
	s = strings.TrimRight(s, "\r\n")
	if len(s) > 15 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' {
		// "Jan _2 15:04:05"
		l.Time, ok = traditionalTime(s[:15], now, loc)
		s = s[15:]
	} else if i := strings.IndexByte(s, ' '); i > 0 {
		t, err := time.Parse(time.RFC3339Nano, s[:i])
		l.Time, ok, s = t, err == nil, s[i:]
	}
	if !ok || len(s) < 2 || s[0] != ' ' {
		return Line{}, false
	}
	s = s[1:]
	i := strings.IndexByte(s, ' ')
	if i <= 0 {
		return Line{}, false
	}
	l.Host, s = s[:i], s[i+1:]
	i = strings.Index(s, ": ")
	if i <= 0 {
		return Line{}, false
	}
	tag, msg := s[:i], s[i+2:]
	if j := strings.IndexByte(tag, '['); j > 0 && strings.HasSuffix(tag, "]") {
		pid, err := strconv.Atoi(tag[j+1 : len(tag)-1])
		if err != nil {
			return Line{}, false
		}
		l.PID, tag = pid, tag[:j]
	}
	if strings.ContainsAny(tag, " \t") {
		return Line{}, false
	}
	l.Program, l.Message = tag, msg
	return l, true
}

func traditionalTime(s string, now time.Time, loc *time.Location) (time.Time, bool) {
	t, err := time.ParseInLocation(time.Stamp, s, loc)
	if err != nil {
		return time.Time{}, false
	}
	now = now.In(loc)
	t = time.Date(now.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc)
	if t.After(now.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t, true
}

// IsPostfix reports whether a program name is a Postfix daemon's:
// "postfix/smtp", or with a multi-instance or service prefix,
// "postfix-out/smtp", "postfix/submission/smtpd".
func IsPostfix(program string) bool {
	first, _, ok := strings.Cut(program, "/")
	return ok && strings.HasPrefix(first, "postfix")
}

// Parse reads what a Postfix line says about a queued message.
func Parse(l Line) (Record, bool) {
	if !IsPostfix(l.Program) {
		return Record{}, false
	}
	qid, rest, ok := strings.Cut(l.Message, ": ")
	if !ok || !isQueueID(qid) {
		return Record{}, false
	}
	r := Record{QueueID: qid, Time: l.Time, PID: l.PID, Service: l.Program[strings.LastIndexByte(l.Program, '/')+1:]}
	switch {
	case rest == "removed":
		r.Kind = Removed
		return r, true
	case strings.HasPrefix(rest, "to=<"):
		return r, r.delivery(rest)
	case strings.HasPrefix(rest, "client="):
		return r, r.client(rest)
	case strings.HasPrefix(rest, "from=<"):
		r.Kind = From
		a, _, ok := angle(rest[len("from="):])
		r.Sender = a
		return r, ok
	}
	return Record{}, false
}

// isQueueID accepts short (hex) and long (base 52 with 'z') queue IDs.
func isQueueID(s string) bool {
	if len(s) < 5 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// angle reads "<...>" at the start of s and returns what is inside and
// what follows.
func angle(s string) (inside, rest string, ok bool) {
	if !strings.HasPrefix(s, "<") {
		return "", s, false
	}
	i := strings.IndexByte(s, '>')
	if i < 0 {
		return "", s, false
	}
	return s[1:i], s[i+1:], true
}

// delivery reads "to=<a>, orig_to=<b>, relay=..., delay=..., delays=...,
// dsn=4.7.1, status=deferred (text)" (Postfix's smtp(8), lmtp(8),
// pipe(8), error(8), ... all log this shape).
func (r *Record) delivery(s string) bool {
	r.Kind = Delivery
	for s != "" {
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			return false
		}
		s = val
		switch key {
		case "to", "orig_to":
			a, rest, ok := angle(s)
			if !ok {
				return false
			}
			if key == "to" {
				r.To = a
			} else {
				r.OrigTo = a
			}
			s = rest
		case "status":
			word, text, _ := strings.Cut(s, " ")
			r.Status = word
			if strings.HasPrefix(text, "(") && strings.HasSuffix(text, ")") {
				r.Text = text[1 : len(text)-1]
				r.Reply, r.ReplyCode = remoteReply(r.Text)
			}
			return r.To != "" && r.Status != ""
		default:
			i := strings.Index(s, ", ")
			if i < 0 {
				return false
			}
			switch key {
			case "relay":
				r.Relay = s[:i]
			case "dsn":
				r.DSN = s[:i]
			}
			s = s[i:]
		}
		if !strings.HasPrefix(s, ", ") {
			return false
		}
		s = s[2:]
	}
	return false
}

// remoteReply finds the reply Postfix quotes as "host NAME said: REPLY
// (in reply to COMMAND command)".
func remoteReply(text string) (reply, code string) {
	_, after, ok := strings.Cut(text, " said: ")
	if !ok {
		return "", ""
	}
	if i := strings.LastIndex(after, " (in reply to "); i >= 0 {
		after = after[:i]
	}
	after = strings.TrimSpace(after)
	if len(after) >= 3 && after[0] >= '2' && after[0] <= '5' && isDigit(after[1]) && isDigit(after[2]) &&
		(len(after) == 3 || after[3] == ' ' || after[3] == '-') {
		code = after[:3]
	}
	return after, code
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// client reads "client=name[addr], sasl_method=PLAIN, sasl_username=bob".
func (r *Record) client(s string) bool {
	r.Kind = Client
	for _, f := range strings.Split(s, ", ") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "client":
			i, j := strings.LastIndexByte(v, '['), strings.LastIndexByte(v, ']')
			if i < 0 || j < i {
				return false
			}
			a, err := netip.ParseAddr(strings.TrimPrefix(v[i+1:j], "IPv6:"))
			if err == nil {
				r.ClientAddr = a
			}
		case "sasl_username":
			r.SASLUser = v
		}
	}
	return true
}
