package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/logging"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
	"github.com/senderkit/senderkit/milter/dkim"
)

// state is what a reload replaces, all of it or none of it.
type state struct {
	cfg  *conf.Config
	keys *token.Keyring
	dkim *dkim.Set // nil: no signing tables
}

// stateLoader reads the configuration and everything that comes with it.
func stateLoader(cf configFlags, log *slog.Logger) conf.Loader[*state] {
	return func() (*state, []string, error) {
		cfg, err := cf.load()
		if err != nil {
			return nil, nil, err
		}
		keys, err := token.LoadKeyring(cfg.KeyDir())
		if err != nil {
			return nil, nil, err
		}
		signing, err := loadDKIM(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		paths := []string{cfg.KeyDir()}
		if cfg.File() != "" {
			paths = append(paths, cfg.File())
		}
		paths = append(paths, signing.Files()...)
		return &state{cfg: cfg, keys: keys, dkim: signing}, paths, nil
	}
}

// server is what the parts of `serve` share: one store handle, the live
// state and the loggers.
type server struct {
	state *conf.Watcher[*state]
	store store.Store
	logs  *logging.Set

	// collectors are the parts' counters for the metrics endpoint; a
	// part adds its own when it is made.
	collectors []prometheus.Collector
}

// cfg returns the configuration in force.
func (s *server) cfg() *conf.Config { return s.state.Current().cfg }

// keys returns the token key ring in force.
func (s *server) keys() *token.Keyring { return s.state.Current().keys }

// part is one of the servers `serve` runs. run returns when ctx ends, or
// early with an error that stops serve.
type part struct {
	name string
	run  func(ctx context.Context) error
}

func (c *cli) serve(args []string) int {
	fs := c.newFlags("serve", "[-c FILE] [-state-dir DIR]")
	var cf configFlags
	cf.register(fs)
	if _, code, ok := parseOrUsage(fs, args); !ok {
		return code
	}
	cfg, err := cf.load()
	if err != nil {
		return c.errorf(exitFailure, "serve", "%v", err)
	}
	logs := logging.New(c.stderr, cfg.Log.Format)
	logs.Apply(cfg.Log)
	log := logs.For("serve")

	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return c.errorf(exitFailure, "serve", "create state directory: %v", err)
	}
	created, err := token.EnsureKey(cfg.KeyDir())
	if err != nil {
		return c.errorf(exitFailure, "serve", "%v", err)
	}
	if created {
		log.Info("created a token key", "dir", cfg.KeyDir(), "file", "1.key")
	}
	w, err := conf.NewWatcher(stateLoader(cf, logs.For("milter")), logs.For("conf"))
	if err != nil {
		return c.errorf(exitFailure, "serve", "%v", err)
	}
	st, err := openStore(c.ctx, cfg)
	if err != nil {
		return c.errorf(exitFailure, "serve", "%v", err)
	}
	defer st.Close()
	s := &server{state: w, store: st, logs: logs}
	w.OnChange(func(n *state) {
		logs.Apply(n.cfg.Log)
		logConfig(log, n)
	})
	logConfig(log, w.Current())

	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading")
				w.Reload()
			}
		}
	}()

	parts := []part{{"conf", w.Run}}
	for _, p := range []*part{s.milterPart(), s.policyPart(), s.httpPart(), s.vettingPart(), s.metricsPart()} {
		if p != nil {
			parts = append(parts, *p)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for _, p := range parts {
		wg.Go(func() {
			if err := p.run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", p.name, err)
				cancel()
			}
		})
	}
	log.Info("senderkit serve started", "version", version, "pid", os.Getpid())
	wg.Wait()
	close(errs)
	code := exitOK
	for err := range errs {
		log.Error("stopped", "err", err)
		code = exitFailure
	}
	log.Info("senderkit serve stopped")
	return code
}

// logConfig writes the effective configuration, as chasquid does at
// start, so that the log says what the server believed.
func logConfig(log *slog.Logger, st *state) {
	c := st.cfg
	file := c.File()
	if file == "" {
		file = "(built-in default)"
	}
	var scopes []string
	for _, sc := range c.Scopes {
		var streams []string
		for _, s := range sc.Streams {
			streams = append(streams, s.Name+":"+s.Kind)
		}
		scopes = append(scopes, sc.Name+"["+strings.Join(streams, ",")+"]")
	}
	log.Info("configuration", "file", file, "state_dir", c.StateDir, "store", c.StoreName(), "relay", c.RelayName(),
		"token_keys", c.KeyDir(), "signing_key", st.keys.Signer(), "bounce_domain", c.Bounce.Domain,
		"milter", string(c.Milter.Listen), "policy", string(c.Policy.Listen), "http", c.HTTP.Listen,
		"scopes", strings.Join(scopes, " "))
	if c.Bounce.Domain == "bounces.example.test" {
		log.Warn("the bounce domain is the built-in example; set bounce.domain to a domain whose MX is this Postfix")
	}
}

// waitPart is a part that only waits: a part configured to listen whose
// server a later issue brings.
func (s *server) waitPart(name, listen, issue string) *part {
	log := s.logs.For(name)
	return &part{name, func(ctx context.Context) error {
		log.Warn(name+" is not built yet; not listening", "listen", listen, "arrives_with", issue)
		<-ctx.Done()
		return nil
	}}
}
