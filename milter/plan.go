package milter

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/health"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
	"github.com/senderkit/senderkit/milter/dkim"
)

// timeNow is the clock. Replaced during tests.
var timeNow = time.Now

// plan is what the milter does to one message, decided at the end of
// its header.
type plan struct {
	scope  *conf.Scope  // nil: out of scope (null sender, or no scope matches): signing only
	stream *conf.Stream // with scope
	copy   *pendingCopy // this message is a copy on its own pass

	edits   *edits
	choices []dkim.Choice
	sign    *dkim.Signing // nil: no signature

	rcpts        []rcpt // distinct recipients, less the suppressed ones
	dropped      []rcpt // recipients the suppression list covers: removed
	fanout       bool   // bulk to several recipients: split into copies
	messageLevel bool   // several recipients share one token (transactional)
	send         store.Send
	verp         string
	key          string       // message key of a bulk message, fixed (copies)
	fp           *fingerprint // or computed as the body streams (originals)
	spool        *spool       // the body, for the copies
}

// bodyWriter is where the body goes: the signers, the fingerprint, the
// spool.
func (p *plan) bodyWriter() io.Writer {
	var ws []io.Writer
	if p.sign != nil {
		ws = append(ws, p.sign)
	}
	if p.fp != nil {
		ws = append(ws, p.fp)
	}
	if p.spool != nil {
		ws = append(ws, p.spool)
	}
	if len(ws) == 0 {
		return nil
	}
	return io.MultiWriter(ws...)
}

func (p *plan) release() {
	if p.sign != nil {
		p.sign.Abort()
		p.sign = nil
	}
	if p.spool != nil {
		p.spool.close()
	}
}

func normalize(st State, a string) (string, error) {
	return addr.Normalize(a, addr.Options{CaseSensitiveLocal: st.Config.Addresses.CaseSensitiveLocal})
}

// plan decides what to do with a message at the end of its header. A
// nil plan and nil reply pass the message unchanged; a reply is the
// message's fate, given at its end.
func (s *Server) plan(ctx context.Context, c *session, t *tx) (*plan, *gomilter.Response) {
	cfg := t.st.Config
	p := &plan{}
	if v := t.fields.get(copyHeader); len(v) > 0 {
		// A copy on its own pass: the original's pass decided.
		pc, ok := s.tickets.get(v[0])
		if !ok || len(v) > 1 {
			return nil, s.reject(t, 550, "5.7.1", "%s %q is not a copy this milter is queueing", copyHeader, strings.TrimSpace(v[0]))
		}
		if len(t.rcpts) != 1 || t.rcpts[0].norm != pc.rcpt {
			return nil, s.reject(t, 550, "5.7.1", "the copy for %s came for %d other recipients", pc.rcpt, len(t.rcpts))
		}
		p.copy = pc
		if p.scope = cfg.Scope(pc.scope); p.scope != nil {
			p.stream = p.scope.Stream(pc.stream)
		}
		if p.stream == nil {
			return nil, s.tempfail(t, "scope %q or stream %q is gone with a configuration reload", pc.scope, pc.stream)
		}
	} else {
		p.scope = c.scopeOf(t)
	}

	// The author decides the DKIM keys. Mail in a scope must name one
	// (RFC 5322 §3.6; Gmail and Yahoo refuse bulk mail without); other
	// mail is signed when it has one, as OpenDKIM would.
	a, err := parseFrom(t.fields, p.scope != nil)
	if err != nil && p.scope != nil {
		return nil, s.reject(t, 550, "5.6.0", "%v", err)
	}
	if err == nil && t.st.DKIM != nil {
		if p.choices, _, err = t.st.DKIM.Select(a.user, a.domain); err != nil {
			// Mail is never sent without the signature the tables
			// promise: the client retries once the keys are fixed.
			return nil, s.tempfail(t, "DKIM for From %s: %v", a, err)
		}
	}
	if p.scope == nil && len(p.choices) == 0 {
		return nil, nil // left as it came
	}
	p.edits = newEdits(t.fields)
	if p.scope != nil {
		if r := s.planScoped(ctx, c, t, p, a); r != nil {
			return nil, r
		}
	}
	if len(p.choices) > 0 {
		header, names := p.edits.header()
		if p.sign, err = dkim.Start(p.choices, dkim.HeaderKeys(names), header); err != nil {
			p.release()
			return nil, s.tempfail(t, "%v", err)
		}
	}
	return p, nil
}

// scopeOf returns the scope an original message belongs to by its
// envelope, or nil. RFC 5321 §4.5.5: mail with the null sender (bounces,
// DSNs) belongs to none: no VERP, no List-Unsubscribe.
func (c *session) scopeOf(t *tx) *conf.Scope {
	if t.sender == "" {
		return nil
	}
	return t.st.Config.ScopeFor(conf.Envelope{SASLUser: t.authUser, Sender: t.sender, Client: c.client, Daemon: c.daemon})
}

// leftAsItCame reports whether the milter changes nothing in a message
// whatever its header holds: it belongs to no scope (or has the null
// sender), and no signing rule matches its From.
func (s *Server) leftAsItCame(c *session, t *tx) bool {
	if c.scopeOf(t) != nil {
		return false
	}
	a, err := parseFrom(t.froms, false)
	if err != nil || t.st.DKIM == nil {
		return true
	}
	choices, _, err := t.st.DKIM.Select(a.user, a.domain)
	return err == nil && len(choices) == 0
}

// planScoped plans the work on mail of a scope: stream, token, VERP,
// headers, and whether to split it into copies.
func (s *Server) planScoped(ctx context.Context, c *session, t *tx, p *plan, a author) *gomilter.Response {
	cfg := t.st.Config
	if p.copy == nil {
		var hdr string
		if v := t.fields.get(cfg.StreamHeader); len(v) > 0 && cfg.StreamHeader != "" {
			hdr = v[0]
		}
		var known bool
		p.stream, known = p.scope.StreamFor(hdr, c.daemon, t.sender)
		if !known {
			s.log.Warn("the stream header names no stream of the scope; using the default stream",
				"queue_id", t.queueID, "scope", p.scope.Name, "header", strings.TrimSpace(hdr), "stream", p.stream.Name)
		}
		// The policy server defers a paused scope's bulk mail at RCPT,
		// where the stream header cannot be seen yet: a message whose
		// header chooses a paused stream is deferred here.
		if t.st.Paused != nil && (p.stream.IsBulk() || p.scope.Vetting.PauseTransactional) {
			if pause, ok := t.st.Paused(p.scope.Name); ok {
				s.stats.Paused.Add(1)
				return s.reject(t, 451, "4.7.1", "%s", health.PauseText(pause))
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range t.rcpts {
		if !seen[r.norm] {
			seen[r.norm] = true
			p.rcpts = append(p.rcpts, r)
		}
	}
	if p.copy == nil {
		if r := s.dropSuppressed(ctx, t, p); r != nil {
			return r
		}
	}
	bulk := p.stream.IsBulk()
	switch {
	case len(p.rcpts) == 0:
		// Postfix named no recipient to the milter: the token names
		// the message.
		p.messageLevel = true
	case p.copy != nil || len(p.rcpts) == 1:
	case bulk && cfg.Milter.CopyService != "":
		p.fanout = true
	case bulk:
		s.log.Warn("bulk mail to several recipients and no milter.copy_service: one token for all, no List-Unsubscribe",
			"queue_id", t.queueID, "scope", p.scope.Name, "stream", p.stream.Name, "recipients", len(p.rcpts))
		p.messageLevel = true
	default:
		// Transactional mail may keep one envelope: its token names
		// the message, not a recipient.
		p.messageLevel = true
	}

	scopeID, err := s.store.ID(ctx, store.ScopeName, p.scope.Name)
	if err != nil {
		return s.tempfail(t, "store: %v", err)
	}
	streamID, err := s.store.ID(ctx, store.StreamName, p.stream.Name)
	if err != nil {
		return s.tempfail(t, "store: %v", err)
	}
	now := timeNow().UTC().Truncate(time.Second)
	p.send = store.Send{ID: sendID(), Scope: p.scope.Name, Stream: p.stream.Name, At: now}
	tok, err := t.st.Tokens.Encode(token.Token{Kind: token.Copy, Time: now, SendID: p.send.ID, Scope: scopeID, Stream: streamID})
	if err != nil {
		return s.tempfail(t, "token: %v", err)
	}
	// The envelope sender carries the token for every stream, so that
	// every bounce can be attributed (VERP).
	p.verp = token.Address(cfg.Bounce.VERPPrefix, tok, cfg.Bounce.Domain)

	e := p.edits
	if cfg.StreamHeader != "" {
		e.remove(cfg.StreamHeader)
	}
	if p.copy != nil {
		e.remove(copyHeader)
	}
	if bulk && !p.messageLevel && (cfg.Milter.ListUnsubscribeFor(p.stream) == "replace" || !t.fields.has("List-Unsubscribe")) {
		// RFC 8058 §3.1: a mailto and an HTTPS URI naming this copy,
		// and the one-click POST key; RFC 8058 §4 wants both signed,
		// which they are (dkim.Signed).
		e.remove("List-Unsubscribe")
		e.remove("List-Unsubscribe-Post")
		e.add("List-Unsubscribe", fmt.Sprintf("<mailto:%s>, <%s%s>",
			token.Address(cfg.Bounce.UnsubscribePrefix, tok, cfg.Bounce.Domain), cfg.HTTP.BaseURL, tok))
		e.add("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	// Gmail's Feedback-ID, "a:b:c:SenderId": which stream, which scope
	// (the customer), which kind, and who sends.
	sender := cfg.Milter.FeedbackIDSender
	if sender == "" {
		sender = cfg.Bounce.Domain
	}
	e.remove("Feedback-ID")
	e.add("Feedback-ID", p.stream.Name+":"+p.scope.Name+":"+p.stream.Kind+":"+sender)
	// RFC 5322 §3.6: Date is required and Message-ID expected; Postfix
	// adds them only for local clients.
	if !t.fields.has("Message-ID") {
		e.add("Message-ID", messageID(a.domain, cfg.Bounce.Domain))
	}
	if !t.fields.has("Date") {
		e.add("Date", now.Format(time.RFC1123Z))
	}

	if bulk && cfg.Milter.DedupeWindow > 0 {
		if p.copy != nil {
			p.key = p.copy.key
		} else {
			p.fp = newFingerprint(t.sender, t.fields, t.queueID)
		}
	}
	if p.fanout {
		p.spool = newSpool("")
	}
	return nil
}

// sendID is a random non-zero 63-bit send id.
func sendID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]) & token.MaxSendID; id != 0 {
			return id
		}
	}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// dropSuppressed removes from the plan the recipients the suppression
// list covers for the message's scope and stream. The policy server
// refuses whole-scope entries at RCPT, but an entry for one stream (an
// unsubscribe with unsubscribe_covers = "stream", or suppress add
// -stream) can be matched only once the stream header is read, here;
// so can an entry made since RCPT, or any entry on a Postfix without the
// policy server. A message left with no recipient gets the scope's
// suppressed_action: refused with the reason, discarded, or held.
func (s *Server) dropSuppressed(ctx context.Context, t *tx, p *plan) *gomilter.Response {
	now := timeNow()
	var kept []rcpt
	var last store.Suppression
	for _, r := range p.rcpts {
		e, found, err := s.store.Lookup(ctx, store.Query{Scope: p.scope.Name, Stream: p.stream.Name, Address: r.norm, At: now})
		if err != nil {
			return s.tempfail(t, "store: checking %s against the suppression list: %v", r.norm, err)
		}
		if !found {
			kept = append(kept, r)
			continue
		}
		last = e
		s.stats.Suppressed.Add(1)
		p.dropped = append(p.dropped, r)
		s.log.Info("suppressed recipient removed", "queue_id", t.queueID, "scope", p.scope.Name, "stream", p.stream.Name,
			"rcpt", r.norm, "entry", e.Address, "entry_scope", e.Scope, "entry_stream", e.Stream, "reason", e.Reason)
	}
	if len(kept) > 0 || len(p.dropped) == 0 {
		p.rcpts = kept
		return nil
	}
	switch p.scope.SuppressedAction {
	case conf.ActionDiscard:
		s.log.Info("message discarded: every recipient is suppressed", "queue_id", t.queueID, "scope", p.scope.Name, "why", last.Why())
		return gomilter.RespDiscard
	case conf.ActionHold:
		// Held as it would have left (signed, with its token), for an
		// administrator who may release it (postsuper -H).
		s.log.Info("message held: every recipient is suppressed", "queue_id", t.queueID, "scope", p.scope.Name, "why", last.Why())
		t.hold = "senderkit: every recipient is suppressed: " + last.Why()
		p.dropped = nil
		return nil
	}
	// RFC 3463 §3.8: X.7.1 "delivery not authorized, message refused".
	return s.reject(t, 550, "5.7.1", "%s", last.Why())
}

// messageID makes a Message-ID on the author's domain (or the bounce
// domain when the author has none).
func messageID(domain, fallback string) string {
	if domain == "" {
		domain = fallback
	}
	b := make([]byte, 15)
	rand.Read(b)
	return "<" + idEncoding.EncodeToString(b) + "@" + domain + ">"
}
