package conf

import (
	"net/netip"
	"regexp"
	"time"
)

// Milter configures the outbound milter.
type Milter struct {
	// Listen is "inet:HOST:PORT" or "unix:/path" as in Postfix's
	// smtpd_milters, or "" to run no milter. Default "inet:127.0.0.1:10026".
	Listen Listen `toml:"listen"`
	// CopyService is the "IP:PORT" of the Postfix smtpd service (a
	// master.cf line, see contrib/postfix/milter.master.cf) through which
	// the milter queues one copy per recipient of a bulk message, so that
	// each copy carries a token naming its own recipient. The original
	// keeps its first recipient and is accepted only once every copy is
	// queued. "" splits nothing: bulk mail to several recipients then
	// gets a message-level token and no List-Unsubscribe.
	// Default "127.0.0.1:10029".
	CopyService string `toml:"copy_service"`
	// DedupeWindow is how long the milter remembers which recipients of
	// a bulk submission it already queued a copy for: a client that
	// retries the same message (same headers, same body) within it, for
	// instance after a temporary failure half-way through its
	// recipients, sends nobody a second copy. "0s" turns this off.
	// Default "5d" (Postfix's maximal_queue_lifetime).
	DedupeWindow Duration `toml:"dedupe_window"`
	// KeyTable is OpenDKIM's KeyTable: "refile:/path", "file:/path" or
	// "/path" (relative paths are taken from state_dir). Each line is
	// "keyname domain:selector:/path/to/private.key". "" signs nothing.
	// Default "".
	KeyTable string `toml:"key_table"`
	// SigningTable is OpenDKIM's SigningTable, in the same forms: which
	// key signs mail from which From address ("*@example.com keyname").
	// OpenDKIM's users point both at the files they have.
	// Default "".
	SigningTable string `toml:"signing_table"`
	// MultipleSignatures applies every SigningTable line that matches
	// (say an RSA and an Ed25519 key, or the author's key and the
	// provider's), not only the first, as OpenDKIM's MultipleSignatures.
	// Default false.
	MultipleSignatures bool `toml:"multiple_signatures"`
	// ProviderKeys are SigningTable key names that sign as the provider
	// (a shared relay's own domain, M3AAWG Sender BCP): their d= need
	// not align with the From domain. Any other rule whose d= could fail
	// to align with the From domain it signs (DMARC, RFC 7489 §3.1.1) is
	// refused. Default none.
	ProviderKeys []string `toml:"provider_keys"`
	// FeedbackIDSender is the last field of the Feedback-ID header
	// ("stream:scope:kind:SENDER", the form Gmail's feedback loop reads):
	// who sends, the same on all of your mail. "" uses the bounce
	// domain. Default "".
	FeedbackIDSender string `toml:"feedback_id_sender"`
	// ListUnsubscribe is what happens to a List-Unsubscribe header that
	// the application set itself on bulk mail: "replace" it (and its
	// List-Unsubscribe-Post) with senderkit's one-click links (RFC 8058),
	// or "keep" it as it is. Default "replace".
	ListUnsubscribe string `toml:"list_unsubscribe"`
	// StoreTimeout bounds the store work for one message (recording its
	// copy, finding what a retried submission already queued); a message
	// that cannot be recorded in time is tempfailed. Default "30s".
	StoreTimeout Duration `toml:"store_timeout"`
}

// ScopeMilter holds a scope's milter settings.
type ScopeMilter struct{}

// StreamMilter holds a stream's milter settings.
type StreamMilter struct {
	// ListUnsubscribe overrides milter.list_unsubscribe for this stream:
	// "replace" or "keep". Default "" (as milter.list_unsubscribe).
	ListUnsubscribe string `toml:"list_unsubscribe"`
}

func defaultMilter() Milter {
	return Milter{
		Listen:          "inet:127.0.0.1:10026",
		CopyService:     "127.0.0.1:10029",
		DedupeWindow:    Duration(5 * 24 * time.Hour),
		ListUnsubscribe: "replace",
		StoreTimeout:    Duration(30 * time.Second),
	}
}

// feedbackRE is one field of Feedback-ID: no ':' (the separator), no
// white space.
var feedbackRE = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,64}$`)

func (m *Milter) complete(l *errorList) {
	if _, _, err := m.Listen.Split(); err != nil {
		l.add("milter.listen", "%v", err)
	}
	if m.CopyService != "" {
		if _, err := netip.ParseAddrPort(m.CopyService); err != nil {
			l.add("milter.copy_service", "%q: want IP:PORT", m.CopyService)
		}
	}
	if m.DedupeWindow < 0 {
		l.add("milter.dedupe_window", "must not be negative")
	}
	switch {
	case (m.KeyTable == "") != (m.SigningTable == ""):
		l.add("milter.key_table", "key_table and signing_table go together: set both or neither")
	case m.KeyTable == "" && len(m.ProviderKeys) > 0:
		l.add("milter.provider_keys", "names keys, but there is no key_table")
	}
	if m.FeedbackIDSender != "" && !feedbackRE.MatchString(m.FeedbackIDSender) {
		l.add("milter.feedback_id_sender", "%q: want 1-64 letters, digits, '.', '_', '@', '+' or '-' (no ':')", m.FeedbackIDSender)
	}
	if m.ListUnsubscribe != "replace" && m.ListUnsubscribe != "keep" {
		l.add("milter.list_unsubscribe", "%q: want \"replace\" or \"keep\"", m.ListUnsubscribe)
	}
	if d := m.StoreTimeout.D(); d < 100*time.Millisecond || d > 10*time.Minute {
		l.add("milter.store_timeout", "%v is outside 100ms to 10m", d)
	}
}

func (sm *ScopeMilter) complete(key string, sc *Scope, l *errorList) {}

func (sm *StreamMilter) complete(key string, st *Stream, l *errorList) {
	if v := sm.ListUnsubscribe; v != "" && v != "replace" && v != "keep" {
		l.add(key+".list_unsubscribe", "%q: want \"replace\" or \"keep\"", v)
	}
}

// ListUnsubscribeFor is what the milter does with an application's own
// List-Unsubscribe on stream st: "replace" or "keep".
func (m *Milter) ListUnsubscribeFor(st *Stream) string {
	if st != nil && st.ListUnsubscribe != "" {
		return st.ListUnsubscribe
	}
	return m.ListUnsubscribe
}
