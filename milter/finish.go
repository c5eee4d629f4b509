package milter

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/senderkit/senderkit/milter/dkim"
)

// finish carries out a message's plan at its end: the copies, the
// signatures, the modifications, and the send row, in that order, so
// that the row (which a retry takes as proof that the copy was queued)
// is written last, when nothing can fail but the final reply.
func (s *Server) finish(c *session, t *tx, m gomilter.Modifier) *gomilter.Response {
	if t.fail != nil {
		return t.fail
	}
	p := t.p
	if p == nil {
		s.stats.Messages.Add(1)
		s.log.Debug("message passed unchanged", "queue_id", t.queueID)
		return gomilter.RespAccept
	}
	if t.bodyErr != nil {
		return s.tempfail(t, "%v", t.bodyErr)
	}
	cfg := t.st.Config
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Milter.StoreTimeout.D())
	defer cancel()

	key := p.key
	if p.fp != nil {
		key = p.fp.key()
	}
	window := cfg.Milter.DedupeWindow.D()
	kept := p.rcpts
	copies := 0
	if p.fanout {
		// Recipients a previous submission of this message already got
		// a copy for are left out.
		done := map[string]bool{}
		if key != "" {
			prev, err := s.store.SendsByMessageKey(ctx, key, timeNow().Add(-window))
			if err != nil {
				return s.tempfail(t, "store: %v", err)
			}
			for _, sd := range prev {
				done[sd.Recipient] = true
			}
		}
		var todo []rcpt
		for _, r := range p.rcpts {
			if !done[r.norm] {
				todo = append(todo, r)
			}
		}
		if len(todo) == 0 {
			s.stats.Discarded.Add(1)
			s.log.Info("message discarded: a copy for every recipient was queued before (a retried submission)",
				"queue_id", t.queueID, "message_key", key, "recipients", len(p.rcpts))
			return gomilter.RespDiscard
		}
		if n := len(p.rcpts) - len(todo); n > 0 {
			s.log.Info("retried submission: recipients that have their copy already are left out",
				"queue_id", t.queueID, "message_key", key, "left_out", n)
		}
		kept = todo[:1]
		if err := s.queueCopies(ctx, c, t, todo[1:], key, m); err != nil {
			return s.tempfail(t, "%v", err)
		}
		copies = len(todo) - 1
	}

	var sigs []string
	if p.sign != nil {
		var err error
		sigs, err = p.sign.Finish()
		p.sign = nil
		if err != nil {
			return s.tempfail(t, "%v", err)
		}
	}
	if err := s.modify(t, p, kept, sigs, m); err != nil {
		return s.tempfail(t, "modifying the message: %v", err)
	}

	s.countSigned(sigs)
	if p.scope == nil {
		s.stats.Messages.Add(1)
		s.log.Info("message signed", "queue_id", t.queueID, "dkim", describe(p))
		return gomilter.RespAccept
	}
	send := p.send
	send.QueueID, send.MessageKey = t.queueID, key
	if !p.messageLevel {
		send.Recipient = kept[0].norm
	}
	// The row's own deadline: a long fan-out may have used the first.
	rctx, rcancel := context.WithTimeout(context.Background(), cfg.Milter.StoreTimeout.D())
	defer rcancel()
	added, err := s.sends.add(rctx, send, window)
	if err != nil {
		return s.tempfail(t, "store: recording the send: %v", err)
	}
	if !added {
		s.stats.Discarded.Add(1)
		s.log.Info("message discarded: this recipient's copy was queued before (a retried submission)",
			"queue_id", t.queueID, "message_key", key, "rcpt", send.Recipient)
		return gomilter.RespDiscard
	}
	attrs := []any{"queue_id", t.queueID, "scope", p.scope.Name, "stream", p.stream.Name, "send_id", send.ID}
	if send.Recipient != "" {
		attrs = append(attrs, "rcpt", send.Recipient)
	} else {
		attrs = append(attrs, "recipients", len(kept))
	}
	if copies > 0 {
		attrs = append(attrs, "copies", copies)
	}
	if p.copy != nil {
		attrs = append(attrs, "copy_of", p.copy.origQueueID)
	}
	s.stats.Messages.Add(1)
	s.stats.Tokens.Add(1)
	s.stats.Copies.Add(int64(copies))
	s.log.Info("message", append(attrs, "dkim", describe(p))...)
	return gomilter.RespAccept
}

// countSigned counts a message's signatures.
func (s *Server) countSigned(sigs []string) {
	if len(sigs) > 0 {
		s.stats.Signed.Add(1)
		s.stats.Signatures.Add(int64(len(sigs)))
	}
}

// describe lists a plan's signatures for the log: "d=example.com
// s=sel rsa-sha256, ...".
func describe(p *plan) string {
	var ds []string
	for _, c := range p.choices {
		ds = append(ds, fmt.Sprintf("d=%s s=%s", c.Domain, c.Selector))
	}
	return strings.Join(ds, ", ")
}

// modify sends the modifications: the VERP sender, the recipients the
// copies took, the header edits and the signatures on top (RFC 6376
// §5.6).
func (s *Server) modify(t *tx, p *plan, kept []rcpt, sigs []string, m gomilter.Modifier) error {
	if p.verp != "" {
		// No ESMTP parameters: Postfix accepts only RET and ENVID here,
		// and those of the original stay (GO-MILTER-NOTES).
		if err := m.ChangeFrom(p.verp, ""); err != nil {
			return err
		}
	}
	if p.fanout || len(p.dropped) > 0 {
		// The recipients the copies took, and the suppressed ones.
		keep := map[string]bool{}
		for _, r := range kept {
			keep[r.norm] = true
		}
		for _, r := range t.rcpts {
			if !keep[r.norm] {
				if err := m.DeleteRecipient(r.raw); err != nil {
					return err
				}
			}
		}
	}
	for _, e := range p.edits.list {
		var err error
		if e.del {
			err = m.ChangeHeader(e.index, e.name, "")
		} else {
			err = m.AddHeader(e.name, e.value)
		}
		if err != nil {
			return err
		}
	}
	for _, v := range sigs {
		if err := m.InsertHeader(0, "DKIM-Signature", v); err != nil {
			return err
		}
	}
	return nil
}

// progressEvery is how often a long fan-out tells Postfix it is still
// working (SMFIR_PROGRESS), well within milter_content_timeout.
const progressEvery = 10 * time.Second

// queueCopies submits one copy per recipient in rcpts to the copy
// service, each with a ticket, and returns once all are queued.
func (s *Server) queueCopies(ctx context.Context, c *session, t *tx, rcpts []rcpt, key string, m gomilter.Modifier) error {
	if len(rcpts) == 0 {
		return nil
	}
	p := t.p
	sub, err := dialCopyService(ctx, t.st.Config.Milter.CopyService)
	if err != nil {
		return err
	}
	defer sub.close()
	var header bytes.Buffer
	for _, f := range t.fields {
		header.WriteString(f.name + ":" + f.value + "\r\n")
	}
	mailArgs := keepArgs(t.mailArgs, "BODY", "SMTPUTF8", "RET", "ENVID")
	last := time.Now()
	for _, r := range rcpts {
		tk := s.tickets.put(&pendingCopy{scope: p.scope.Name, stream: p.stream.Name, key: key, rcpt: r.norm, origQueueID: t.queueID})
		h := append([]byte(copyHeader+": "+tk+"\r\n"), header.Bytes()...)
		h = append(h, "\r\n"...)
		qid, err := sub.send(c.origin(t.queueID), t.sender, mailArgs, r.raw, keepArgs(r.args, "NOTIFY", "ORCPT"),
			dkim.CRLF(h), p.spool.reader())
		s.tickets.drop(tk)
		if err != nil {
			return fmt.Errorf("queueing the copy for %s: %w", r.norm, err)
		}
		s.log.Debug("copy queued", "queue_id", t.queueID, "copy_queue_id", qid, "rcpt", r.norm)
		if time.Since(last) > progressEvery {
			if err := m.Progress(); err != nil {
				return fmt.Errorf("telling Postfix the copies are progressing: %w", err)
			}
			last = time.Now()
		}
	}
	return nil
}
