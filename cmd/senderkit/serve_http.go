package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/token"
	"github.com/senderkit/senderkit/unsubscribe"
)

// httpPart returns the unsubscribe endpoint, or nil when none is
// configured. The listen address is read at start; the rest of the
// configuration, keys and certificates follow reloads.
func (s *server) httpPart() *part {
	cfg := s.cfg()
	if cfg.HTTP.Listen == "" {
		return nil
	}
	log := s.logs.For("http")
	us := &unsubscribe.Server{
		Config: s.cfg,
		Keys:   func() *token.Keyring { return s.keys() },
		Store:  s.store,
		Log:    log,
	}
	st := us.Stats()
	s.counters(
		counter{"senderkit_http_unsubscribes_total", "One-click unsubscribes recorded by the endpoint.", &st.Unsubscribed},
		counter{"senderkit_http_repeated_total", "Unsubscribe requests for an address already unsubscribed.", &st.Repeated},
		counter{"senderkit_http_resubscribes_total", "Undo links used.", &st.Resubscribed},
		counter{"senderkit_http_pages_total", "Confirmation pages shown (GET).", &st.Pages},
		counter{"senderkit_http_forged_tokens_total", "Unsubscribe links whose token did not verify; they changed nothing.", &st.Forged},
		counter{"senderkit_http_malformed_total", "Requests whose link is not a token at all.", &st.Malformed},
		counter{"senderkit_http_unknown_total", "Good tokens naming no send the store has, or expired undo links.", &st.Unknown},
		counter{"senderkit_http_rate_limited_total", "Requests answered 429.", &st.RateLimited},
		counter{"senderkit_http_errors_total", "Requests that failed (store trouble), answered 503.", &st.Errors},
	)
	return &part{"http", func(ctx context.Context) error {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTP.Listen, err)
		}
		srv := &http.Server{
			Handler:           us,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    32 << 10,
		}
		if cfg.HTTP.TLSCert != "" {
			c := &certs{cfg: s.cfg}
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
			if _, err := c.get(nil); err != nil {
				ln.Close()
				return err
			}
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		log.Info("unsubscribe endpoint listening", "listen", ln.Addr().String(), "base_url", cfg.HTTP.BaseURL, "tls", cfg.HTTP.TLSCert != "")
		return serveHTTP(ctx, srv, ln)
	}}
}

// certs loads the certificate the configuration names, again whenever
// its files change, so that a renewed certificate needs no restart.
type certs struct {
	cfg  func() *conf.Config
	mu   sync.Mutex
	key  string // files and modification times of the loaded pair
	cert *tls.Certificate
}

func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cfg := c.cfg()
	certFile, keyFile := cfg.Path(cfg.HTTP.TLSCert), cfg.Path(cfg.HTTP.TLSKey)
	ci, err1 := os.Stat(certFile)
	ki, err2 := os.Stat(keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	key := fmt.Sprint(certFile, ci.ModTime().UnixNano(), keyFile, ki.ModTime().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == key {
		return c.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // keep serving the old one while the new is half-written
		}
		return nil, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
	}
	c.key, c.cert = key, &pair
	return c.cert, nil
}

// serveHTTP serves srv on ln until ctx ends, then shuts it down, letting
// requests in progress finish for a few seconds.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
