package policyd

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/senderkit/senderkit/internal/health"
	"github.com/senderkit/senderkit/internal/store"
)

// Pauses is the set of paused scopes (scope vetting, package health)
// that the policy server enforces, as the store last said. A scope
// paused or resumed elsewhere (the vetter of another relay, the CLI)
// takes effect at the next refresh.
type Pauses struct {
	cur atomic.Pointer[map[string]store.Pause]
}

// Refresh reads the pauses from the store.
func (p *Pauses) Refresh(ctx context.Context, st store.Store) error {
	ps, err := st.Pauses(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]store.Pause, len(ps))
	for _, x := range ps {
		m[x.Scope] = x
	}
	p.cur.Store(&m)
	return nil
}

// Follow refreshes the pauses every interval() until ctx ends, and logs
// each scope it starts or stops holding. Until the first read succeeds
// no scope is held: pauses are a safeguard, and the other part (policy
// server or milter) checks them too.
func (p *Pauses) Follow(ctx context.Context, st store.Store, interval func() time.Duration, log *slog.Logger) {
	repeat(ctx, interval, "reading the paused scopes", log, func(ctx context.Context) error {
		old := p.cur.Load()
		if err := p.Refresh(ctx, st); err != nil {
			return err
		}
		p.logChanges(old, log)
		return nil
	})
}

// Of returns scope's pause, if it is paused.
func (p *Pauses) Of(scope string) (store.Pause, bool) {
	m := p.cur.Load()
	if m == nil {
		return store.Pause{}, false
	}
	x, ok := (*m)[scope]
	return x, ok
}

// Count returns how many scopes are paused.
func (p *Pauses) Count() int {
	if m := p.cur.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// PausedText is the reply to mail of a paused scope (see
// health.PauseText); the milter answers the same.
func PausedText(p store.Pause) string { return "4.7.1 " + health.PauseText(p) }

func (p *Pauses) logChanges(old *map[string]store.Pause, log *slog.Logger) {
	cur := p.cur.Load()
	var was map[string]store.Pause
	if old != nil {
		was = *old
	}
	for scope, x := range *cur {
		if _, ok := was[scope]; !ok {
			log.Warn("scope paused: deferring its bulk mail", "scope", scope, "reason", x.Cause.Reason,
				"since", x.Since.UTC().Format(time.RFC3339), "evidence", x.Cause.Diagnostic)
		}
	}
	for scope := range was {
		if _, ok := (*cur)[scope]; !ok {
			log.Info("scope resumed: accepting its mail again", "scope", scope)
		}
	}
}
