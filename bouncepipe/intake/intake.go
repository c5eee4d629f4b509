// Package intake is the bounce pipe's decision: given one message that
// Postfix's pipe(8) handed over for the bounce domain, find the copy it is
// about (by its signed token), read what it says (package bouncepipe) and
// record it by the configured rules (package rules); forward what is meant
// for a person; keep aside what cannot be read. Nothing is lost: anything
// that may succeed later is reported as ErrTemporary, which the caller
// turns into exit status 75 so that Postfix keeps the message and retries,
// and a message handed over twice changes nothing the second time.
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/senderkit/senderkit/bouncepipe"
	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/rules"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
)

// ErrTemporary wraps failures that may pass if the message is tried
// again later: the store is locked or unreachable, the relay for
// forwarding refuses for now, the quarantine cannot be written.
var ErrTemporary = errors.New("intake: temporary failure")

// Envelope is what pipe(8) passes on the command line.
type Envelope struct {
	Sender    string // ${sender}: "" or "MAILER-DAEMON" for the null sender
	Recipient string // ${recipient}: an address on the bounce domain
}

// Intake holds what Process needs.
type Intake struct {
	Config *conf.Config
	Keys   *token.Keyring
	Store  store.Store
	Log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Forward hands the message, intact, to the role address. Nil means
	// SMTP to Config.Bounce.ForwardRelay (see SMTPForward).
	Forward func(ctx context.Context, to, forRcpt string, msg io.Reader) error
}

// Outcome says what Process did with one message.
type Outcome struct {
	Kind   bouncepipe.Kind
	Token  string // "verified", "forged" or "none"
	Action string // what was done: "suppressed", "recorded", "forwarded", "quarantined", "duplicate"
	// Recipient is the address acted on, "" if none.
	Recipient string
	Scope     string
	Events    int // events recorded
	// Duplicates counts events already recorded by an earlier delivery
	// of the same message.
	Duplicates int
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// role is what the envelope recipient tells about a message.
type role int

const (
	roleOther       role = iota // postmaster@, abuse@ or anything else on the bounce domain
	roleVERP                    // b+TOKEN@: bounces, auto-replies, replies to the envelope sender
	roleUnsubscribe             // unsubscribe+TOKEN@: the List-Unsubscribe mailto
	roleFeedback                // fbl-yahoo@: a feedback loop's reports
)

// Process handles the message in f (read from its start; f is read more
// than once). The Outcome is valid when the error is nil.
func (in *Intake) Process(ctx context.Context, env Envelope, f *os.File) (Outcome, error) {
	sum, err := hashFile(f, env.Recipient)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: read message: %v", ErrTemporary, err)
	}
	p := &processing{in: in, env: env, f: f, key: "bp:" + sum[:32], at: in.now()}
	p.log = in.Log.With("recipient", env.Recipient, "sender", env.Sender, "message", sum[:16])
	return p.run(ctx)
}

// hashFile identifies one delivery of a message: the same message to
// two of our addresses is two deliveries, each processed once.
func hashFile(f *os.File, recipient string) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, strings.ToLower(recipient)+"\n")
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// processing is one run of Process.
type processing struct {
	in   *Intake
	env  Envelope
	f    *os.File
	key  string // idempotency key stem: the message's hash
	at   time.Time
	log  *slog.Logger
	rep  *bouncepipe.Report
	out  Outcome
	fbl  *conf.FeedbackLoop
	role role
	attr *attribution
}

func (p *processing) run(ctx context.Context) (Outcome, error) {
	cfg := p.in.Config
	rcpt := strings.ToLower(strings.Trim(p.env.Recipient, "<> "))
	local, domain := addr.Local(rcpt), addr.Domain(rcpt)
	switch {
	case domain != cfg.Bounce.Domain:
		p.role = roleOther
	case hasPrefix(local, cfg.Bounce.VERPPrefix):
		p.role = roleVERP
	case hasPrefix(local, cfg.Bounce.UnsubscribePrefix):
		p.role = roleUnsubscribe
	default:
		if p.fbl = cfg.Bounce.FeedbackLoop(local); p.fbl != nil {
			p.role = roleFeedback
		}
	}

	rep, err := p.parse()
	if err != nil {
		return p.quarantine(ctx, fmt.Sprintf("cannot parse: %v", err))
	}
	p.rep = rep
	p.out.Kind = rep.Kind
	if rep.Kind == bouncepipe.Unknown && p.role != roleUnsubscribe {
		return p.quarantine(ctx, "not a message senderkit can read")
	}
	if err := p.attribute(ctx); err != nil {
		return p.out, err
	}
	if err := p.checkReported(ctx); err != nil {
		return p.out, err
	}

	switch {
	case p.role == roleUnsubscribe && rep.Kind != bouncepipe.AutoReply && rep.Kind != bouncepipe.Bounce:
		// RFC 2369 §3.2 / RFC 8058: sending to the mailto address is the
		// request, whatever the message says.
		err = p.unsubscribe(ctx, "mailto")
	case rep.Kind == bouncepipe.Complaint:
		err = p.complaint(ctx)
	case p.role == roleVERP || p.role == roleUnsubscribe:
		err = p.returned(ctx)
	default:
		// Mail for a person that reached a feedback-loop or role
		// address: an administrative message, a report card, a reply.
		err = p.forward(ctx)
	}
	return p.out, err
}

func hasPrefix(local, prefix string) bool {
	_, ok := token.FromLocal(local, prefix)
	return ok
}

func (p *processing) parse() (rep *bouncepipe.Report, err error) {
	defer func() {
		// The parser is fuzzed; should it still panic, the message is
		// quarantined rather than lost or retried for ever.
		if r := recover(); r != nil {
			rep, err = nil, fmt.Errorf("parser panic: %v", r)
		}
	}()
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	cfg := p.in.Config
	sender := p.env.Sender
	if strings.EqualFold(sender, "MAILER-DAEMON") {
		sender = ""
	}
	return bouncepipe.Parse(p.f, bouncepipe.Options{
		Recipient:         p.env.Recipient,
		Sender:            sender,
		BounceDomain:      cfg.Bounce.Domain,
		VERPPrefix:        cfg.Bounce.VERPPrefix,
		UnsubscribePrefix: cfg.Bounce.UnsubscribePrefix,
		UnsubscribeURL:    cfg.HTTP.BaseURL,
	})
}

// attribution is the copy a verified token names.
type attribution struct {
	tok    token.Token
	scope  string
	stream string
	send   store.Send // zero when the send row is gone
	where  string     // where the token was found
}

// attribute verifies the token candidates, best first, and looks up the
// send the first good one names. Mail to a VERP or mailto address is
// about the copy its envelope recipient names, whatever its content
// (which anyone can write) says; reports to other addresses (feedback
// loops, abuse@) are attributed by the tokens in the returned original.
func (p *processing) attribute(ctx context.Context) error {
	p.out.Token = "none"
	for _, c := range p.rep.Tokens {
		if (p.role == roleVERP || p.role == roleUnsubscribe) && c.Where != bouncepipe.WhereRecipient {
			continue
		}
		tok, err := p.in.Keys.Decode(c.Token)
		if errors.Is(err, token.ErrForged) || err == nil && tok.Kind != token.Copy {
			p.out.Token = "forged"
			p.log.Warn("token does not verify", "where", c.Where, "err", err)
			continue
		}
		if err != nil {
			continue // not a token at all
		}
		a := &attribution{tok: tok, where: c.Where}
		if a.scope, err = p.in.Store.Name(ctx, store.ScopeName, tok.Scope); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				p.log.Warn("verified token names an unknown scope id; was the store replaced?", "scope_id", tok.Scope)
				continue
			}
			return fmt.Errorf("%w: %w", ErrTemporary, err)
		}
		if a.stream, err = p.in.Store.Name(ctx, store.StreamName, tok.Stream); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %w", ErrTemporary, err)
		}
		send, err := p.in.Store.Send(ctx, tok.SendID)
		switch {
		case err == nil:
			if send.Scope != a.scope || send.Stream != a.stream {
				p.out.Token = "forged"
				p.log.Error("verified token disagrees with its send row", "send", tok.SendID, "token_scope", a.scope, "send_scope", send.Scope)
				continue
			}
			a.send = send
		case errors.Is(err, store.ErrNotFound):
			p.log.Info("the send this token names is no longer in the store", "send", tok.SendID)
		default:
			return fmt.Errorf("%w: %w", ErrTemporary, err)
		}
		p.attr, p.out.Token, p.out.Scope = a, "verified", a.scope
		return nil
	}
	return nil
}

// recipient returns the address to act on: the one the token's send
// names, else the one the report names (see checkReported), never a
// domain pattern ("*@example.com" would suppress a whole domain).
func (p *processing) recipient(rec *bouncepipe.Record) string {
	if p.attr != nil && p.attr.send.Recipient != "" {
		return p.attr.send.Recipient
	}
	if rec != nil && rec.Recipient != "" {
		a, err := addr.Normalize(rec.Recipient, addr.Options{CaseSensitiveLocal: p.in.Config.Addresses.CaseSensitiveLocal})
		if err == nil && !addr.IsDomainPattern(a) {
			return a
		}
	}
	return ""
}

// checkReported keeps, of the recipients a report names, only those the
// attributed send went to, when the send names no recipient itself: a
// message-level token (transactional mail to several recipients, or
// bulk mail with no copy service) is in the Return-Path every one of
// them sees, and a send row may be gone. Anyone holding such a token
// could otherwise have any address suppressed by naming it in a made-up
// report. The proof is Postfix's log: the log follower records every
// delivery, deferral and bounce of the send with its recipient.
func (p *processing) checkReported(ctx context.Context) error {
	if p.attr == nil || p.attr.send.Recipient != "" {
		return nil
	}
	for i := range p.rep.Records {
		rec := &p.rep.Records[i]
		a := p.recipient(rec)
		if a == "" {
			continue
		}
		seen := false
		err := p.in.Store.Events(ctx, store.EventFilter{SendID: p.attr.tok.SendID, Address: a,
			Types: []store.EventType{store.Delivered, store.Deferred, store.Bounced, store.SenderProblem}},
			func(ev store.Event) error {
				if ev.Source == "log" && ev.Address == a {
					seen = true
				}
				return nil
			})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTemporary, err)
		}
		if !seen {
			p.log.Warn("the report names a recipient Postfix's log does not show this send went to; it is not acted on",
				"send", p.attr.tok.SendID, "named", a)
			rec.Recipient = ""
		}
	}
	return nil
}

// event starts an event about the attributed copy.
func (p *processing) event(n int, rcpt string) store.Event {
	ev := store.Event{At: p.at, Address: rcpt, Source: "bouncepipe", ReportingMTA: p.rep.ReportingMTA,
		Key: fmt.Sprintf("%s:%d", p.key, n)}
	if p.attr != nil {
		ev.Scope, ev.Stream, ev.SendID = p.attr.scope, p.attr.stream, p.attr.tok.SendID
	}
	if p.fbl != nil {
		ev.Source = "fbl:" + p.fbl.Provider
	}
	return ev
}

// record runs one rule, counting what happened.
func (p *processing) record(res store.Result, err error) error {
	if errors.Is(err, store.ErrDuplicate) {
		p.out.Duplicates++
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTemporary, err)
	}
	p.out.Events++
	if res.Changed && res.Entry.Reason != "" {
		p.out.Action = "suppressed"
	} else if p.out.Action == "" {
		p.out.Action = "recorded"
	}
	return nil
}

func (p *processing) rules() rules.Rules { return rules.Rules{Store: p.in.Store, Config: p.in.Config} }

// unattributed records that a report could not be tied to a copy
// ("forged" when a token failed to verify) and changes nothing else.
func (p *processing) unattributed(ctx context.Context, what string, rec *bouncepipe.Record) error {
	ev := p.event(0, "")
	ev.Scope, ev.Stream, ev.SendID = "", "", 0
	ev.Type, ev.Reason = store.Unattributed, "unattributable"
	if p.out.Token == "forged" {
		ev.Reason = "forged"
	}
	ev.FeedbackType = p.rep.FeedbackType
	ev.Diagnostic = what
	if rec != nil {
		ev.Status, ev.ReplyCode = rec.Status, rec.ReplyCode
		ev.Diagnostic = fmt.Sprintf("%s %s for %s: %s", what, rec.Reason, rec.Recipient, rec.Diagnostic)
	}
	p.log.Warn("report not attributed to any copy; nothing changed", "kind", p.rep.Kind, "token", p.out.Token, "what", what)
	if err := p.record(p.rules().Note(ctx, ev)); err != nil {
		return err
	}
	p.out.Action = "unattributed"
	return nil
}

func (p *processing) unsubscribe(ctx context.Context, how string) error {
	rcpt := p.recipient(nil)
	if p.attr == nil || rcpt == "" {
		return p.unattributed(ctx, "unsubscribe by "+how, nil)
	}
	ev := p.event(0, rcpt)
	ev.Diagnostic = "unsubscribe by " + how
	p.out.Recipient = rcpt
	if err := p.record(p.rules().Unsubscribe(ctx, ev)); err != nil {
		return err
	}
	p.log.Info("unsubscribe", "address", rcpt, "scope", ev.Scope, "stream", ev.Stream, "by", how)
	return nil
}

func (p *processing) complaint(ctx context.Context) error {
	var rec *bouncepipe.Record
	if len(p.rep.Records) > 0 {
		rec = &p.rep.Records[0]
	}
	rcpt := p.recipient(rec)
	if p.attr == nil || rcpt == "" {
		return p.unattributed(ctx, "complaint "+p.rep.FeedbackType, rec)
	}
	ev := p.event(0, rcpt)
	ev.FeedbackType, ev.Reason = p.rep.FeedbackType, "feedback"
	if ev.FeedbackType == "" {
		ev.FeedbackType = "abuse" // a forwarded complaint without ARF fields
	}
	if p.role == roleOther {
		ev.Source = "complaint:" + p.env.Recipient // forwarded by a person to abuse@ and the like
	}
	// Keyed by the copy, not by the message's bytes: the same report
	// delivered again carries a new Received field.
	ev.Key = store.ComplaintKey(ev.SendID, rcpt, ev.FeedbackType)
	p.out.Recipient = rcpt
	if err := p.record(p.rules().Complaint(ctx, ev)); err != nil {
		return err
	}
	p.log.Info("complaint", "address", rcpt, "scope", ev.Scope, "feedback_type", ev.FeedbackType, "source", ev.Source)
	return nil
}

// returned handles what came back to a VERP address: bounces, delays,
// positive DSNs, auto-replies, and replies from people.
func (p *processing) returned(ctx context.Context) error {
	rep := p.rep
	switch rep.Kind {
	case bouncepipe.Human:
		if rep.AsksUnsubscribe && p.attr != nil {
			// A person answered "unsubscribe": honour it (BCP: any
			// reasonable request), and still let a person read it.
			if err := p.unsubscribe(ctx, "reply"); err != nil {
				return err
			}
		}
		return p.forward(ctx)
	case bouncepipe.Unsubscribe:
		// A request to be removed (Apple Mail's) sent to the envelope
		// sender rather than to the List-Unsubscribe address.
		return p.unsubscribe(ctx, "mail to the return path")
	case bouncepipe.AutoReply:
		if p.attr == nil {
			return p.unattributed(ctx, "auto-reply "+rep.AutoReply, nil)
		}
		ev := p.event(0, p.recipient(firstRecord(rep)))
		ev.Type, ev.Reason = store.AutoReply, rep.AutoReply
		p.out.Recipient = ev.Address
		return p.record(p.rules().Note(ctx, ev))
	}
	if len(rep.Records) == 0 {
		return p.unattributed(ctx, rep.Kind.String()+" without a recipient", nil)
	}
	if p.attr == nil {
		return p.unattributed(ctx, rep.Kind.String(), worst(rep.Records))
	}
	recs := p.byRecipient()
	if len(recs) == 0 {
		return p.unattributed(ctx, rep.Kind.String()+" naming no usable recipient", worst(rep.Records))
	}
	for i, rec := range recs {
		rcpt := p.recipient(rec)
		ev := p.event(i, rcpt)
		ev.Reason, ev.Hard, ev.Status, ev.ReplyCode, ev.Diagnostic = rec.Reason, rec.Hard, rec.Status, rec.ReplyCode, rec.Diagnostic
		if ev.ReportingMTA == "" {
			ev.ReportingMTA = rec.RemoteMTA
		}
		var err error
		switch {
		case rec.Action == "delayed" || rep.Kind == bouncepipe.Delay && rec.Action == "":
			ev.Type = store.Deferred
			err = p.record(p.rules().Note(ctx, ev))
		case rec.Action == "delivered" || rec.Action == "relayed" || rec.Action == "expanded":
			ev.Key = store.DeliveryKey(ev.SendID, rcpt)
			err = p.record(p.rules().Delivered(ctx, ev))
		default:
			// The key Postfix's log follower uses for the same failure:
			// counted once, whichever reports it first.
			ev.Key = store.BounceKey(ev.SendID, rcpt)
			err = p.record(p.rules().Bounce(ctx, ev, rec.SenderProblem))
		}
		if err != nil {
			return err
		}
		p.out.Recipient = rcpt
		p.log.Info("returned mail", "kind", rep.Kind, "address", rcpt, "scope", ev.Scope, "reason", rec.Reason,
			"hard", rec.Hard, "sender_problem", rec.SenderProblem, "status", rec.Status, "action", p.out.Action)
	}
	return nil
}

// severity orders DSN actions: a failure outweighs a delay, which
// outweighs a delivery (a report may say several things of one
// recipient, in its text and in its delivery-status part).
func severity(rec *bouncepipe.Record) int {
	switch rec.Action {
	case "delivered", "relayed", "expanded":
		return 1
	case "delayed":
		return 2
	}
	return 3
}

// worst returns the most severe of recs, or nil.
func worst(recs []bouncepipe.Record) *bouncepipe.Record {
	var w *bouncepipe.Record
	for i := range recs {
		if w == nil || severity(&recs[i]) > severity(w) {
			w = &recs[i]
		}
	}
	return w
}

// byRecipient returns, per address acted on, the most severe record
// about it, in the order the report names them. A per-copy token names
// one recipient, so its records all fold into one.
func (p *processing) byRecipient() []*bouncepipe.Record {
	var order []string
	best := map[string]*bouncepipe.Record{}
	for i := range p.rep.Records {
		rec := &p.rep.Records[i]
		rcpt := p.recipient(rec)
		if rcpt == "" {
			continue
		}
		if b, ok := best[rcpt]; !ok {
			order = append(order, rcpt)
			best[rcpt] = rec
		} else if severity(rec) > severity(b) {
			best[rcpt] = rec
		}
	}
	out := make([]*bouncepipe.Record, len(order))
	for i, r := range order {
		out[i] = best[r]
	}
	return out
}

func firstRecord(rep *bouncepipe.Report) *bouncepipe.Record {
	if len(rep.Records) == 0 {
		return nil
	}
	return &rep.Records[0]
}
