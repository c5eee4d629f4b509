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

// Follow refreshes the pauses every second until ctx ends. Until the
// first read succeeds no scope is held: pauses are a safeguard, and the
// other part (policy server or milter) checks them too.
func (p *Pauses) Follow(ctx context.Context, st store.Store, log *slog.Logger) {
	var failing bool
	for {
		err := p.Refresh(ctx, st)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Error("cannot read the paused scopes; trying again every second", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("reading the paused scopes works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pauseRefresh):
		}
	}
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

// pauseRefresh bounds how long a pause or resume made elsewhere takes to
// reach this server.
const pauseRefresh = time.Second
