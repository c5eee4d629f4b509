package main

// httpPart returns the unsubscribe endpoint, or nil when none is
// configured.
func (s *server) httpPart() *part {
	l := s.cfg().HTTP.Listen
	if l == "" {
		return nil
	}
	return s.waitPart("http", l, "issue #7")
}
