package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senderkit/senderkit/policyd"
)

// policyPart returns the policy server and the Postfix log follower that
// feeds its throttling, or nil when neither is configured.
func (s *server) policyPart() *part {
	p := s.cfg().Policy
	if p.Listen == "" && p.Maillog == "" {
		return nil
	}
	svc := &policyd.Service{
		Store:  ownThrottles{s.store},
		Config: s.cfg,
		Log:    s.logs.For("policy"),
	}
	st := svc.Stats()
	s.counters(
		counter{"senderkit_policy_requests_total", "RCPT requests the policy server decided.", &st.Requests},
		counter{"senderkit_policy_rejects_total", "Suppressed recipients refused at RCPT.", &st.Refused},
		counter{"senderkit_policy_discards_total", "Suppressed recipients discarded (suppressed_action = discard).", &st.Discarded},
		counter{"senderkit_policy_holds_total", "Suppressed recipients held (suppressed_action = hold).", &st.Held},
		counter{"senderkit_policy_throttled_total", "Recipients deferred because their destination is throttled.", &st.Throttled},
		counter{"senderkit_policy_store_errors_total", "Suppression lookups that failed.", &st.StoreErrors},
	)
	s.collectors = append(s.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "senderkit_throttled_destinations", Help: "Destinations (and scopes at a destination) held back now.",
	}, func() float64 { return float64(svc.Throttled()) }))
	return &part{"policy", func(ctx context.Context) error { return svc.Run(ctx) }}
}
