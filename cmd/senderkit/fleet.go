package main

import (
	"context"

	"github.com/senderkit/senderkit/internal/store"
)

// ownThrottles is the store as a relay's policy server sees it: the
// throttle state it takes back at start is the state this relay saved.
// Relays of a fleet share one store (each saves under its own name, see
// store.Store.SetThrottles), but each policy server throttles the
// traffic of its own Postfix; the others' state is for reports.
type ownThrottles struct{ store.Store }

// Throttles returns this relay's saved throttle state.
func (o ownThrottles) Throttles(ctx context.Context) ([]store.Throttle, error) {
	ts, err := o.Store.Throttles(ctx)
	if err != nil {
		return nil, err
	}
	relay := o.Relay()
	var own []store.Throttle
	for _, t := range ts {
		if t.Relay == relay {
			own = append(own, t)
		}
	}
	return own, nil
}
