package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senderkit/senderkit/internal/metrics"
)

// metricsPart serves /metrics, or returns nil when no address is
// configured. It is made after the other parts, whose counters it
// serves.
func (s *server) metricsPart() *part {
	listen := s.cfg().Metrics.Listen
	if listen == "" {
		return nil
	}
	m := metrics.New(s.store, s.logs.For("metrics"))
	if us := s.unsubscribe; us != nil {
		st := us.Stats()
		for _, c := range []struct {
			name, help string
			v          *atomic.Int64
		}{
			{"senderkit_http_unsubscribes_total", "One-click unsubscribes recorded by the endpoint.", &st.Unsubscribed},
			{"senderkit_http_repeated_total", "Unsubscribe requests for an address already unsubscribed.", &st.Repeated},
			{"senderkit_http_resubscribes_total", "Undo links used.", &st.Resubscribed},
			{"senderkit_http_pages_total", "Confirmation pages shown (GET).", &st.Pages},
			{"senderkit_http_forged_tokens_total", "Unsubscribe links whose token did not verify; they changed nothing.", &st.Forged},
			{"senderkit_http_malformed_total", "Requests whose link is not a token at all.", &st.Malformed},
			{"senderkit_http_unknown_total", "Good tokens naming no send the store has, or expired undo links.", &st.Unknown},
			{"senderkit_http_rate_limited_total", "Requests answered 429.", &st.RateLimited},
			{"senderkit_http_errors_total", "Requests that failed (store trouble), answered 503.", &st.Errors},
		} {
			m.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 { return float64(c.v.Load()) }))
		}
	}
	for _, c := range s.collectors {
		m.Register(c)
	}
	log := s.logs.For("metrics")
	return &part{"metrics", func(ctx context.Context) error {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		log.Info("metrics listening", "listen", ln.Addr().String())
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}}
}
