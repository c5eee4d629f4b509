package postfixlab

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Hostname is the lab's myhostname.
const Hostname = "lab.example.test"

// Options configures a Lab. The zero value gives a Postfix that accepts
// mail from 127.0.0.0/8 and relays all of it to the lab's Sink.
type Options struct {
	// Milters are the smtpd_milters entries, e.g. "inet:127.0.0.1:10026".
	Milters []string
	// NonSMTPDMilters are the non_smtpd_milters entries, applied to mail
	// from sendmail(1) (pickup).
	NonSMTPDMilters []string
	// MilterDefaultAction is milter_default_action; default "tempfail", so
	// that a dead milter shows as a 451.
	MilterDefaultAction string

	// PolicyService, if set, is consulted for every recipient with
	// "check_policy_service ADDR" in smtpd_recipient_restrictions. ADDR is
	// "inet:host:port" or "unix:path"; a bare "host:port" means inet.
	// smtpd_relay_restrictions (permit_mynetworks, reject_unauth_destination)
	// is a separate list evaluated first, so local clients reach the
	// policy service too.
	PolicyService string

	// Pipes are pipe(8) transports.
	Pipes []Pipe

	// Main holds extra main.cf parameters; they override the lab's own,
	// including those derived from the fields above.
	Main map[string]string
	// MasterLines are extra master.cf lines, appended verbatim.
	MasterLines []string

	// SinkHandler is the initial RCPT handler of the lab's Sink.
	SinkHandler RcptHandler

	// Base, if set, is a Postfix configuration directory (main.cf and
	// master.cf) to run instead of the lab's own: an administrator's
	// configuration, to test what is added to it. The lab changes only
	// where it must differ to run here: the queue, data and log
	// locations, loopback addresses and ports (the "smtp inet" service
	// listens on the lab's port), the Sink as relayhost with no DNS, no
	// chroot (which would need copies of /etc in the queue), no local
	// delivery, and the fast retry timers; Main still overrides. Every
	// other setting, service and restriction of Base is kept.
	Base string

	// pickPort, if set, replaces freePort for the smtpd address (tests).
	pickPort func() (string, error)
}

// Pipe is a pipe(8) transport in master.cf.
type Pipe struct {
	// Service is the master.cf service name, e.g. "bouncepipe".
	Service string
	// Domain, if set, is routed to the service: it goes into transport_maps
	// (inline:{Domain=Service:}) and relay_domains.
	// Service_destination_recipient_limit is 1 in any case, so that each
	// invocation gets one ${recipient}.
	Domain string
	// User is the pipe user= attribute; default "nobody". root is refused
	// by pipe(8).
	User string
	// Flags is the pipe flags= attribute; default "Rq".
	Flags string
	// Argv is the command and its arguments. pipe(8) expands ${sender},
	// ${recipient}, ${nexthop}, ${user}, ${extension}, etc.; write a
	// literal "$" as "$$". Arguments containing white space or starting
	// with "{" are wrapped in master.cf's "{ ... }" quoting, which needs
	// their braces to balance. Empty arguments are refused.
	Argv []string
	// Env holds environment variables for the command. pipe(8) has no
	// attribute for this and gives the command a minimal environment, so
	// they are passed by running the command under /usr/bin/env K=V...
	Env map[string]string
}

var serviceRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// argv returns the pipe's argv with the env(1) prefix, if any.
func (p Pipe) argv() []string {
	if len(p.Env) == 0 {
		return p.Argv
	}
	keys := sortedKeys(p.Env)
	argv := []string{"/usr/bin/env"}
	for _, k := range keys {
		argv = append(argv, k+"="+p.Env[k])
	}
	return append(argv, p.Argv...)
}

// masterLine returns the master.cf line of the pipe.
func (p Pipe) masterLine() (string, error) {
	if !serviceRE.MatchString(p.Service) {
		return "", fmt.Errorf("pipe service name %q: want letters, digits, '-' and '_'", p.Service)
	}
	if len(p.Argv) == 0 {
		return "", fmt.Errorf("pipe %q: empty Argv", p.Service)
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return "", fmt.Errorf("pipe %q: bad environment variable name %q", p.Service, k)
		}
	}
	user := p.User
	if user == "" {
		user = "nobody"
	}
	flags := p.Flags
	if flags == "" {
		flags = "Rq"
	}
	var args []string
	for _, a := range p.argv() {
		q, err := masterQuote(a)
		if err != nil {
			return "", fmt.Errorf("pipe %q: %v", p.Service, err)
		}
		args = append(args, q)
	}
	return fmt.Sprintf("%s unix - n n - - pipe flags=%s user=%s argv=%s",
		p.Service, flags, user, strings.Join(args, " ")), nil
}

// masterQuote quotes a master.cf command-line argument with "{ ... }"
// (Postfix >= 3.0) if it contains white space or starts with "{". Inside
// the quotes, braces must balance.
func masterQuote(a string) (string, error) {
	switch {
	case a == "":
		return "", fmt.Errorf("empty argument")
	case strings.ContainsAny(a, "\n\r"):
		return "", fmt.Errorf("argument %q contains a line break", a)
	case !strings.ContainsAny(a, " \t") && !strings.HasPrefix(a, "{"):
		return a, nil
	case !balanced(a):
		return "", fmt.Errorf("argument %q needs { } quoting but its braces do not balance", a)
	case a != strings.TrimSpace(a):
		return "", fmt.Errorf("argument %q: master.cf cannot keep leading or trailing white space", a)
	}
	return "{ " + a + " }", nil
}

// balanced reports whether the braces in s balance.
func balanced(s string) bool {
	depth := 0
	for _, c := range s {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

// config holds what the lab's configuration files depend on.
type config struct {
	dir      string // lab directory
	smtpAddr string // smtpd's 127.0.0.1:port
	sinkAddr string // relayhost's 127.0.0.1:port
	opts     Options
}

// param is one main.cf parameter.
type param struct{ name, value string }

// mainCF returns the content of main.cf.
func (c config) mainCF() (string, error) {
	ps := []param{
		{"compatibility_level", "3.6"},
		{"queue_directory", c.dir + "/spool"},
		{"data_directory", c.dir + "/data"},
		{"mail_owner", "postfix"},
		{"setgid_group", "postdrop"},
		{"myhostname", Hostname},
		{"mydestination", ""},
		{"local_recipient_maps", ""},
		{"local_transport", "error:5.1.1 local delivery disabled"},
		{"alias_maps", ""},
		{"alias_database", ""},
		{"inet_interfaces", "127.0.0.1"},
		{"inet_protocols", "ipv4"},
		{"mynetworks", "127.0.0.0/8"},
		{"smtpd_relay_restrictions", "permit_mynetworks, reject_unauth_destination"},
		{"relayhost", "[127.0.0.1]:" + port(c.sinkAddr)},
		{"smtp_dns_support_level", "disabled"},
		{"smtp_tls_security_level", "none"},
		{"smtpd_tls_security_level", "none"},
		{"maillog_file", c.dir + "/maillog"},
		{"maillog_file_prefixes", c.dir},
		{"smtputf8_enable", "no"},
		{"disable_mime_output_conversion", "yes"},
		{"biff", "no"},
		// Fast queue: deferred mail is retried within about two seconds.
		{"queue_run_delay", "1s"},
		{"minimal_backoff_time", "1s"},
		{"maximal_backoff_time", "2s"},
		{"delay_warning_time", "0"},
		{"smtp_connect_timeout", "5s"},
		{"smtpd_error_sleep_time", "0"},
		{"in_flow_delay", "0"},
		{"milter_default_action", "tempfail"},
	}
	o := c.opts
	if o.MilterDefaultAction != "" {
		ps = set(ps, "milter_default_action", o.MilterDefaultAction)
	}
	if len(o.Milters) > 0 {
		ps = set(ps, "smtpd_milters", strings.Join(o.Milters, ", "))
	}
	if len(o.NonSMTPDMilters) > 0 {
		ps = set(ps, "non_smtpd_milters", strings.Join(o.NonSMTPDMilters, ", "))
	}
	if a := o.PolicyService; a != "" {
		if !strings.HasPrefix(a, "inet:") && !strings.HasPrefix(a, "unix:") {
			a = "inet:" + a
		}
		ps = set(ps, "smtpd_recipient_restrictions", "check_policy_service "+a)
	}
	var routes, domains []string
	for _, p := range o.Pipes {
		if !serviceRE.MatchString(p.Service) {
			return "", fmt.Errorf("pipe service name %q: want letters, digits, '-' and '_'", p.Service)
		}
		ps = set(ps, p.Service+"_destination_recipient_limit", "1")
		if p.Domain != "" {
			if strings.ContainsAny(p.Domain, "=,{} \t") {
				return "", fmt.Errorf("pipe %q: bad domain %q", p.Service, p.Domain)
			}
			routes = append(routes, p.Domain+"="+p.Service+":")
			domains = append(domains, p.Domain)
		}
	}
	if len(routes) > 0 {
		// No spaces inside inline:{...}.
		ps = set(ps, "transport_maps", "inline:{"+strings.Join(routes, ",")+"}")
		ps = set(ps, "relay_domains", strings.Join(domains, ", "))
	}
	for _, k := range sortedKeys(o.Main) {
		if !serviceRE.MatchString(k) {
			return "", fmt.Errorf("main.cf parameter name %q is not valid", k)
		}
		if strings.ContainsAny(o.Main[k], "\n\r") {
			return "", fmt.Errorf("main.cf parameter %s: value %q contains a line break", k, o.Main[k])
		}
		ps = set(ps, k, o.Main[k])
	}
	var b strings.Builder
	b.WriteString("# Written by senderkit's postfixlab.\n")
	for _, p := range ps {
		fmt.Fprintf(&b, "%s = %s\n", p.name, p.value)
	}
	return b.String(), nil
}

// placeParams are the main.cf parameters a Base configuration gets from
// the lab: where things are, not what Postfix does with mail.
var placeParams = map[string]bool{
	"compatibility_level": false, "queue_directory": true, "data_directory": true, "mail_owner": true,
	"setgid_group": true, "myhostname": true, "mydestination": true, "local_recipient_maps": true,
	"local_transport": true, "alias_maps": true, "alias_database": true, "inet_interfaces": true,
	"inet_protocols": true, "relayhost": true, "smtp_dns_support_level": true,
	"smtp_tls_security_level": true, "maillog_file": true, "maillog_file_prefixes": true,
	"queue_run_delay": true, "minimal_backoff_time": true, "maximal_backoff_time": true,
	"delay_warning_time": true, "smtp_connect_timeout": true, "smtpd_error_sleep_time": true,
	"in_flow_delay": true, "biff": true,
}

// baseParams returns the lab's settings for a Base configuration.
func (c config) baseParams() []string {
	var out []string
	all, _ := c.withoutOptions().mainParams()
	for _, p := range all {
		if placeParams[p.name] {
			out = append(out, p.name+"="+p.value)
		}
	}
	for _, k := range sortedKeys(c.opts.Main) {
		out = append(out, k+"="+c.opts.Main[k])
	}
	return out
}

// withoutOptions is c without the options that write main.cf settings
// (a Base configuration has its own).
func (c config) withoutOptions() config {
	c.opts = Options{}
	return c
}

// mainParams is mainCF's parameter list.
func (c config) mainParams() ([]param, error) {
	text, err := c.mainCF()
	if err != nil {
		return nil, err
	}
	var ps []param
	for _, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(line, " = ")
		if ok && !strings.HasPrefix(name, "#") {
			ps = append(ps, param{name, value})
		}
	}
	return ps, nil
}

// masterServices are the services of the lab's master.cf after smtpd.
// chroot is "n" everywhere: a chroot would need copies of /etc files.
var masterServices = []string{
	"pickup     unix n - n 60 1 pickup",
	"cleanup    unix n - n - 0 cleanup",
	"qmgr       unix n - n 300 1 qmgr",
	"rewrite    unix - - n - - trivial-rewrite",
	"bounce     unix - - n - 0 bounce",
	"defer      unix - - n - 0 bounce",
	"trace      unix - - n - 0 bounce",
	"verify     unix - - n - 1 verify",
	"flush      unix n - n 1000? 0 flush",
	"proxymap   unix - - n - - proxymap",
	"proxywrite unix - - n - 1 proxymap",
	"smtp       unix - - n - - smtp",
	"relay      unix - - n - - smtp",
	"showq      unix n - n - - showq",
	"error      unix - - n - - error",
	"retry      unix - - n - - error",
	"discard    unix - - n - - discard",
	"anvil      unix - - n - 1 anvil",
	"scache     unix - - n - 1 scache",
	"postlog    unix-dgram n - n - 1 postlogd",
}

// masterCF returns the content of master.cf.
func (c config) masterCF() (string, error) {
	var b strings.Builder
	b.WriteString("# Written by senderkit's postfixlab.\n")
	fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", c.smtpAddr)
	for _, l := range masterServices {
		b.WriteString(l + "\n")
	}
	for _, p := range c.opts.Pipes {
		l, err := p.masterLine()
		if err != nil {
			return "", err
		}
		b.WriteString(l + "\n")
	}
	for _, l := range c.opts.MasterLines {
		if strings.ContainsAny(l, "\n\r") {
			return "", fmt.Errorf("master.cf line %q contains a line break", l)
		}
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

// set sets name to value in ps, in place if present, else at the end.
func set(ps []param, name, value string) []param {
	for i := range ps {
		if ps[i].name == name {
			ps[i].value = value
			return ps
		}
	}
	return append(ps, param{name, value})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// port returns the port of a "host:port" address.
func port(addr string) string {
	return addr[strings.LastIndexByte(addr, ':')+1:]
}
