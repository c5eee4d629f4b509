package conf

// Policy configures the policy server.
type Policy struct {
	// Listen is "inet:HOST:PORT" or "unix:/path" as in Postfix's
	// check_policy_service, or "" to run no policy server.
	// Default "inet:127.0.0.1:10040".
	Listen Listen `toml:"listen"`
}

// ScopePolicy holds a scope's policy settings.
type ScopePolicy struct{}

func defaultPolicy() Policy { return Policy{Listen: "inet:127.0.0.1:10040"} }

func (p *Policy) complete(l *errorList) {
	if _, _, err := p.Listen.Split(); err != nil {
		l.add("policy.listen", "%v", err)
	}
}

func (sp *ScopePolicy) complete(key string, sc *Scope, l *errorList) {}
