package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/milter"
	"github.com/senderkit/senderkit/milter/dkim"
	"github.com/senderkit/senderkit/policyd"
)

// loadDKIM reads the DKIM tables and keys the configuration names; log
// hears which implementation makes RSA signatures (nil: nobody does).
func loadDKIM(cfg *conf.Config, log *slog.Logger) (*dkim.Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := cfg.Milter
	return dkim.Load(dkim.Options{
		KeyTable:     m.KeyTable,
		SigningTable: m.SigningTable,
		Dir:          cfg.StateDir,
		Multiple:     m.MultipleSignatures,
		ProviderKeys: m.ProviderKeys,
		Log:          log,
	})
}

// milterPart returns the outbound milter, or nil when none is configured.
// Its address is read once: changing milter.listen needs a restart.
func (s *server) milterPart() *part {
	l := s.cfg().Milter.Listen
	if l == "" {
		return nil
	}
	log := s.logs.For("milter")
	milterWarnings.Store(log)
	pauses := &policyd.Pauses{}
	srv := milter.New(milter.Options{
		State: func() milter.State {
			st := s.state.Current()
			return milter.State{Config: st.cfg, Tokens: st.keys, DKIM: st.dkim, Paused: pauses.Of}
		},
		Store: s.store,
		Log:   log,
	})
	st := srv.Stats()
	s.counters(
		counter{"senderkit_milter_messages_total", "Messages the milter accepted, changed or not (each copy of a bulk message is one).", &st.Messages},
		counter{"senderkit_milter_signed_total", "Messages that left with at least one DKIM signature.", &st.Signed},
		counter{"senderkit_milter_signatures_total", "DKIM signatures added.", &st.Signatures},
		counter{"senderkit_milter_tokens_total", "Tokens issued: one per send row (per copy, or per message).", &st.Tokens},
		counter{"senderkit_milter_copies_total", "Copies queued for the other recipients of bulk messages.", &st.Copies},
		counter{"senderkit_milter_discarded_total", "Retried submissions discarded because their copies were queued before.", &st.Discarded},
		counter{"senderkit_milter_tempfailed_total", "Messages answered 4xx (store, key or table trouble).", &st.TempFailed},
		counter{"senderkit_milter_rejected_total", "Messages answered 5xx (no From, a header too large).", &st.Rejected},
		counter{"senderkit_milter_suppressed_total", "Recipients removed at the end of data because the suppression list covers them for the message's stream.", &st.Suppressed},
		counter{"senderkit_milter_paused_total", "Messages of a paused scope deferred at the end of data (the stream header chose a paused stream).", &st.Paused},
	)
	return &part{"milter", func(ctx context.Context) error {
		ln, err := l.Open(0o660) // a postfix user in senderkit's group may connect
		if err != nil {
			return err
		}
		log.Info("milter listening", "listen", string(l))
		go pauses.Follow(ctx, s.store, func() time.Duration { return s.cfg().Policy.Refresh.D() }, log)
		return srv.Serve(ctx, ln)
	}}
}
