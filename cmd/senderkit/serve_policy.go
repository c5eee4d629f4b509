package main

import (
	"context"
	"time"

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
		counter{"senderkit_policy_paused_total", "Recipients deferred because their scope is paused.", &st.Paused},
		counter{"senderkit_policy_warmup_deferred_total", "Recipients deferred because a warm-up's cap for the day was reached.", &st.WarmedUp},
	)
	s.collectors = append(s.collectors, warmupCollector{svc})
	s.collectors = append(s.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "senderkit_throttled_destinations", Help: "Destinations (and scopes at a destination) held back now.",
	}, func() float64 { return float64(svc.Throttled()) }))
	return &part{"policy", func(ctx context.Context) error { return svc.Run(ctx) }}
}

// warmupCollector serves each warm-up's progress per destination.
type warmupCollector struct{ svc *policyd.Service }

var (
	warmupDayDesc = prometheus.NewDesc("senderkit_warmup_day",
		"The schedule day in force for a warm-up at a destination (1: the first); days held back by deferrals do not count.",
		[]string{"warmup", "destination"}, nil)
	warmupCapDesc = prometheus.NewDesc("senderkit_warmup_cap",
		"Today's cap of a warm-up at a destination; 0 once the schedule is over.", []string{"warmup", "destination"}, nil)
	warmupSentDesc = prometheus.NewDesc("senderkit_warmup_sent_today",
		"Recipients accepted today for a warm-up at a destination, by every relay.", []string{"warmup", "destination"}, nil)
)

// Describe implements prometheus.Collector.
func (w warmupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- warmupDayDesc
	ch <- warmupCapDesc
	ch <- warmupSentDesc
}

// Collect implements prometheus.Collector.
func (w warmupCollector) Collect(ch chan<- prometheus.Metric) {
	ws := w.svc.Warmups()
	if ws == nil {
		return
	}
	for _, p := range ws.Progress(time.Now()) {
		ch <- prometheus.MustNewConstMetric(warmupDayDesc, prometheus.GaugeValue, float64(p.Day+1), p.Warmup, p.Destination)
		ch <- prometheus.MustNewConstMetric(warmupCapDesc, prometheus.GaugeValue, float64(p.Cap), p.Warmup, p.Destination)
		ch <- prometheus.MustNewConstMetric(warmupSentDesc, prometheus.GaugeValue, float64(p.Sent), p.Warmup, p.Destination)
	}
}
