package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
)

// Vetter judges every scope at the configured interval and pauses the
// ones whose mail passes a threshold. Several relays of a fleet may run
// one each: a scope is paused once, with the first cause.
type Vetter struct {
	Store  store.Store
	Config func() *conf.Config
	Log    *slog.Logger
	Now    func() time.Time

	cache Cache // the windows no scope is judged on, between checks
	mu    sync.Mutex
	last  []Scope // the latest health, for the metrics
}

// Latest returns the health the last check computed.
func (v *Vetter) Latest() []Scope {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

// Run checks until ctx ends.
func (v *Vetter) Run(ctx context.Context) {
	var failing bool
	for {
		_, err := v.Check(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			v.Log.Error("scope vetting: cannot judge the scopes; trying again at the next interval", "err", err)
			failing = true
		case err == nil && failing:
			v.Log.Info("scope vetting: judging the scopes again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(v.Config().Vetting.Interval.D()):
		}
	}
}

// Check computes every scope's health and, when vetting is enabled,
// pauses each configured scope that passes a threshold and is not
// paused yet. It returns the health, pauses included.
func (v *Vetter) Check(ctx context.Context) ([]Scope, error) {
	cfg := v.Config()
	now := v.Now()
	scopes, err := Compute(ctx, v.Store, cfg, now, &v.cache)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i := range scopes {
		s := &scopes[i]
		if s.Breach == nil || s.Pause != nil || !cfg.Vetting.Enabled || !s.Configured {
			continue
		}
		p, changed, err := Pause(ctx, v.Store, s.Name, s.Breach.Reason, s.Breach.Text, "vetting", now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Pause = &p
		if changed {
			v.Log.Warn("scope paused: its bulk mail is deferred until an administrator resumes it (senderkit scope resume)",
				"scope", s.Name, "reason", s.Breach.Reason, "evidence", s.Breach.Text, "event", p.EventID)
		}
	}
	v.mu.Lock()
	v.last = scopes
	v.mu.Unlock()
	return scopes, errors.Join(errs...)
}

// Pause puts scope on hold for reason, with text as its evidence, from
// source ("vetting", "cli"). changed is false when it was paused
// already; the pause returned is then the first one.
func Pause(ctx context.Context, st store.Store, scope, reason, text, source string, at time.Time) (p store.Pause, changed bool, err error) {
	ev := store.Event{At: at, Type: store.Paused, Scope: scope, Reason: reason, Diagnostic: text, Source: source}
	res, err := st.Record(ctx, ev, store.Change{Op: store.PauseScope, Scope: scope})
	if err != nil {
		return store.Pause{}, false, fmt.Errorf("pausing scope %s: %w", scope, err)
	}
	p, err = PauseOf(ctx, st, scope)
	if err != nil {
		return store.Pause{}, false, err
	}
	return p, res.Changed, nil
}

// Resume lets scope send again; note says who and why. changed is false
// when it was not paused (the event is recorded all the same).
func Resume(ctx context.Context, st store.Store, scope, note, source string, at time.Time) (changed bool, err error) {
	ev := store.Event{At: at, Type: store.Resumed, Scope: scope, Reason: "manual", Diagnostic: note, Source: source}
	res, err := st.Record(ctx, ev, store.Change{Op: store.ResumeScope, Scope: scope})
	if err != nil {
		return false, fmt.Errorf("resuming scope %s: %w", scope, err)
	}
	return res.Changed, nil
}

// PauseOf returns scope's pause, or store.ErrNotFound.
func PauseOf(ctx context.Context, st store.Store, scope string) (store.Pause, error) {
	ps, err := st.Pauses(ctx)
	if err != nil {
		return store.Pause{}, fmt.Errorf("reading the pauses: %w", err)
	}
	for _, p := range ps {
		if p.Scope == scope {
			return p, nil
		}
	}
	return store.Pause{}, fmt.Errorf("scope %s: %w", scope, store.ErrNotFound)
}

// PauseText says why mail of a paused scope is deferred, for an SMTP
// reply (one line of ASCII): what was passed, since when, and that an
// administrator must act, since retrying will not help until then.
func PauseText(p store.Pause) string {
	t := fmt.Sprintf("mail from %s is paused since %s: %s; its administrator must resume it",
		p.Scope, p.Since.UTC().Format("2006-01-02 15:04 UTC"), oneLine(p.Cause.Diagnostic))
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, t)
}
