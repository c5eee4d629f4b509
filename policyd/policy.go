package policyd

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/store"
)

// Policy decides on each RCPT: the recipient's suppression in the
// sender's scope first, then its destination's throttle.
type Policy struct {
	Store    store.Store
	Config   func() *conf.Config
	Filter   *Filter
	Throttle *Throttler
	Grouper  *Grouper
	// Pauses, if set, are the paused scopes whose bulk mail is deferred.
	Pauses *Pauses
	// Warmups, if set, caps the mail of warm-ups per destination.
	Warmups *Warmups
	Log     *slog.Logger
	Now     func() time.Time
	// Stats, if set, counts the decisions.
	Stats *Stats

	storeErrors  atomic.Int64 // failed lookups since the last report
	lastErrorLog atomic.Int64 // unix nanoseconds
}

// Stats counts the policy server's decisions, for metrics.
type Stats struct {
	Requests    atomic.Int64 // RCPT requests decided
	Refused     atomic.Int64 // suppressed recipients refused (5xx)
	Discarded   atomic.Int64 // suppressed recipients discarded (suppressed_action = discard)
	Held        atomic.Int64 // suppressed recipients held (suppressed_action = hold)
	Throttled   atomic.Int64 // recipients deferred because their destination is throttled
	Paused      atomic.Int64 // recipients deferred because their scope is paused
	WarmedUp    atomic.Int64 // recipients deferred because a warm-up's cap for the day was reached
	StoreErrors atomic.Int64 // suppression lookups that failed
}

func (p *Policy) count(c func(*Stats) *atomic.Int64) {
	if p.Stats != nil {
		c(p.Stats).Add(1)
	}
}

// Actions (Postfix access(5)).
const (
	dunno = "DUNNO"
	// deferIfPermit defers unless a later restriction rejects anyway.
	deferIfPermit = "DEFER_IF_PERMIT "
)

// Decide implements Decider.
func (p *Policy) Decide(ctx context.Context, req *Request) string {
	// SMTPD_POLICY_README: smtpd sends protocol_state; senderkit is meant
	// for smtpd_recipient_restrictions and only judges recipients.
	if req.ProtocolState != "RCPT" || req.Recipient == "" {
		return dunno
	}
	p.count(func(s *Stats) *atomic.Int64 { return &s.Requests })
	cfg := p.Config()
	rcpt, err := addr.NormalizeInternal(req.Recipient, addr.Options{CaseSensitiveLocal: cfg.Addresses.CaseSensitiveLocal})
	if err != nil {
		return dunno // smtpd's own checks deal with broken addresses
	}
	client, _ := netip.ParseAddr(req.ClientAddress)
	var sc *conf.Scope
	if req.Sender != "" {
		// RFC 5321 §4.5.5: mail with the null sender (bounces, DSNs)
		// belongs to no scope, as in the milter.
		sc = cfg.ScopeFor(conf.Envelope{SASLUser: req.SASLUsername, Sender: req.Sender, Client: client, Daemon: req.PolicyContext})
	}
	if sc != nil {
		if action, done := p.suppression(ctx, cfg, sc, rcpt, req); done {
			return action
		}
	}
	scope := ""
	if sc != nil {
		scope = sc.Name
		if action, done := p.paused(cfg, sc, req); done {
			return action
		}
	}
	// The destination group costs an MX lookup (cached): only asked for
	// when a throttle or a warm-up needs it.
	var wu *conf.Warmup
	if p.Warmups != nil {
		wu = cfg.WarmupFor(scope, req.Sender)
	}
	if !p.Throttle.Active() && wu == nil {
		return dunno
	}
	gctx, cancel := context.WithTimeout(ctx, cfg.Policy.StoreTimeout.D())
	group := p.Grouper.Group(gctx, addr.Domain(rcpt))
	cancel()
	if p.Throttle.Active() {
		if v := p.Throttle.Admit(group, scope); !v.OK {
			p.count(func(s *Stats) *atomic.Int64 { return &s.Throttled })
			text := deferText(group, v)
			p.Log.Info("deferred: destination throttled", "queue_id", req.QueueID, "instance", req.Instance,
				"scope", scope, "recipient", rcpt, "destination", group, "reason", v.Reason, "retry", v.Retry.UTC().Format(time.RFC3339))
			return deferIfPermit + text
		}
	}
	if wu != nil {
		if v := p.Warmups.Admit(wu, group); !v.OK {
			p.count(func(s *Stats) *atomic.Int64 { return &s.WarmedUp })
			p.Log.Info("deferred: warm-up cap reached for the day", "queue_id", req.QueueID, "instance", req.Instance,
				"scope", scope, "recipient", rcpt, "destination", group, "warmup", v.Warmup, "day", v.Day+1, "cap", v.Cap,
				"retry", v.Retry.UTC().Format(time.RFC3339))
			return deferIfPermit + warmupText(group, v)
		}
	}
	return dunno
}

// paused defers the mail of a paused scope: its bulk streams, and its
// transactional ones too when pause_transactional says so. At RCPT the
// stream is the one the service or the sender selects; a stream header
// read later by the milter can still choose another, and the milter
// defers that message at the end of its data.
func (p *Policy) paused(cfg *conf.Config, sc *conf.Scope, req *Request) (string, bool) {
	if p.Pauses == nil {
		return "", false
	}
	pause, ok := p.Pauses.Of(sc.Name)
	if !ok {
		return "", false
	}
	st, _ := sc.StreamFor("", req.PolicyContext, req.Sender)
	if !st.IsBulk() && !sc.Vetting.PauseTransactional {
		return "", false
	}
	p.count(func(s *Stats) *atomic.Int64 { return &s.Paused })
	p.Log.Info("deferred: scope paused", "queue_id", req.QueueID, "instance", req.Instance, "scope", sc.Name,
		"stream", st.Name, "reason", pause.Cause.Reason, "since", pause.Since.UTC().Format(time.RFC3339))
	return deferIfPermit + PausedText(pause), true
}

// suppression checks the recipient against the scope's suppression list.
// done is false when the recipient may be mailed.
func (p *Policy) suppression(ctx context.Context, cfg *conf.Config, sc *conf.Scope, rcpt string, req *Request) (action string, done bool) {
	if !p.Filter.MayContain(rcpt) && !p.Filter.MayContainDomain(rcpt) {
		return "", false
	}
	// At RCPT the stream is known only when the scope has one: the stream
	// header, which takes precedence over the sender and the service, is
	// read later by the milter. So stream-level entries are left to the
	// milter, and whole-scope entries (and the administrator's
	// all-scopes ones) are enforced here.
	stream := ""
	if len(sc.Streams) == 1 {
		stream = sc.Streams[0].Name
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.Policy.StoreTimeout.D())
	defer cancel()
	e, found, err := p.Store.Lookup(lctx, store.Query{Scope: sc.Name, Stream: stream, Address: rcpt, At: p.Now()})
	if err != nil {
		return p.storeError(cfg, sc, rcpt, req, err)
	}
	if !found {
		return "", false
	}
	text := e.Why()
	p.Log.Info("suppressed recipient refused", "queue_id", req.QueueID, "instance", req.Instance, "scope", sc.Name,
		"recipient", rcpt, "entry", e.Address, "entry_scope", e.Scope, "reason", e.Reason, "action", sc.SuppressedAction)
	switch sc.SuppressedAction {
	case conf.ActionDiscard:
		p.count(func(s *Stats) *atomic.Int64 { return &s.Discarded })
		return "DISCARD " + text, true
	case conf.ActionHold:
		p.count(func(s *Stats) *atomic.Int64 { return &s.Held })
		return "HOLD " + text, true
	}
	p.count(func(s *Stats) *atomic.Int64 { return &s.Refused })
	// RFC 3463 §3.8: X.7.1 "delivery not authorized, message refused".
	return "550 5.7.1 " + text, true
}

// storeError answers when the list cannot be read, as configured, and
// says so loudly: every failure at first, then a count every 10 seconds.
func (p *Policy) storeError(cfg *conf.Config, sc *conf.Scope, rcpt string, req *Request, err error) (string, bool) {
	p.count(func(s *Stats) *atomic.Int64 { return &s.StoreErrors })
	n := p.storeErrors.Add(1)
	now := time.Now().UnixNano()
	if last := p.lastErrorLog.Load(); now-last >= int64(10*time.Second) && p.lastErrorLog.CompareAndSwap(last, now) {
		p.storeErrors.Store(0)
		p.Log.Error("cannot read the suppression list", "err", err, "failures", n, "on_store_error", cfg.Policy.OnStoreError,
			"queue_id", req.QueueID, "instance", req.Instance, "scope", sc.Name, "recipient", rcpt)
	}
	if cfg.Policy.OnStoreError == conf.OnErrorDunno {
		return "", false
	}
	return deferIfPermit + "4.3.0 cannot check the recipient against the suppression list now; try again later", true
}
