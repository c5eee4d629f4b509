package milter

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	gomilter "github.com/d--j/go-milter"
)

// Limits on a header the milter keeps in memory (Postfix's own
// header_size_limit is 100 KiB per field).
const (
	maxHeaderBytes  = 1 << 20
	maxHeaderFields = 1000
)

// session is one milter connection from Postfix: one SMTP connection,
// or one message from sendmail(1) (non_smtpd_milters).
type session struct {
	gomilter.NoOpMilter
	s *Server

	client     netip.Addr // the SMTP client
	clientAddr string
	clientName string
	helo       string
	daemon     string // {daemon_name}: the master.cf service
	local      bool   // mail from sendmail(1)

	tx *tx
}

// rcpt is one envelope recipient.
type rcpt struct {
	raw  string // as given at RCPT, without angle brackets
	args string // its ESMTP parameters
	norm string // normalised (internal/addr); raw when it does not parse
}

// tx is one message.
type tx struct {
	st       State
	sender   string // "" for the null sender
	mailArgs string
	authUser string
	rcpts    []rcpt

	fields   fields
	hdrBytes int
	tooBig   bool
	froms    fields // once tooBig, the From fields, which the header no longer keeps

	queueID string
	p       *plan              // nil: pass the message unchanged
	fail    *gomilter.Response // a decision taken at the end of the header, given at the end
	hold    string             // put the message on hold (SMFIR_QUARANTINE) for this reason when it is accepted
	body    io.Writer
	bodyErr error
}

func (c *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	c.clientName, c.clientAddr = host, addr
	c.client, _ = netip.ParseAddr(addr)
	c.daemon = m.Get(gomilter.MacroDaemonName)
	if n := m.Get(gomilter.MacroClientName); n != "" {
		c.clientName = n
	}
	// For mail from sendmail(1) and pickup(8), cleanup(8) makes up a
	// connection from localhost, port 0 (non_smtpd_milters).
	c.local = port == 0 && c.client.IsLoopback()
	c.s.log.Debug("milter connection", "client", c.clientName, "addr", addr, "port", port, "daemon", c.daemon, "local", c.local)
	return gomilter.RespContinue, nil
}

func (c *session) Helo(name string, m gomilter.Modifier) (*gomilter.Response, error) {
	c.helo = name
	return gomilter.RespContinue, nil
}

func (c *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	c.reset()
	c.tx = &tx{st: c.s.state(), sender: from, mailArgs: esmtpArgs, authUser: m.Get(gomilter.MacroAuthAuthen)}
	return gomilter.RespContinue, nil
}

func (c *session) RcptTo(to, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	if c.tx != nil {
		r := rcpt{raw: to, args: esmtpArgs, norm: to}
		if n, err := normalize(c.tx.st, to); err == nil {
			r.norm = n
		}
		c.tx.rcpts = append(c.tx.rcpts, r)
	}
	return gomilter.RespContinue, nil
}

func (c *session) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	t := c.tx
	if t == nil {
		return gomilter.RespContinue, nil
	}
	if t.tooBig {
		if strings.EqualFold(name, "From") && len(t.froms) < 10 && len(value) < 4096 {
			t.froms = append(t.froms, field{name, value})
		}
		return gomilter.RespContinue, nil
	}
	t.hdrBytes += len(name) + len(value) + 3
	if t.hdrBytes > maxHeaderBytes || len(t.fields) >= maxHeaderFields {
		// Keep only the From fields, for leftAsItCame.
		for _, f := range t.fields {
			if strings.EqualFold(f.name, "From") {
				t.froms = append(t.froms, f)
			}
		}
		t.tooBig, t.fields = true, nil
		return c.Header(name, value, m)
	}
	t.fields = append(t.fields, field{name, value})
	return gomilter.RespContinue, nil
}

// Headers is the end of the header: everything is decided here, so that
// the signatures can be computed while the body streams past.
func (c *session) Headers(m gomilter.Modifier) (*gomilter.Response, error) {
	t := c.tx
	if t == nil {
		return gomilter.RespContinue, nil
	}
	t.queueID = m.Get(gomilter.MacroQueueId)
	if t.tooBig {
		// Mail the milter would leave as it came passes all the same;
		// mail it must sign or mark cannot be, without its header.
		if !c.s.leftAsItCame(c, t) {
			t.fail = c.s.reject(t, 552, "5.3.4", "message header larger than %d KiB or %d fields", maxHeaderBytes>>10, maxHeaderFields)
		}
		return gomilter.RespContinue, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.st.Config.Milter.StoreTimeout.D())
	defer cancel()
	t.p, t.fail = c.s.plan(ctx, c, t)
	if t.p != nil {
		t.body = t.p.bodyWriter()
	}
	return gomilter.RespContinue, nil
}

func (c *session) BodyChunk(chunk []byte, m gomilter.Modifier) (*gomilter.Response, error) {
	t := c.tx
	if t != nil && t.body != nil && t.bodyErr == nil {
		if _, err := t.body.Write(chunk); err != nil {
			t.bodyErr = err
		}
	}
	return gomilter.RespContinue, nil
}

func (c *session) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	t := c.tx
	if t == nil {
		return gomilter.RespAccept, nil
	}
	if q := m.Get(gomilter.MacroQueueId); q != "" {
		t.queueID = q
	}
	resp := c.s.finish(c, t, m)
	if t.hold != "" && resp == gomilter.RespAccept {
		if err := m.Quarantine(t.hold); err != nil {
			resp = c.s.tempfail(t, "putting the message on hold: %v", err)
		}
	}
	c.reset()
	return resp, nil
}

func (c *session) Abort(m gomilter.Modifier) error {
	c.reset()
	return nil
}

func (c *session) Cleanup(m gomilter.Modifier) { c.reset() }

// reset forgets the message in progress, releasing its signers and
// spool.
func (c *session) reset() {
	if c.tx != nil && c.tx.p != nil {
		c.tx.p.release()
	}
	c.tx = nil
}

// origin describes where the message came from, for its copies.
func (c *session) origin(queueID string) origin {
	return origin{name: c.clientName, addr: c.clientAddr, helo: c.helo, queueID: queueID, local: c.local}
}

// reject and tempfail make a reply that Postfix passes to the client
// and logs (milter-reject: END-OF-MESSAGE ... <text>), and log it.
func (s *Server) reject(t *tx, code uint16, status, format string, a ...any) *gomilter.Response {
	text := fmt.Sprintf(format, a...)
	level := "rejected"
	if code < 500 {
		level = "tempfailed"
		s.stats.TempFailed.Add(1)
	} else {
		s.stats.Rejected.Add(1)
	}
	s.log.Warn("message "+level, "queue_id", t.queueID, "reply", fmt.Sprintf("%d %s", code, status), "reason", text)
	// An SMTP reply is ASCII (RFC 5321 §4.2).
	text = strings.Map(func(r rune) rune {
		if r > '~' {
			return '?'
		}
		return r
	}, strings.ReplaceAll(text, "§", "section "))
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > 400 {
		text = text[:400] + "..."
	}
	r, err := gomilter.RejectWithCodeAndReason(code, status+" senderkit: "+text)
	if err != nil {
		return gomilter.RespTempFail
	}
	return r
}

func (s *Server) tempfail(t *tx, format string, a ...any) *gomilter.Response {
	return s.reject(t, 451, "4.3.0", format, a...)
}
