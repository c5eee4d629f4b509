package main

import (
	"context"

	"github.com/senderkit/senderkit/policyd"
)

// policyPart returns the policy server and the Postfix log follower that
// feeds its throttling, or nil when neither is configured.
func (s *server) policyPart() *part {
	p := s.cfg().Policy
	if p.Listen == "" && p.Maillog == "" {
		return nil
	}
	svc := &policyd.Service{
		Store:  ownThrottles{s.store},
		Config: s.cfg,
		Log:    s.logs.For("policy"),
	}
	return &part{"policy", func(ctx context.Context) error { return svc.Run(ctx) }}
}
