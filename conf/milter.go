package conf

// Milter configures the outbound milter.
type Milter struct {
	// Listen is "inet:HOST:PORT" or "unix:/path" as in Postfix's
	// smtpd_milters, or "" to run no milter. Default "inet:127.0.0.1:10026".
	Listen Listen `toml:"listen"`
}

// ScopeMilter holds a scope's milter settings.
type ScopeMilter struct{}

// StreamMilter holds a stream's milter settings.
type StreamMilter struct{}

func defaultMilter() Milter { return Milter{Listen: "inet:127.0.0.1:10026"} }

func (m *Milter) complete(l *errorList) {
	if _, _, err := m.Listen.Split(); err != nil {
		l.add("milter.listen", "%v", err)
	}
}

func (sm *ScopeMilter) complete(key string, sc *Scope, l *errorList) {}

func (sm *StreamMilter) complete(key string, st *Stream, l *errorList) {}
