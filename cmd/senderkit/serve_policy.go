package main

// policyPart returns the policy server, or nil when none is configured.
func (s *server) policyPart() *part {
	l := s.cfg().Policy.Listen
	if l == "" {
		return nil
	}
	return s.waitPart("policy", string(l), "issue #6")
}
