package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/senderkit/senderkit/bouncepipe"
	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/postfixlog"
	"github.com/senderkit/senderkit/internal/rules"
	"github.com/senderkit/senderkit/internal/store"
)

// Deliveries reads Postfix's log lines (a logfollow.Handler): each
// delivery attempt by smtp(8) or lmtp(8) feeds its destination's health,
// and, when it is one of the copies the milter recorded (store.Send, by
// queue ID and recipient), becomes an event through the suppression
// rules: a delivery (which ends the recipient's soft-bounce streak and
// counts as delivered for complaint rates), a bounce, a deferral, or a
// sender problem. Event keys make a line read twice, or a bounce that
// also comes back as Postfix's DSN to the bounce pipe, count once.
type Deliveries struct {
	Store    store.Store
	Config   func() *conf.Config
	Throttle *Throttler
	Grouper  *Grouper
	Log      *slog.Logger
	Now      func() time.Time
	// Location is the time zone of time stamps without one; default
	// time.Local.
	Location *time.Location

	envelopes map[string]envelope // by queue ID, from smtpd and qmgr lines
}

// envelope is what the log said about a message before its delivery:
// enough to find its scope when the milter recorded no send.
type envelope struct {
	client   netip.Addr
	saslUser string
	sender   string
}

// maxEnvelopes bounds the queue IDs remembered (a message whose removal
// was never seen would otherwise stay forever).
const maxEnvelopes = 100_000

// storeWait bounds the store work for one line.
const storeWait = 10 * time.Second

// Line handles one log line.
func (d *Deliveries) Line(line string) {
	loc := d.Location
	if loc == nil {
		loc = time.Local
	}
	l, ok := postfixlog.ParseSyslog(line, d.Now(), loc)
	if !ok {
		return
	}
	r, ok := postfixlog.Parse(l)
	if !ok {
		return
	}
	if d.envelopes == nil {
		d.envelopes = map[string]envelope{}
	}
	switch r.Kind {
	case postfixlog.Client:
		d.envelope(r.QueueID, func(e *envelope) { e.client, e.saslUser = r.ClientAddr, r.SASLUser })
	case postfixlog.From:
		d.envelope(r.QueueID, func(e *envelope) { e.sender = r.Sender })
	case postfixlog.Removed:
		delete(d.envelopes, r.QueueID)
	case postfixlog.Delivery:
		if r.Service == "smtp" || r.Service == "lmtp" {
			d.delivery(r)
		}
	}
}

func (d *Deliveries) envelope(qid string, f func(*envelope)) {
	e, ok := d.envelopes[qid]
	if !ok && len(d.envelopes) >= maxEnvelopes {
		clear(d.envelopes)
	}
	f(&e)
	d.envelopes[qid] = e
}

func (d *Deliveries) delivery(r postfixlog.Record) {
	cfg := d.Config()
	ctx, cancel := context.WithTimeout(context.Background(), storeWait)
	defer cancel()
	rcpt, err := addr.Normalize(r.To, addr.Options{CaseSensitiveLocal: cfg.Addresses.CaseSensitiveLocal})
	if err != nil {
		return
	}
	send, found := d.send(ctx, r, rcpt, cfg)
	scope := send.Scope
	if !found {
		if env, ok := d.envelopes[r.QueueID]; ok {
			if sc := cfg.ScopeFor(conf.Envelope{SASLUser: env.saslUser, Sender: env.sender, Client: env.client}); sc != nil {
				scope = sc.Name
			}
		}
	}
	th := &cfg.Policy.Throttle
	o := Classify(th, r)
	reply := r.Reply
	if reply == "" {
		reply = r.Text
	}
	group := d.Grouper.Group(ctx, addr.Domain(rcpt))
	// Lines older than the window (a first start reading an old log)
	// say nothing about the destination now.
	if d.Now().Sub(r.Time) <= th.Window.D() {
		d.Throttle.Observe(group, scope, o, r.Time, reply)
	}
	if o != Neutral && o != Success {
		d.Log.Debug("destination tempfail", "queue_id", r.QueueID, "recipient", rcpt, "destination", group, "outcome", o.String(), "reply", reply)
	}
	var f failure
	if r.Status != postfixlog.Sent {
		f = classifyFailure(o, r)
	}
	if f.senderProblem && !found {
		d.record(ctx, r, "sender problem", func(ru rules.Rules) (store.Result, error) {
			return ru.Bounce(ctx, store.Event{At: r.Time, Scope: scope, Address: rcpt, Reason: f.reason, Status: r.DSN,
				ReplyCode: r.ReplyCode, Diagnostic: reply, Source: "log", Hard: r.DSN != "" && r.DSN[0] == '5',
				Key: fmt.Sprintf("sender-problem/%s/%s/%d", r.QueueID, rcpt, r.Time.Unix())}, true)
		})
	}
	if !found {
		return
	}
	ev := store.Event{At: r.Time, Scope: send.Scope, Stream: send.Stream, Address: rcpt, SendID: send.ID,
		Status: r.DSN, ReplyCode: r.ReplyCode, Diagnostic: reply, Source: "log"}
	switch r.Status {
	case postfixlog.Sent:
		ev.Key = store.DeliveryKey(send.ID, rcpt)
		d.record(ctx, r, "delivery", func(ru rules.Rules) (store.Result, error) { return ru.Delivered(ctx, ev) })
	case postfixlog.Bounced, postfixlog.Expired:
		ev.Key, ev.Hard, ev.Reason = store.BounceKey(send.ID, rcpt), f.hard, f.reason
		d.record(ctx, r, "bounce", func(ru rules.Rules) (store.Result, error) { return ru.Bounce(ctx, ev, f.senderProblem) })
	case postfixlog.Deferred:
		ev.Type, ev.Reason = store.Deferred, f.reason
		ev.Key = fmt.Sprintf("deferred/%d/%s/%d/%d", send.ID, rcpt, r.Time.Unix(), r.PID)
		if f.senderProblem {
			ev.Type = store.SenderProblem
		}
		d.record(ctx, r, "deferral", func(ru rules.Rules) (store.Result, error) { return ru.Note(ctx, ev) })
	}
}

// failure is what a logged failure or deferral says about the recipient.
type failure struct {
	reason        string // Sisimai v5 reason name
	hard          bool   // suppress the recipient at once
	senderProblem bool   // blames the sender, not the recipient
}

// classifyFailure reads a failed or deferred delivery with the bounce
// pipe's classifier, so that a failure counts the same whether it is
// read from the log or from the DSN that comes back by mail. Postfix's
// whole explanation is read, not only the remote's reply: it names the
// SMTP command the reply answered ("in reply to RCPT TO command"). A
// reply the throttle's own blocklist or rate-limit patterns match blames
// the sender even when the wording is new to the classifier.
func classifyFailure(o Outcome, r postfixlog.Record) failure {
	var f failure
	f.reason, f.hard, f.senderProblem = bouncepipe.ClassifyReply(r.DSN, r.Text)
	if f.senderProblem {
		return f
	}
	switch o {
	case Blocklisted:
		return failure{reason: "blocked", senderProblem: true}
	case RateLimited:
		return failure{reason: "speeding", senderProblem: true}
	}
	return f
}

// send finds the copy a delivery line is about: the send recorded under
// the line's queue ID for this recipient (or for the whole message).
func (d *Deliveries) send(ctx context.Context, r postfixlog.Record, rcpt string, cfg *conf.Config) (store.Send, bool) {
	sends, err := d.Store.SendsByQueueID(ctx, r.QueueID)
	if err != nil {
		d.Log.Error("looking up the sends of a delivery failed", "queue_id", r.QueueID, "err", err)
		return store.Send{}, false
	}
	orig := ""
	if r.OrigTo != "" {
		orig, _ = addr.Normalize(r.OrigTo, addr.Options{CaseSensitiveLocal: cfg.Addresses.CaseSensitiveLocal})
	}
	var whole *store.Send
	for i, s := range sends {
		switch s.Recipient {
		case rcpt:
			return s, true
		case "":
			whole = &sends[i]
		default:
			if orig != "" && s.Recipient == orig {
				return s, true
			}
		}
	}
	if whole != nil {
		return *whole, true
	}
	return store.Send{}, false
}

func (d *Deliveries) record(ctx context.Context, r postfixlog.Record, what string, f func(rules.Rules) (store.Result, error)) {
	_, err := f(rules.Rules{Store: d.Store, Config: d.Config()})
	switch {
	case errors.Is(err, store.ErrDuplicate):
		d.Log.Debug("already recorded", "queue_id", r.QueueID, "what", what, "recipient", r.To)
	case err != nil:
		d.Log.Error("recording a "+what+" from the log failed", "queue_id", r.QueueID, "recipient", r.To, "err", err)
	}
}
