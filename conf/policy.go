package conf

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/senderkit/senderkit/internal/addr"
)

// Policy configures the policy server (Postfix's check_policy_service)
// and the Postfix log follower that feeds its throttling.
type Policy struct {
	// Listen is "inet:HOST:PORT" or "unix:/path" as in Postfix's
	// check_policy_service, or "" to run no policy server. Changing it
	// takes a restart of senderkit serve; the other policy settings
	// apply on reload, unless they say otherwise. Default "inet:127.0.0.1:10040".
	Listen Listen `toml:"listen"`
	// MaxConnections caps concurrent connections; each smtpd process
	// keeps one open. Further connections wait until one closes. Read at
	// start. Default 1000.
	MaxConnections int `toml:"max_connections"`
	// IdleTimeout closes a connection that sends no request for this
	// long. Keep it above Postfix's smtpd_policy_service_max_idle (300s).
	// Default "330s".
	IdleTimeout Duration `toml:"idle_timeout"`
	// RequestTimeout is how long a request may take to arrive once its
	// first byte did; a slower client is disconnected. Default "10s".
	RequestTimeout Duration `toml:"request_timeout"`
	// MaxLineLength caps one "name=value" line, in bytes; a longer line
	// disconnects the client. Default 8192.
	MaxLineLength int `toml:"max_line_length"`
	// MaxAttributes caps the lines of one request (Postfix 3.7 sends
	// about 30); more disconnect the client. Default 100.
	MaxAttributes int `toml:"max_attributes"`
	// StoreTimeout bounds one suppression lookup. Default "2s".
	StoreTimeout Duration `toml:"store_timeout"`
	// OnStoreError is what a recipient gets when the suppression list
	// cannot be read: "defer" (DEFER_IF_PERMIT: the client retries later
	// and no suppressed recipient is mailed) or "dunno" (the mail goes
	// on unchecked). Either way it is logged as an error.
	// Default "defer".
	OnStoreError string `toml:"on_store_error"`
	// Refresh is how often the server reads suppressions that other
	// processes (the bounce pipe, the CLI) added, into its in-memory
	// filter, and the paused scopes (the milter too). A recipient
	// suppressed elsewhere is refused, and a scope paused or resumed
	// elsewhere is held or let through, at most this long after.
	// Default "1s".
	Refresh Duration `toml:"refresh"`
	// Maillog is where Postfix logs deliveries: the path of a log file
	// (maillog_file, or syslog's /var/log/mail.log), "journal" for the
	// systemd journal (journalctl), or "" to follow no log (no
	// throttling, no delivery events). The journal is read for facility
	// mail (Postfix's syslog_facility default). The position reached is
	// kept in state_dir, so a restart resumes where it stopped; a first
	// start reads the file from its start, or the journal's last day.
	// Changing it takes a restart of senderkit serve. Default "".
	Maillog string `toml:"maillog"`
	// Resolver is the "IP:PORT" of the DNS resolver asked for the MX
	// records that group destinations, or "" for the first nameserver in
	// /etc/resolv.conf. Default "".
	Resolver string `toml:"resolver"`
	// Throttle is the adaptive throttling of destinations that tempfail.
	Throttle Throttle `toml:"throttle"`
}

// Throttle configures adaptive throttling (M3AAWG Sender BCP v3 §3.8:
// act on temporary failures per destination). A destination is a
// recipient domain grouped with every domain whose primary MX host has
// the same registered domain (gmail.com and a Google-hosted domain are
// both "google.com").
type Throttle struct {
	// Enabled turns throttling on. Default true.
	Enabled bool `toml:"enabled"`
	// Window is how far back deliveries count when judging a
	// destination's health. Default "5m".
	Window Duration `toml:"window"`
	// Tempfails is how many temporary failures within the window start
	// throttling a destination (together with tempfail_percent). A reply
	// that says "rate limited" starts it at once. Default 5.
	Tempfails int `toml:"tempfails"`
	// TempfailPercent is the share of the window's delivery attempts that
	// must have failed temporarily. Default 30.
	TempfailPercent int `toml:"tempfail_percent"`
	// DecreasePercent is what a throttled destination's rate is cut to
	// on each new burst of failures (multiplicative decrease), at most
	// once per increase_every. Default 50.
	DecreasePercent int `toml:"decrease_percent"`
	// IncreaseEvery is how often the rate grows by increase while the
	// destination does not tempfail (additive increase). Default "1m".
	IncreaseEvery Duration `toml:"increase_every"`
	// Increase is the growth of the rate, in messages a minute, each
	// increase_every. Default 10.
	Increase int `toml:"increase"`
	// MinRate is the lowest rate, in messages a minute. Default 1.
	MinRate int `toml:"min_rate"`
	// MaxRate is the rate, in messages a minute, at which a destination
	// stops being throttled. Default 600.
	MaxRate int `toml:"max_rate"`
	// BlocklistSuspend is how long a scope's mail to a destination is
	// deferred after the destination answered with a blocklist text.
	// Default "1h".
	BlocklistSuspend Duration `toml:"blocklist_suspend"`
	// RateLimitPatterns are regular expressions (RE2, matched against the
	// remote's reply) that mark a rate-limit reply. Default: common
	// wordings of Gmail, Yahoo, Microsoft and Postfix-based receivers.
	RateLimitPatterns []string `toml:"rate_limit_patterns"`
	// BlocklistPatterns are regular expressions that mark a reply blaming
	// the sending IP or domain's listing on a blocklist.
	// Default: common DNSBL wordings.
	BlocklistPatterns []string `toml:"blocklist_patterns"`
	// Groups put domains in a destination by name, "domain=group", ahead
	// of MX lookups ("googlemail.com=google.com"). Default none.
	Groups []string `toml:"groups"`

	rateLimit, blocklist []*regexp.Regexp
	groups               map[string]string
}

// ScopePolicy holds a scope's policy settings.
type ScopePolicy struct {
	// SuppressedAction is what the policy server does with a suppressed
	// recipient at RCPT: "reject" (550 5.7.1 with the reason and date),
	// "discard" (accept and drop the whole message: use it only for
	// one-recipient copies) or "hold" (keep the whole message in
	// Postfix's hold queue for an administrator). Default "reject". The
	// milter, which matches entries for one stream once the stream
	// header is read, removes such recipients and does the same with a
	// message left with none.
	SuppressedAction string `toml:"suppressed_action"`
}

// Suppressed actions.
const (
	ActionReject  = "reject"
	ActionDiscard = "discard"
	ActionHold    = "hold"
)

// On-store-error choices.
const (
	OnErrorDefer = "defer"
	OnErrorDunno = "dunno"
)

// MaillogJournal is the Maillog value that follows the systemd journal.
const MaillogJournal = "journal"

func defaultPolicy() Policy {
	return Policy{
		Listen:         "inet:127.0.0.1:10040",
		MaxConnections: 1000,
		IdleTimeout:    Duration(330 * time.Second),
		RequestTimeout: Duration(10 * time.Second),
		MaxLineLength:  8192,
		MaxAttributes:  100,
		StoreTimeout:   Duration(2 * time.Second),
		OnStoreError:   OnErrorDefer,
		Refresh:        Duration(time.Second),
		Throttle: Throttle{
			Enabled:          true,
			Window:           Duration(5 * time.Minute),
			Tempfails:        5,
			TempfailPercent:  30,
			DecreasePercent:  50,
			IncreaseEvery:    Duration(time.Minute),
			Increase:         10,
			MinRate:          1,
			MaxRate:          600,
			BlocklistSuspend: Duration(time.Hour),
			RateLimitPatterns: []string{
				`(?i)rate[ -]?limit`,
				`(?i)too many (messages|mails|connections|recipients|sessions)`,
				`(?i)(temporarily|temporary) (deferred|rate|throttled)`,
				`(?i)throttl`,
				`(?i)unexpected volume`,
				`(?i)unusual rate`,
				`(?i)exceeded .*(limit|quota|rate)`,
				`(?i)server busy`,
			},
			BlocklistPatterns: []string{
				`(?i)\b(block|black|deny)[ -]?list`,
				`(?i)\blisted (on|in|at|by)\b`,
				`(?i)blocked using`,
				`(?i)\b(spamhaus|spamcop|barracuda|sorbs|uceprotect|abuseat)\b`,
				`(?i)\b(RBL|DNSBL)\b`,
				`(?i)banned sending IP`,
				`(?i)poor (IP )?reputation`,
			},
		},
	}
}

func (p *Policy) complete(l *errorList) {
	if _, _, err := p.Listen.Split(); err != nil {
		l.add("policy.listen", "%v", err)
	}
	positive := func(key string, v int) {
		if v < 1 {
			l.add(key, "%d: must be at least 1", v)
		}
	}
	positive("policy.max_connections", p.MaxConnections)
	positive("policy.max_attributes", p.MaxAttributes)
	if p.MaxLineLength < 512 {
		l.add("policy.max_line_length", "%d: must be at least 512 (an address alone may take 256 bytes)", p.MaxLineLength)
	}
	between := func(key string, d Duration, lo, hi time.Duration) {
		if d.D() < lo || d.D() > hi {
			l.add(key, "%v is outside %v to %v", d.D(), lo, hi)
		}
	}
	between("policy.idle_timeout", p.IdleTimeout, time.Second, 24*time.Hour)
	between("policy.request_timeout", p.RequestTimeout, 100*time.Millisecond, time.Hour)
	between("policy.store_timeout", p.StoreTimeout, time.Millisecond, time.Minute)
	between("policy.refresh", p.Refresh, 10*time.Millisecond, time.Hour)
	if p.OnStoreError != OnErrorDefer && p.OnStoreError != OnErrorDunno {
		l.add("policy.on_store_error", "%q: want %q or %q", p.OnStoreError, OnErrorDefer, OnErrorDunno)
	}
	if m := p.Maillog; m != "" && m != MaillogJournal && !filepath.IsAbs(m) {
		l.add("policy.maillog", "%q: want an absolute path, %q or \"\"", m, MaillogJournal)
	}
	if p.Resolver != "" {
		if _, err := netip.ParseAddrPort(p.Resolver); err != nil {
			l.add("policy.resolver", "%q: want IP:PORT", p.Resolver)
		}
	}
	p.Throttle.complete(l)
}

func (t *Throttle) complete(l *errorList) {
	const k = "policy.throttle."
	if t.Window.D() < time.Second {
		l.add(k+"window", "%v: must be at least 1s", t.Window.D())
	}
	if t.IncreaseEvery.D() < 100*time.Millisecond {
		l.add(k+"increase_every", "%v: must be at least 100ms", t.IncreaseEvery.D())
	}
	if t.Tempfails < 1 {
		l.add(k+"tempfails", "%d: must be at least 1", t.Tempfails)
	}
	if t.TempfailPercent < 0 || t.TempfailPercent > 100 {
		l.add(k+"tempfail_percent", "%d: want 0 to 100", t.TempfailPercent)
	}
	if t.DecreasePercent < 1 || t.DecreasePercent > 99 {
		l.add(k+"decrease_percent", "%d: want 1 to 99", t.DecreasePercent)
	}
	if t.Increase < 1 {
		l.add(k+"increase", "%d: must be at least 1", t.Increase)
	}
	if t.MinRate < 1 {
		l.add(k+"min_rate", "%d: must be at least 1", t.MinRate)
	}
	if t.MaxRate <= t.MinRate {
		l.add(k+"max_rate", "%d: must be above min_rate %d", t.MaxRate, t.MinRate)
	}
	if t.BlocklistSuspend < 0 {
		l.add(k+"blocklist_suspend", "must not be negative")
	}
	compile := func(key string, pats []string) []*regexp.Regexp {
		var res []*regexp.Regexp
		for i, p := range pats {
			re, err := regexp.Compile(p)
			if err != nil {
				l.add(fmt.Sprintf("%s%s[%d]", k, key, i), "%v", err)
				continue
			}
			res = append(res, re)
		}
		return res
	}
	t.rateLimit = compile("rate_limit_patterns", t.RateLimitPatterns)
	t.blocklist = compile("blocklist_patterns", t.BlocklistPatterns)
	t.groups = map[string]string{}
	for i, g := range t.Groups {
		key := fmt.Sprintf("%sgroups[%d]", k, i)
		d, group, ok := strings.Cut(g, "=")
		if !ok {
			l.add(key, "%q: want domain=group", g)
			continue
		}
		nd, err := addr.NormalizeDomain(strings.TrimSpace(d))
		if err != nil {
			l.add(key, "%v", err)
			continue
		}
		group = strings.ToLower(strings.TrimSpace(group))
		if group == "" || strings.ContainsAny(group, " \t\"") {
			l.add(key, "%q: bad group name", group)
			continue
		}
		t.groups[nd] = group
	}
}

// IsRateLimit reports whether a remote reply reads as a rate limit.
func (t *Throttle) IsRateLimit(reply string) bool { return matchAny(t.rateLimit, reply) }

// IsBlocklist reports whether a remote reply blames a blocklist listing.
func (t *Throttle) IsBlocklist(reply string) bool { return matchAny(t.blocklist, reply) }

// Group returns the destination the groups setting gives a normalised
// domain, or "".
func (t *Throttle) Group(domain string) string { return t.groups[domain] }

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func (sp *ScopePolicy) complete(key string, sc *Scope, l *errorList) {
	switch sp.SuppressedAction {
	case "":
		sp.SuppressedAction = ActionReject
	case ActionReject, ActionDiscard, ActionHold:
	default:
		l.add(key+".suppressed_action", "%q: want %q, %q or %q", sp.SuppressedAction, ActionReject, ActionDiscard, ActionHold)
	}
}
