package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senderkit/senderkit/internal/health"
)

// vettingPart judges every scope at vetting.interval and pauses the ones
// whose mail passes a threshold (package health). It runs whatever the
// other parts are: the events it judges come from every part.
func (s *server) vettingPart() *part {
	v := &health.Vetter{Store: s.store, Config: s.cfg, Log: s.logs.For("vetting"), Now: time.Now}
	s.collectors = append(s.collectors, &healthCollector{v: v})
	return &part{"vetting", func(ctx context.Context) error { v.Run(ctx); return nil }}
}

// healthCollector serves the last judged health of each scope.
type healthCollector struct{ v *health.Vetter }

var (
	scopePausedDesc = prometheus.NewDesc("senderkit_scope_paused",
		"1 while the scope's bulk mail is paused by vetting or an administrator, else 0.", []string{"scope"}, nil)
	scopeRateDesc = prometheus.NewDesc("senderkit_scope_rate_percent",
		"The scope's rates over its vetting window: complaint (per delivered), hard-bounce, unknown-user and deferral (per sent).",
		[]string{"scope", "rate"}, nil)
	scopeSentDesc = prometheus.NewDesc("senderkit_scope_window_sent",
		"Copies the scope sent within its vetting window.", []string{"scope"}, nil)
)

// Describe implements prometheus.Collector.
func (h *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- scopePausedDesc
	ch <- scopeRateDesc
	ch <- scopeSentDesc
}

// Collect implements prometheus.Collector.
func (h *healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sc := range h.v.Latest() {
		paused := 0.0
		if sc.Pause != nil {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(scopePausedDesc, prometheus.GaugeValue, paused, sc.Name)
		if !sc.Configured {
			continue
		}
		f := sc.Judged
		ch <- prometheus.MustNewConstMetric(scopeSentDesc, prometheus.GaugeValue, float64(f.Sent), sc.Name)
		for _, r := range []struct {
			name string
			v    float64
		}{{"complaint", f.ComplaintRate()}, {"hard-bounce", f.HardBounceRate()}, {"unknown-user", f.UnknownUserRate()}, {"deferral", f.DeferralRate()}} {
			ch <- prometheus.MustNewConstMetric(scopeRateDesc, prometheus.GaugeValue, r.v, sc.Name, r.name)
		}
	}
}
