package main

// milterPart returns the outbound milter, or nil when none is configured.
func (s *server) milterPart() *part {
	l := s.cfg().Milter.Listen
	if l == "" {
		return nil
	}
	return s.waitPart("milter", string(l), "issue #4")
}
