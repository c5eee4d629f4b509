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
	"github.com/senderkit/senderkit/internal/logfollow"
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
	// Warmups, if set, hears of the destinations that defer or refuse
	// a warm-up's mail, which stops its growth.
	Warmups *Warmups
	Log     *slog.Logger
	Now     func() time.Time
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
func (d *Deliveries) Line(line string) { d.line(context.Background(), line) }

// Handler returns the log follower's handler. While the store cannot be
// read or written, it holds the line (retrying) rather than lose what it
// says: the follower saves its position only after a line is handled.
// If ctx ends first, the line is left unhandled, to be read again at the
// next start.
func (d *Deliveries) Handler(ctx context.Context) logfollow.Handler {
	return func(line string) bool { return d.line(ctx, line) }
}

// line handles one log line; it returns false only when ctx ended while
// the store was unavailable.
func (d *Deliveries) line(ctx context.Context, line string) bool {
	loc := d.Location
	if loc == nil {
		loc = time.Local
	}
	l, ok := postfixlog.ParseSyslog(line, d.Now(), loc)
	if !ok {
		return true
	}
	r, ok := postfixlog.Parse(l)
	if !ok {
		return true
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
			return d.delivery(ctx, r) == nil
		}
	}
	return true
}

// Store trouble the follower waits out.
const (
	firstRetry = 500 * time.Millisecond
	lastRetry  = 30 * time.Second
)

// wait runs f until it succeeds or fails for good, retrying while the
// store is unavailable (store.ErrBusy: locked past its timeout, or a
// database that cannot be reached). It returns ctx's error when ctx ends
// first.
func (d *Deliveries) wait(ctx context.Context, r postfixlog.Record, what string, f func(ctx context.Context) error) error {
	delay := firstRetry
	for failures := 0; ; failures++ {
		sctx, cancel := context.WithTimeout(ctx, storeWait)
		err := f(sctx)
		cancel()
		if err == nil || !errors.Is(err, store.ErrBusy) && !errors.Is(err, context.DeadlineExceeded) {
			if failures > 0 {
				d.Log.Info("the store is back; following Postfix's log again", "queue_id", r.QueueID, "after", failures)
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failures == 0 {
			d.Log.Error("the store is unavailable; holding Postfix's log at this line until it is back",
				"queue_id", r.QueueID, "what", what, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, lastRetry)
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

func (d *Deliveries) delivery(ctx context.Context, r postfixlog.Record) error {
	cfg := d.Config()
	rcpt, err := addr.Normalize(r.To, addr.Options{CaseSensitiveLocal: cfg.Addresses.CaseSensitiveLocal})
	if err != nil {
		return nil
	}
	var send store.Send
	var found bool
	err = d.wait(ctx, r, "looking up the send", func(ctx context.Context) (err error) {
		send, found, err = d.send(ctx, r, rcpt, cfg)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		d.Log.Error("looking up the sends of a delivery failed", "queue_id", r.QueueID, "err", err)
	}
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
	gctx, cancel := context.WithTimeout(ctx, storeWait)
	group := d.Grouper.Group(gctx, addr.Domain(rcpt))
	cancel()
	// Lines older than the window (a first start reading an old log)
	// say nothing about the destination now.
	if d.Now().Sub(r.Time) <= th.Window.D() {
		d.Throttle.Observe(group, scope, o, r.Time, reply)
	}
	if o != Neutral && o != Success && d.Warmups != nil {
		d.Warmups.Held(group, scope, r.Time)
	}
	if o != Neutral && o != Success {
		d.Log.Debug("destination tempfail", "queue_id", r.QueueID, "recipient", rcpt, "destination", group, "outcome", o.String(), "reply", reply)
	}
	var f failure
	if r.Status != postfixlog.Sent {
		f = classifyFailure(o, r)
	}
	if f.senderProblem && !found {
		ev := store.Event{At: r.Time, Scope: scope, Address: rcpt, Reason: f.reason, Status: r.DSN,
			ReplyCode: r.ReplyCode, Diagnostic: reply, Source: "log", Hard: r.DSN != "" && r.DSN[0] == '5',
			Key: fmt.Sprintf("sender-problem/%s/%s/%d", r.QueueID, rcpt, r.Time.Unix())}
		return d.record(ctx, r, "sender problem", func(ctx context.Context, ru rules.Rules) (store.Result, error) {
			return ru.Bounce(ctx, ev, true)
		})
	}
	if !found {
		return nil
	}
	ev := store.Event{At: r.Time, Scope: send.Scope, Stream: send.Stream, Address: rcpt, SendID: send.ID,
		Status: r.DSN, ReplyCode: r.ReplyCode, Diagnostic: reply, Source: "log"}
	switch r.Status {
	case postfixlog.Sent:
		ev.Key = store.DeliveryKey(send.ID, rcpt)
		return d.record(ctx, r, "delivery", func(ctx context.Context, ru rules.Rules) (store.Result, error) { return ru.Delivered(ctx, ev) })
	case postfixlog.Bounced, postfixlog.Expired:
		ev.Key, ev.Hard, ev.Reason = store.BounceKey(send.ID, rcpt), f.hard, f.reason
		return d.record(ctx, r, "bounce", func(ctx context.Context, ru rules.Rules) (store.Result, error) {
			return ru.Bounce(ctx, ev, f.senderProblem)
		})
	case postfixlog.Deferred:
		ev.Type, ev.Reason = store.Deferred, f.reason
		ev.Key = fmt.Sprintf("deferred/%d/%s/%d/%d", send.ID, rcpt, r.Time.Unix(), r.PID)
		if f.senderProblem {
			ev.Type = store.SenderProblem
		}
		return d.record(ctx, r, "deferral", func(ctx context.Context, ru rules.Rules) (store.Result, error) { return ru.Note(ctx, ev) })
	}
	return nil
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
	if f.senderProblem || f.hard {
		// The classifier's own reading wins: a hard, address-level
		// failure is never turned into the sender's problem by the
		// throttle's broader patterns.
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
func (d *Deliveries) send(ctx context.Context, r postfixlog.Record, rcpt string, cfg *conf.Config) (store.Send, bool, error) {
	sends, err := d.Store.SendsByQueueID(ctx, r.QueueID)
	if err != nil {
		return store.Send{}, false, err
	}
	orig := ""
	if r.OrigTo != "" {
		orig, _ = addr.Normalize(r.OrigTo, addr.Options{CaseSensitiveLocal: cfg.Addresses.CaseSensitiveLocal})
	}
	var whole *store.Send
	for i, s := range sends {
		switch s.Recipient {
		case rcpt:
			return s, true, nil
		case "":
			whole = &sends[i]
		default:
			if orig != "" && s.Recipient == orig {
				return s, true, nil
			}
		}
	}
	if whole != nil {
		return *whole, true, nil
	}
	return store.Send{}, false, nil
}

func (d *Deliveries) record(ctx context.Context, r postfixlog.Record, what string, f func(context.Context, rules.Rules) (store.Result, error)) error {
	err := d.wait(ctx, r, "recording a "+what, func(ctx context.Context) error {
		_, err := f(ctx, rules.Rules{Store: d.Store, Config: d.Config()})
		return err
	})
	switch {
	case ctx.Err() != nil && err != nil:
		return err // serve is stopping: the line is read again next time
	case errors.Is(err, store.ErrDuplicate):
		d.Log.Debug("already recorded", "queue_id", r.QueueID, "what", what, "recipient", r.To)
	case err != nil:
		d.Log.Error("recording a "+what+" from the log failed", "queue_id", r.QueueID, "recipient", r.To, "err", err)
	}
	return nil
}
