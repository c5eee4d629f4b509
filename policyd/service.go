package policyd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/logfollow"
	"github.com/senderkit/senderkit/internal/store"
)

// Service is everything `senderkit serve` runs for the policy server:
// the server itself, the refresh of its suppression filter, the Postfix
// log follower that feeds the throttle, and the saving of the throttle
// state for reports. Thresholds and limits follow the live
// configuration; the listening address and the log source are read at
// start.
type Service struct {
	Store  store.Store
	Config func() *conf.Config
	Log    *slog.Logger
	// Resolver answers MX lookups; nil asks the DNS server of
	// policy.resolver.
	Resolver Resolver
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Listener, if set, is served instead of opening policy.listen.
	Listener net.Listener

	// Filter is the in-memory suppression filter; Run makes one when nil.
	Filter *Filter

	stats    Stats
	throttle atomic.Pointer[Throttler]
	pauses   Pauses
	warmups  atomic.Pointer[Warmups]
}

// Paused returns how many scopes the server holds paused.
func (s *Service) Paused() int { return s.pauses.Count() }

// Warmups returns the warm-up state, nil before Run.
func (s *Service) Warmups() *Warmups { return s.warmups.Load() }

// Stats returns the policy server's counters.
func (s *Service) Stats() *Stats { return &s.stats }

// Throttled returns how many destinations (and scopes at a destination)
// are held back now.
func (s *Service) Throttled() int {
	if t := s.throttle.Load(); t != nil {
		return len(t.Snapshot())
	}
	return 0
}

// saveEvery is how often a changed throttle state is written to the
// store.
const saveEvery = time.Second

// Run runs until ctx ends; it fails early only when it cannot listen.
func (s *Service) Run(ctx context.Context) error {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	cfg := s.Config()
	res := s.Resolver
	if res == nil {
		res = configResolver{s.Config}
	}
	throttle := NewThrottler(func() *conf.Throttle { return &s.Config().Policy.Throttle }, now)
	if ts, err := s.Store.Throttles(ctx); err != nil {
		s.Log.Error("reading the saved throttle state failed; starting afresh", "err", err)
	} else {
		throttle.Restore(ts)
	}
	s.throttle.Store(throttle)
	if s.Filter == nil {
		s.Filter = &Filter{}
	}
	warmups := &Warmups{Store: s.Store, Config: s.Config, Now: now}
	s.warmups.Store(warmups)
	grouper := &Grouper{Resolver: res, Now: now, Static: func(d string) string { return s.Config().Policy.Throttle.Group(d) }}

	ln := s.Listener
	if ln == nil && cfg.Policy.Listen != "" {
		var err error
		if ln, err = cfg.Policy.Listen.Open(0o666); err != nil { // smtpd runs as postfix
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.refreshFilter(ctx) })
	wg.Go(func() { s.saveThrottle(ctx) })
	wg.Go(func() {
		s.pauses.Follow(ctx, s.Store, func() time.Duration { return s.Config().Policy.Refresh.D() }, s.Log)
	})
	wg.Go(func() { s.syncWarmups(ctx, warmups) })
	if src := cfg.Policy.Maillog; src != "" {
		d := &Deliveries{Store: s.Store, Config: s.Config, Throttle: throttle, Grouper: grouper, Warmups: warmups, Log: s.Log, Now: now}
		f := follower(src, cfg.StateDir, s.Log)
		s.Log.Info("following Postfix's log", "source", src)
		wg.Go(func() {
			if err := f.Follow(ctx, d.Handler(ctx)); err != nil {
				s.Log.Error("the Postfix log follower stopped", "source", src, "err", err)
			}
		})
	}
	var err error
	if ln != nil {
		srv := &Server{
			Decider: &Policy{Store: s.Store, Config: s.Config, Filter: s.Filter, Throttle: throttle, Grouper: grouper,
				Pauses: &s.pauses, Warmups: warmups, Log: s.Log, Now: now, Stats: &s.stats},
			Limits: func() ServerLimits { return limitsOf(s.Config()) },
			Log:    s.Log,
		}
		s.Log.Info("policy server listening", "listen", ln.Addr().String())
		err = srv.Serve(ctx, ln)
	}
	wg.Wait()
	return err
}

func limitsOf(c *conf.Config) ServerLimits {
	p := c.Policy
	return ServerLimits{
		Limits:         Limits{MaxLine: p.MaxLineLength, MaxAttributes: p.MaxAttributes},
		IdleTimeout:    p.IdleTimeout.D(),
		RequestTimeout: p.RequestTimeout.D(),
		MaxConnections: p.MaxConnections,
	}
}

// follower returns the follower of a policy.maillog source.
func follower(src, stateDir string, log *slog.Logger) logfollow.Follower {
	if src == conf.MaillogJournal {
		return &logfollow.Journal{State: filepath.Join(stateDir, "journal.cursor"), Log: log}
	}
	return &logfollow.File{Path: src, State: filepath.Join(stateDir, "maillog.position"), Log: log}
}

// refreshFilter keeps the suppression filter current.
func (s *Service) refreshFilter(ctx context.Context) {
	var failing bool
	for {
		start := time.Now()
		err := s.Filter.Refresh(ctx, s.Store)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.Log.Error("the suppression filter cannot be refreshed; entries listed since its last refresh are not seen at RCPT until it is (the milter still looks every recipient up)", "err", err)
			failing = true
		case err == nil && failing:
			s.Log.Info("the suppression filter is refreshed again")
			failing = false
		case err == nil && time.Since(start) > time.Second:
			s.Log.Info("suppression filter built", "took", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.Config().Policy.Refresh.D()):
		}
	}
}

// repeat runs f now and then every interval() until ctx ends, logging
// the first failure of a run of failures, and the recovery.
func repeat(ctx context.Context, interval func() time.Duration, what string, log *slog.Logger, f func(context.Context) error) {
	var failing bool
	for {
		err := f(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Error(what+" failed; trying again every "+interval().String(), "err", err)
			failing = true
		case err == nil && failing:
			log.Info(what + " works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval()):
		}
	}
}

// syncWarmups shares the warm-up counts through the store.
func (s *Service) syncWarmups(ctx context.Context, w *Warmups) {
	repeat(ctx, func() time.Duration { return saveEvery }, "saving the warm-up counts", s.Log, func(ctx context.Context) error {
		if len(s.Config().Warmups) == 0 {
			return nil
		}
		return w.Sync(ctx)
	})
	// A last sync, so that what was accepted just before a stop counts.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if len(s.Config().Warmups) > 0 {
		if err := w.Sync(sctx); err != nil {
			s.Log.Error("saving the warm-up counts at stop failed", "err", err)
		}
	}
}

// saveThrottle writes the throttle state to the store when it changed.
func (s *Service) saveThrottle(ctx context.Context) {
	var saved int64 = -1
	var wasEmpty bool
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		throttle := s.throttle.Load()
		gen := throttle.Generation()
		if gen == saved {
			continue
		}
		snap := throttle.Snapshot()
		if len(snap) == 0 && wasEmpty {
			saved = throttle.Generation()
			continue
		}
		if err := s.Store.SetThrottles(ctx, snap); err != nil {
			if !errors.Is(err, context.Canceled) {
				s.Log.Error("saving the throttle state failed", "err", err)
			}
			continue
		}
		saved, wasEmpty = throttle.Generation(), len(snap) == 0
	}
}

// configResolver asks the DNS server the live configuration names.
type configResolver struct{ cfg func() *conf.Config }

func (r configResolver) LookupMX(ctx context.Context, domain string) ([]MX, time.Duration, error) {
	return (&DNSResolver{Server: r.cfg().Policy.Resolver}).LookupMX(ctx, domain)
}
