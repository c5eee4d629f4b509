// Package logging builds senderkit's operator log: one slog handler,
// one logger per component ("milter", "policy", ...), each with a level
// that follows the configuration across reloads.
package logging

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/senderkit/senderkit/conf"
)

// Set hands out component loggers sharing one output.
type Set struct {
	out  slog.Handler
	def  slog.LevelVar
	mu   sync.Mutex
	lvls map[string]*slog.LevelVar
	cfg  conf.Log
}

// New writes "text" or "json" lines to w.
func New(w io.Writer, format string) *Set {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return &Set{out: h, lvls: map[string]*slog.LevelVar{}}
}

// Apply sets the levels from the configuration; loggers already handed
// out follow. (The format is fixed at start.)
func (s *Set) Apply(c conf.Log) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = c
	if l, err := conf.ParseLevel(c.Level); err == nil {
		s.def.Set(l)
	}
	for comp, v := range s.lvls {
		v.Set(s.levelLocked(comp))
	}
}

func (s *Set) levelLocked(comp string) slog.Level {
	if l, err := conf.ParseLevel(s.cfg.Levels[comp]); err == nil {
		return l
	}
	return s.def.Level()
}

// For returns the logger of a component; its lines carry
// component=<name>.
func (s *Set) For(component string) *slog.Logger {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.lvls[component]
	if !ok {
		v = new(slog.LevelVar)
		v.Set(s.levelLocked(component))
		s.lvls[component] = v
	}
	return slog.New(&leveled{Handler: s.out.WithAttrs([]slog.Attr{slog.String("component", component)}), level: v})
}

type leveled struct {
	slog.Handler
	level *slog.LevelVar
}

func (h *leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h *leveled) WithAttrs(as []slog.Attr) slog.Handler {
	return &leveled{Handler: h.Handler.WithAttrs(as), level: h.level}
}

func (h *leveled) WithGroup(name string) slog.Handler {
	return &leveled{Handler: h.Handler.WithGroup(name), level: h.level}
}
