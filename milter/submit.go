package milter

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"time"
)

// copyTimeout bounds each command of a copy's submission, and the
// transfer of its content.
const copyTimeout = 5 * time.Minute

// submitter submits copies to the copy service, one SMTP transaction
// after another on one connection (RFC 5321).
type submitter struct {
	addr     string
	raw      net.Conn
	c        *textproto.Conn
	xforward bool // the service lets us pass on the original client (Postfix XFORWARD)
}

// origin is what the copy service is told about where the original
// came from, with Postfix's XFORWARD (XFORWARD_README), so that the
// copy's Received field and log lines name the original client and
// the log says orig_queue_id=.
type origin struct {
	name, addr, helo, queueID string
	local                     bool // submitted with sendmail(1)
}

func dialCopyService(ctx context.Context, addr string) (*submitter, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("copy service %s: %w", addr, err)
	}
	s := &submitter{addr: addr, raw: raw, c: textproto.NewConn(raw)}
	if err := s.hello(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *submitter) hello() error {
	s.raw.SetDeadline(time.Now().Add(copyTimeout))
	if _, _, err := s.c.ReadResponse(220); err != nil {
		return s.fail("greeting", err)
	}
	id, err := s.c.Cmd("EHLO localhost")
	if err != nil {
		return s.fail("EHLO", err)
	}
	s.c.StartResponse(id)
	_, msg, err := s.c.ReadResponse(250)
	s.c.EndResponse(id)
	if err != nil {
		return s.fail("EHLO", err)
	}
	for _, l := range strings.Split(msg, "\n") {
		if f := strings.Fields(strings.ToUpper(l)); len(f) > 0 && f[0] == "XFORWARD" {
			s.xforward = true
		}
	}
	return nil
}

func (s *submitter) fail(what string, err error) error {
	return fmt.Errorf("copy service %s: %s: %w", s.addr, what, err)
}

// cmd sends a command and reads its reply, which must have code want
// (a class when below 10: 2 for 2xx, 3 for 3xx).
func (s *submitter) cmd(want int, format string, args ...any) (string, error) {
	id, err := s.c.Cmd(format, args...)
	if err != nil {
		return "", s.fail(strings.Fields(format)[0], err)
	}
	s.c.StartResponse(id)
	defer s.c.EndResponse(id)
	_, msg, err := s.c.ReadResponse(want)
	if err != nil {
		return "", s.fail(strings.Fields(fmt.Sprintf(format, args...))[0], err)
	}
	return msg, nil
}

// queuedRE finds the queue ID in Postfix's reply to the end of DATA.
var queuedRE = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

// send submits one copy: from and mailArgs for MAIL, rcpt and rcptArgs
// for RCPT, then header (CRLF line ends, with the empty line) and body.
// It returns the copy's queue ID as the service reported it.
func (s *submitter) send(o origin, from, mailArgs, rcpt, rcptArgs string, header []byte, body io.Reader) (string, error) {
	s.raw.SetDeadline(time.Now().Add(copyTimeout))
	if s.xforward {
		src := "REMOTE"
		if o.local {
			src = "LOCAL"
		}
		if _, err := s.cmd(250, "XFORWARD NAME=%s ADDR=%s SOURCE=%s", xtext(o.name), xtext(o.addr), src); err != nil {
			return "", err
		}
		if _, err := s.cmd(250, "XFORWARD PROTO=ESMTP HELO=%s IDENT=%s", xtext(o.helo), xtext(o.queueID)); err != nil {
			return "", err
		}
	}
	if _, err := s.cmd(2, "MAIL FROM:<%s>%s", from, mailArgs); err != nil {
		return "", err
	}
	if _, err := s.cmd(2, "RCPT TO:<%s>%s", rcpt, rcptArgs); err != nil {
		return "", err
	}
	if _, err := s.cmd(354, "DATA"); err != nil {
		return "", err
	}
	w := s.c.DotWriter()
	if _, err := w.Write(header); err != nil {
		return "", s.fail("DATA", err)
	}
	for {
		// Long bodies: push the deadline as the content flows.
		s.raw.SetDeadline(time.Now().Add(copyTimeout))
		n, err := io.CopyN(w, body, 1<<20)
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", s.fail("DATA", err)
		}
		if n == 0 {
			break
		}
	}
	if err := w.Close(); err != nil {
		return "", s.fail("end of DATA", err)
	}
	_, msg, err := s.c.ReadResponse(250)
	if err != nil {
		return "", s.fail("end of DATA", err)
	}
	qid := ""
	if m := queuedRE.FindStringSubmatch(msg); m != nil {
		qid = m[1]
	}
	return qid, nil
}

func (s *submitter) close() {
	s.raw.SetDeadline(time.Now().Add(5 * time.Second))
	if id, err := s.c.Cmd("QUIT"); err == nil {
		s.c.StartResponse(id)
		s.c.ReadResponse(221)
		s.c.EndResponse(id)
	}
	s.c.Close()
}

// xtext encodes an XFORWARD value (RFC 3461 §4's xtext); "" is
// Postfix's [UNAVAILABLE].
func xtext(v string) string {
	if v == "" {
		return "[UNAVAILABLE]"
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// keepArgs keeps the ESMTP parameters of MAIL or RCPT that a copy must
// carry too (BODY, SMTPUTF8, RET, ENVID; NOTIFY, ORCPT), each with a
// leading space; SIZE and AUTH belong to the original's transaction.
func keepArgs(args string, keep ...string) string {
	var b strings.Builder
	for _, a := range strings.Fields(args) {
		k, _, _ := strings.Cut(a, "=")
		for _, want := range keep {
			if strings.EqualFold(k, want) {
				b.WriteString(" " + a)
			}
		}
	}
	return b.String()
}
