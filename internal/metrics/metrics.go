// Package metrics exposes senderkit's counters to Prometheus.
//
// Two kinds of figures are served. What `senderkit serve` does itself (the
// milter signing, the policy server rejecting, the endpoint unsubscribing)
// is counted in memory by each part and handed over as a Collector. What
// other processes do (the bounce pipe, started by Postfix for each
// message) is read from the store: every decision is an event there, so
// the event totals are the counters. They are kept current by asking the
// store only for events newer than the last one counted, and they survive
// restarts, since events are never deleted.
//
// In a fleet sharing one PostgreSQL store, the store's events are the
// fleet's: every relay serves the same fleet-wide event counters (take
// their max, not their sum, across relays), while the parts' counters
// are each relay's own (INSTALL.md, "Reports across the fleet").
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/senderkit/senderkit/internal/store"
)

// Metrics is the registry `senderkit serve` serves.
type Metrics struct {
	reg *prometheus.Registry
}

// New makes a registry with the store's event counters and Go's own.
func New(st store.Store, log *slog.Logger) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(&events{store: st, log: log, totals: map[store.EventCount]int64{}})
	return &Metrics{reg: reg}
}

// Register adds a part's collector.
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// eventMetric is a counter derived from store events of one type.
type eventMetric struct {
	desc   *prometheus.Desc
	labels int             // 0: none; 1: scope; 2: scope and reason
	typ    store.EventType // the events counted
	only   string          // count only this reason, when set
}

func newEventMetric(name, help string, labels int, typ store.EventType, only string) eventMetric {
	names := []string{"scope", "reason"}[:labels]
	return eventMetric{prometheus.NewDesc(name, help, names, nil), labels, typ, only}
}

var eventMetrics = []eventMetric{
	newEventMetric("senderkit_bounces_total", "Bounced copies, by scope and classifier reason (Sisimai names).", 2, store.Bounced, ""),
	newEventMetric("senderkit_sender_problems_total", "Copies refused for a reason that blames the sender (blocklists, policy, reputation), by scope and reason.", 2, store.SenderProblem, ""),
	newEventMetric("senderkit_deferrals_total", "Deferrals of copies, by scope.", 1, store.Deferred, ""),
	newEventMetric("senderkit_deliveries_total", "Copies delivered to the receiving server, by scope.", 1, store.Delivered, ""),
	newEventMetric("senderkit_complaints_total", "Complaints (ARF reports), by scope.", 1, store.Complaint, ""),
	newEventMetric("senderkit_unsubscribes_total", "Unsubscribes (one-click, by mail, ARF opt-out), by scope.", 1, store.Unsubscribed, ""),
	newEventMetric("senderkit_resubscribes_total", "Unsubscribes undone with the undo link, by scope.", 1, store.Resubscribed, ""),
	newEventMetric("senderkit_auto_replies_total", "Auto-replies (vacation, challenge-response), by scope.", 1, store.AutoReply, ""),
	newEventMetric("senderkit_manual_changes_total", "Suppressions added by an administrator, by scope.", 1, store.Suppressed, ""),
	newEventMetric("senderkit_returned_forged_tokens_total", "Returned mail whose token did not verify; it changed nothing.", 0, store.Unattributed, "forged"),
	newEventMetric("senderkit_returned_unattributable_total", "Returned mail with no token to attribute it; it changed nothing.", 0, store.Unattributed, "unattributable"),
	newEventMetric("senderkit_scope_pauses_total", "Scopes paused (by vetting or an administrator), by scope and the threshold passed.", 2, store.Paused, ""),
	newEventMetric("senderkit_scope_resumes_total", "Paused scopes resumed by an administrator, by scope.", 1, store.Resumed, ""),
	newEventMetric("senderkit_forwarded_total", "Mail for a person forwarded to the role address.", 0, store.Forwarded, ""),
	newEventMetric("senderkit_quarantined_total", "Returned mail kept in quarantine because it could not be read.", 0, store.Quarantined, ""),
}

var scrapeErrors = prometheus.NewDesc("senderkit_store_scrape_errors_total", "Times the event counters could not be read from the store.", nil, nil)

// events serves the store's event totals.
type events struct {
	store  store.Store
	log    *slog.Logger
	mu     sync.Mutex
	last   int64
	totals map[store.EventCount]int64 // Count field zero: a key
	errors int64
}

// Describe implements prometheus.Collector.
func (e *events) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range eventMetrics {
		ch <- m.desc
	}
	ch <- scrapeErrors
}

// Collect implements prometheus.Collector.
func (e *events) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, last, err := e.store.CountEvents(ctx, e.last)
	if err != nil {
		e.errors++
		e.log.Warn("metrics: cannot read event counts; serving the last known", "err", err)
	} else {
		for _, c := range counts {
			n := c.Count
			c.Count = 0
			e.totals[c] += n
		}
		e.last = last
	}
	for _, m := range eventMetrics {
		sums := map[[2]string]int64{}
		for k, n := range e.totals {
			if k.Type == m.typ && (m.only == "" || k.Reason == m.only) {
				var lv [2]string
				if m.labels >= 1 {
					lv[0] = k.Scope
				}
				if m.labels == 2 {
					lv[1] = k.Reason
				}
				sums[lv] += n
			}
		}
		if m.labels == 0 {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(sums[[2]string{}]))
			continue
		}
		for lv, n := range sums {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(n), lv[:m.labels]...)
		}
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrors, prometheus.CounterValue, float64(e.errors))
}
