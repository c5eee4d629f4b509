// Package conf defines senderkit's configuration: its TOML form, its
// defaults, validation with errors that name file, line and key, how a
// message is mapped to a scope and a stream, and live reload.
//
// Every field below is documented where it is defined, with its default;
// conf/example.toml is generated from these comments and from Default
// (go test ./conf -run TestExample -update), and a test fails when the two
// drift apart.
package conf

import (
	"net/netip"
	"time"
)

// Config is the whole configuration.
type Config struct {
	// StateDir is where senderkit keeps its state; relative paths in this
	// file are taken from here. The --state-dir flag overrides it.
	// Default "/var/lib/senderkit".
	StateDir string `toml:"state_dir"`
	// StreamHeader names the header an application may set to choose the
	// stream of a message ("X-Senderkit-Stream: news"). The milter removes
	// it before the message leaves. Default "X-Senderkit-Stream".
	StreamHeader string `toml:"stream_header"`

	// Store is the database shared by every part of senderkit.
	Store Store `toml:"store"`
	// Tokens holds the keys that sign VERP and unsubscribe tokens.
	Tokens Tokens `toml:"tokens"`
	// Bounce is the domain that receives bounces, complaints and
	// unsubscribe mail.
	Bounce Bounce `toml:"bounce"`
	// Addresses says how recipient addresses are compared.
	Addresses Addresses `toml:"addresses"`
	// Suppression holds the rules that turn bounces into suppressions
	// (M3AAWG Sender BCP v3 §3.8).
	Suppression Suppression `toml:"suppression"`
	// Milter is the outbound milter that Postfix's smtpd calls.
	Milter Milter `toml:"milter"`
	// Policy is the SMTP access policy server.
	Policy Policy `toml:"policy"`
	// HTTP is the one-click unsubscribe endpoint.
	HTTP HTTP `toml:"http"`
	// Log configures the operator log.
	Log Log `toml:"log"`
	// Check configures the DNS and compliance doctor (senderkit check
	// --dns).
	Check Check `toml:"check"`
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics `toml:"metrics"`
	// Vetting judges each scope's health after it sends, and pauses a
	// scope whose mail passes a threshold (conf/vetting.go).
	Vetting Vetting `toml:"vetting"`
	// Warmups are schedules that cap a new scope's or a new sending
	// address's daily volume per destination provider, growing day by
	// day. Default none.
	Warmups []Warmup `toml:"warmup"`
	// Scopes are the owners of reputation and consent: a hosting
	// provider's customers, or sending domains. A message belongs to the
	// first scope, in the order written, that matches it; mail that
	// matches none passes untouched but for DKIM signing.
	// Default: one scope "default" for mail submitted from this machine.
	Scopes []Scope `toml:"scope"`

	// file is where the configuration was read from ("" for the
	// built-in default).
	file string
}

// Store configures the database.
type Store struct {
	// Path of the SQLite database; relative to state_dir.
	// Default "senderkit.db".
	Path string `toml:"path"`
	// BusyTimeout is how long a write waits for another process to
	// release the database before giving up (the milter then tempfails,
	// the bounce pipe exits 75 so Postfix retries). Default "5s".
	BusyTimeout Duration `toml:"busy_timeout"`
	// Synchronous is "full" (a recorded unsubscribe survives a power
	// cut) or "normal" (faster; survives a crash of senderkit but not of
	// the machine). Default "full".
	Synchronous string `toml:"synchronous"`
	// Mmap reads the SQLite file through a memory mapping (its first
	// 2 GiB), which keeps suppression lookups fast where the kernel
	// reclaims idle file pages (proactive reclaim, such as DAMON). A disk
	// that fails a read of a mapped page then stops the process with
	// SIGBUS rather than an I/O error: set false for a store on storage
	// you do not trust, or a network file system. Default true.
	Mmap bool `toml:"mmap"`

	// The settings of a store shared by a fleet of relays (conf/store.go).
	StoreShared
}

// Tokens configures the token keys.
type Tokens struct {
	// KeyDir holds one file per key, "<id>.key" (id 1-255), each the
	// hexadecimal secret, mode 0600. The key with the highest id signs;
	// every key present verifies, so rotation is: add a key with a higher
	// id, wait until no mail signed with the old one can come back (a few
	// months), then remove the old file. `senderkit serve` creates 1.key
	// when the directory holds none. Relative to state_dir. Default "keys".
	KeyDir string `toml:"key_dir"`
}

// Addresses configures address comparison.
type Addresses struct {
	// CaseSensitiveLocal makes "Bob@example.com" and "bob@example.com"
	// two recipients. RFC 5321 allows it; almost no mailbox provider does
	// it. Default false.
	CaseSensitiveLocal bool `toml:"case_sensitive_local"`
}

// Suppression holds the BCP's rules for soft failures.
type Suppression struct {
	// SoftBounces is how many consecutive soft bounces, each for a
	// different send, suppress a recipient (together with soft_span).
	// A delivery resets the count. Default 2.
	SoftBounces int `toml:"soft_bounces"`
	// SoftSpan is how much time must lie between the first and the last
	// of those bounces. Default "14d".
	SoftSpan Duration `toml:"soft_span"`
	// SoftExpiry is how long a suppression for soft bounces lasts; each
	// time it recurs it lasts twice as long, up to soft_expiry_max.
	// "0s" makes it permanent. Default "30d".
	SoftExpiry Duration `toml:"soft_expiry"`
	// SoftExpiryMax caps the doubling. Default "365d".
	SoftExpiryMax Duration `toml:"soft_expiry_max"`
}

// Metrics configures the Prometheus endpoint of senderkit serve.
type Metrics struct {
	// Listen is "HOST:PORT" for GET /metrics, or "" for none.
	// Default "127.0.0.1:9465".
	Listen string `toml:"listen"`
}

// Log configures the operator log (the mail-event log is separate).
type Log struct {
	// Level is "debug", "info", "warn" or "error". Default "info".
	Level string `toml:"level"`
	// Format is "text" or "json". Default "text".
	Format string `toml:"format"`
	// Levels overrides the level per component: "milter", "policy",
	// "bouncepipe", "http", "store", "conf". Default none.
	Levels map[string]string `toml:"levels"`
}

// Scope is one owner of reputation and consent.
type Scope struct {
	// Name identifies the scope in the store, in tokens and in reports;
	// letters, digits, '.', '_' and '-'. Required; "*" is reserved.
	Name string `toml:"name"`
	// SASLUsers are SASL login names whose mail belongs to this scope.
	// Default none.
	SASLUsers []string `toml:"sasl_users"`
	// SenderDomains are envelope sender domains whose mail belongs to
	// this scope; subdomains are not included. Default none.
	SenderDomains []string `toml:"sender_domains"`
	// Clients are client addresses or networks ("192.0.2.0/24") whose
	// mail belongs to this scope. Default none.
	Clients []string `toml:"clients"`
	// DefaultStream is the stream of mail that selects none. Default: the
	// first stream listed.
	DefaultStream string `toml:"default_stream"`
	// Streams are the kinds of mail this scope sends. Default: one bulk
	// stream named "bulk".
	Streams []Stream `toml:"stream"`

	// Per-scope settings of each part, written in the [[scope]] table.
	ScopeMilter
	ScopePolicy
	ScopeBounce
	ScopeHTTP
	ScopeVetting

	saslUsers     map[string]bool
	senderDomains map[string]bool
	clients       []netip.Prefix
}

// Stream kinds.
const (
	Bulk          = "bulk"
	Transactional = "transactional"
)

// Stream is one kind of mail within a scope.
type Stream struct {
	// Name identifies the stream, with the same characters as a scope's
	// name. Required.
	Name string `toml:"name"`
	// Kind is "bulk" (one copy per recipient, List-Unsubscribe, complaints
	// suppress) or "transactional" (exempt from complaint suppression, may
	// keep several recipients in one envelope). Default "bulk".
	Kind string `toml:"kind"`
	// Senders are envelope sender addresses, or "*@domain", that select
	// this stream. Default none.
	Senders []string `toml:"senders"`
	// DaemonNames are Postfix service names (set with
	// -o milter_macro_daemon_name=NAME in master.cf) that select this
	// stream, so that a submission port can stand for a stream.
	// Default none.
	DaemonNames []string `toml:"daemon_names"`

	// Per-stream settings of each part, written in the [[scope.stream]]
	// table.
	StreamMilter

	senders map[string]bool
}

// Duration is a time.Duration written as in Go ("90s", "1h30m") or in
// days ("14d").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the built-in configuration, used when no file is given.
func Default() *Config {
	return &Config{
		StateDir:     "/var/lib/senderkit",
		StreamHeader: "X-Senderkit-Stream",
		Store: Store{
			Path:        "senderkit.db",
			BusyTimeout: Duration(5 * time.Second),
			Synchronous: "full",
			Mmap:        true,
			StoreShared: defaultStoreShared(),
		},
		Tokens: Tokens{KeyDir: "keys"},
		Bounce: defaultBounce(),
		Suppression: Suppression{
			SoftBounces:   2,
			SoftSpan:      Duration(14 * 24 * time.Hour),
			SoftExpiry:    Duration(30 * 24 * time.Hour),
			SoftExpiryMax: Duration(365 * 24 * time.Hour),
		},
		Milter:  defaultMilter(),
		Policy:  defaultPolicy(),
		HTTP:    defaultHTTP(),
		Check:   defaultCheck(),
		Metrics: Metrics{Listen: "127.0.0.1:9465"},
		Log:     Log{Level: "info", Format: "text"},
		Vetting: defaultVetting(),
		Scopes: []Scope{{
			Name:         "default",
			Clients:      []string{"127.0.0.0/8", "::1/128"},
			Streams:      []Stream{{Name: "bulk", Kind: Bulk}},
			ScopeBounce:  ScopeBounce{UnsubscribeCovers: CoverScope},
			ScopePolicy:  ScopePolicy{SuppressedAction: ActionReject},
			ScopeVetting: ScopeVetting{Vetting: defaultVetting().Thresholds},
		}},
	}
}
