package main

import (
	"context"
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
		return serveHTTP(ctx, srv, ln)
	}}
}

// counter is an in-memory counter of a part, served as a Prometheus
// counter.
type counter struct {
	name, help string
	v          *atomic.Int64
}

// counters adds a part's counters to what the metrics endpoint serves.
func (s *server) counters(cs ...counter) {
	for _, c := range cs {
		s.collectors = append(s.collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.v.Load()) }))
	}
}
