package conf

// Check configures `senderkit check --dns`, the DNS and compliance
// doctor.
type Check struct{}

func defaultCheck() Check { return Check{} }

func (c *Check) complete(l *errorList) {}
