package conf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/senderkit/senderkit/internal/addr"
)

// Error is one problem in a configuration file.
type Error struct {
	File string // "" for the built-in default
	Line int    // 0 when unknown
	Key  string // dotted path, "scope[1].stream[0].kind"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in line order.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, completes and validates the configuration file at path.
// An empty path gives the built-in default. A file that does not pass
// validation yields an Errors listing every problem.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		if errs := c.complete(nil); len(errs) > 0 {
			return nil, errs // cannot happen: a test checks the default
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conf: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load on data already read; file names it in errors.
func Parse(data []byte, file string) (*Config, error) {
	c := Default()
	c.Scopes = nil // a file that lists scopes replaces the default ones
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeErrors(err, file)
	}
	c.file = file
	pos := keyLines(data)
	hasScopes := false
	for k := range pos {
		if k == "scope" || strings.HasPrefix(k, "scope[") {
			hasScopes = true
			break
		}
	}
	if !hasScopes {
		c.Scopes = Default().Scopes
	}
	if errs := c.complete(pos); len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// File is the path the configuration was read from, "" for the default.
func (c *Config) File() string { return c.file }

func decodeErrors(err error, file string) error {
	var de *toml.DecodeError
	var sm *toml.StrictMissingError
	switch {
	case errors.As(err, &sm):
		var errs Errors
		for i := range sm.Errors {
			e := &sm.Errors[i]
			line, _ := e.Position()
			errs = append(errs, &Error{File: file, Line: line, Key: strings.Join(e.Key(), "."), Msg: "unknown key"})
		}
		return errs
	case errors.As(err, &de):
		line, _ := de.Position()
		return Errors{{File: file, Line: line, Key: strings.Join(de.Key(), "."), Msg: de.Error()}}
	}
	return Errors{{File: file, Msg: err.Error()}}
}

// keyLines maps every key path in a TOML document ("store.path",
// "scope[1].stream[0].name", "log.levels.milter") to the line it is on.
func keyLines(data []byte) map[string]int {
	pos := map[string]int{}
	counts := map[string]int{} // array-table path -> elements so far
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			path, line := keyPath(&p, e, counts)
			if e.Kind == unstable.ArrayTable {
				counts[path]++
				path = fmt.Sprintf("%s[%d]", path, counts[path]-1)
			}
			prefix = path
			if _, ok := pos[path]; !ok {
				pos[path] = line
			}
		case unstable.KeyValue:
			kvLines(&p, e, prefix, pos)
		}
	}
	return pos
}

// keyPath resolves a table header's dotted key against the array tables
// seen so far: in [[scope.stream]], scope means its last element.
func keyPath(p *unstable.Parser, e *unstable.Node, counts map[string]int) (string, int) {
	path, line := "", 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = p.Shape(k.Raw).Start.Line
		}
		if path != "" {
			if n := counts[path]; n > 0 {
				path = fmt.Sprintf("%s[%d]", path, n-1)
			}
			path += "."
		}
		path += string(k.Data)
	}
	return path, line
}

func kvLines(p *unstable.Parser, e *unstable.Node, prefix string, pos map[string]int) {
	path, line := prefix, 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = p.Shape(k.Raw).Start.Line
		}
		if path != "" {
			path += "."
		}
		path += string(k.Data)
	}
	pos[path] = line
	valueLines(p, e.Value(), path, pos)
}

func valueLines(p *unstable.Parser, v *unstable.Node, path string, pos map[string]int) {
	switch v.Kind {
	case unstable.InlineTable:
		c := v.Children()
		for c.Next() {
			kvLines(p, c.Node(), path, pos)
		}
	case unstable.Array:
		c := v.Children()
		for i := 0; c.Next(); i++ {
			el := c.Node()
			ep := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := pos[ep]; !ok {
				pos[ep] = pos[path]
			}
			valueLines(p, el, ep, pos)
		}
	}
}

// errorList collects validation errors with their lines.
type errorList struct {
	file string
	pos  map[string]int
	errs Errors
}

func (l *errorList) add(key, format string, args ...any) {
	line := 0
	// An element or sub-key that the file does not spell out takes the
	// line of the nearest enclosing key it does.
	for k := key; k != ""; {
		if n, ok := l.pos[k]; ok {
			line = n
			break
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var headerRE = regexp.MustCompile(`^[!-9;-~]+$`) // RFC 5322 §3.6.8 ftext

// complete fills in derived defaults, checks everything and prepares the
// lookup tables used by ScopeFor and StreamFor.
func (c *Config) complete(pos map[string]int) Errors {
	l := &errorList{file: c.file, pos: pos}
	if !filepath.IsAbs(c.StateDir) {
		l.add("state_dir", "%q is not an absolute path", c.StateDir)
	}
	if c.StreamHeader != "" && !headerRE.MatchString(c.StreamHeader) {
		l.add("stream_header", "%q is not a header field name", c.StreamHeader)
	}
	if c.Store.Path == "" {
		l.add("store.path", "must not be empty")
	}
	if d := c.Store.BusyTimeout.D(); d < 10*time.Millisecond || d > 10*time.Minute {
		l.add("store.busy_timeout", "%v is outside 10ms to 10m", d)
	}
	if s := c.Store.Synchronous; s != "full" && s != "normal" {
		l.add("store.synchronous", "%q: want \"full\" or \"normal\"", s)
	}
	c.Store.StoreShared.complete(l)
	if c.Tokens.KeyDir == "" {
		l.add("tokens.key_dir", "must not be empty")
	}
	c.Bounce.complete(l)
	s := c.Suppression
	if s.SoftBounces < 1 {
		l.add("suppression.soft_bounces", "%d: must be at least 1", s.SoftBounces)
	}
	if s.SoftSpan < 0 {
		l.add("suppression.soft_span", "must not be negative")
	}
	if s.SoftExpiry < 0 || s.SoftExpiryMax < 0 {
		l.add("suppression.soft_expiry", "must not be negative")
	}
	if s.SoftExpiry > 0 && s.SoftExpiryMax < s.SoftExpiry {
		l.add("suppression.soft_expiry_max", "%v is shorter than soft_expiry %v", s.SoftExpiryMax.D(), s.SoftExpiry.D())
	}
	c.Milter.complete(l)
	c.Policy.complete(l)
	c.HTTP.complete(l)
	c.Check.complete(l)
	if c.Metrics.Listen != "" {
		if _, err := netip.ParseAddrPort(c.Metrics.Listen); err != nil {
			l.add("metrics.listen", "%q: want IP:PORT", c.Metrics.Listen)
		}
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		l.add("log.level", "%v", err)
	}
	if f := c.Log.Format; f != "text" && f != "json" {
		l.add("log.format", "%q: want \"text\" or \"json\"", f)
	}
	for _, comp := range sortedKeys(c.Log.Levels) {
		if !validComponent[comp] {
			l.add("log.levels."+comp, "unknown component; want one of milter, policy, bouncepipe, http, store, conf")
		}
		if _, err := ParseLevel(c.Log.Levels[comp]); err != nil {
			l.add("log.levels."+comp, "%v", err)
		}
	}
	seen := map[string]int{}
	for i := range c.Scopes {
		sc := &c.Scopes[i]
		key := fmt.Sprintf("scope[%d]", i)
		if j, dup := seen[sc.Name]; dup {
			l.add(key+".name", "scope %q is already defined as scope[%d]", sc.Name, j)
		}
		seen[sc.Name] = i
		sc.complete(key, l)
		sc.Vetting.inherit(c.Vetting.Thresholds, func(k string) bool {
			_, ok := l.pos[key+".vetting."+k]
			return ok
		})
		sc.Vetting.check(key+".vetting", l)
	}
	c.Vetting.complete(l)
	warmups := map[string]int{}
	for i := range c.Warmups {
		w := &c.Warmups[i]
		key := fmt.Sprintf("warmup[%d]", i)
		if j, dup := warmups[w.Name]; dup {
			l.add(key+".name", "warm-up %q is already defined as warmup[%d]", w.Name, j)
		}
		warmups[w.Name] = i
		w.complete(key, c, l)
	}
	sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
	return l.errs
}

var validComponent = map[string]bool{"milter": true, "policy": true, "bouncepipe": true, "http": true, "store": true, "conf": true}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (sc *Scope) complete(key string, l *errorList) {
	if !nameRE.MatchString(sc.Name) {
		l.add(key+".name", "%q: want 1-64 letters, digits, '.', '_' or '-'", sc.Name)
	}
	sc.saslUsers = map[string]bool{}
	for i, u := range sc.SASLUsers {
		if u == "" {
			l.add(fmt.Sprintf("%s.sasl_users[%d]", key, i), "empty login name")
		}
		sc.saslUsers[u] = true
	}
	sc.senderDomains = map[string]bool{}
	for i, d := range sc.SenderDomains {
		n, err := addr.NormalizeDomain(d)
		if err != nil {
			l.add(fmt.Sprintf("%s.sender_domains[%d]", key, i), "%v", err)
			continue
		}
		sc.senderDomains[n] = true
	}
	sc.clients = nil
	for i, s := range sc.Clients {
		p, err := parsePrefix(s)
		if err != nil {
			l.add(fmt.Sprintf("%s.clients[%d]", key, i), "%v", err)
			continue
		}
		sc.clients = append(sc.clients, p)
	}
	if len(sc.Streams) == 0 {
		sc.Streams = []Stream{{Name: "bulk", Kind: Bulk}}
	}
	names := map[string]bool{}
	for i := range sc.Streams {
		st := &sc.Streams[i]
		skey := fmt.Sprintf("%s.stream[%d]", key, i)
		if !nameRE.MatchString(st.Name) {
			l.add(skey+".name", "%q: want 1-64 letters, digits, '.', '_' or '-'", st.Name)
		}
		if names[st.Name] {
			l.add(skey+".name", "stream %q is defined twice in scope %q", st.Name, sc.Name)
		}
		names[st.Name] = true
		if st.Kind == "" {
			st.Kind = Bulk
		}
		if st.Kind != Bulk && st.Kind != Transactional {
			l.add(skey+".kind", "%q: want \"bulk\" or \"transactional\"", st.Kind)
		}
		st.senders = map[string]bool{}
		for j, s := range st.Senders {
			n, err := addr.NormalizePattern(s, addr.Options{})
			if err != nil {
				l.add(fmt.Sprintf("%s.senders[%d]", skey, j), "%v", err)
				continue
			}
			st.senders[n] = true
		}
		for j, d := range st.DaemonNames {
			if d == "" {
				l.add(fmt.Sprintf("%s.daemon_names[%d]", skey, j), "empty service name")
			}
		}
		st.StreamMilter.complete(skey, st, l)
	}
	sc.ScopeMilter.complete(key, sc, l)
	sc.ScopePolicy.complete(key, sc, l)
	sc.ScopeBounce.complete(key, sc, l)
	sc.ScopeHTTP.complete(key, sc, l)
	if sc.DefaultStream == "" {
		sc.DefaultStream = sc.Streams[0].Name
	} else if !names[sc.DefaultStream] {
		l.add(key+".default_stream", "%q is not a stream of scope %q", sc.DefaultStream, sc.Name)
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// UnmarshalText reads "90s", "1h30m" or "14d".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d in the shortest of the forms UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Duration) String() string {
	v := time.Duration(d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	s := v.String() // "336h0m0s", "1m30s", "0s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration accepts Go durations and whole days ("14d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want whole days such as \"14d\"", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a number and a unit such as \"5s\", \"1h30m\" or \"14d\"", s)
	}
	return v, nil
}

// Listen is a Postfix-style socket address: "inet:HOST:PORT",
// "unix:/path", or "" for none.
type Listen string

// Split returns the Go network ("tcp" or "unix") and address; both are
// empty for "".
func (l Listen) Split() (network, address string, err error) {
	if l == "" {
		return "", "", nil
	}
	kind, rest, ok := strings.Cut(string(l), ":")
	switch {
	case ok && kind == "inet":
		if _, err := netip.ParseAddrPort(rest); err != nil {
			return "", "", fmt.Errorf("%q: want inet:IP:PORT", string(l))
		}
		return "tcp", rest, nil
	case ok && kind == "unix":
		if !filepath.IsAbs(rest) {
			return "", "", fmt.Errorf("%q: want unix:/absolute/path", string(l))
		}
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("%q: want inet:IP:PORT or unix:/path", string(l))
}

// Open listens on l. A unix socket left behind by a previous run is
// replaced, and the new one gets mode (Postfix's daemons connect to it as
// their own user). It returns a nil listener for "".
func (l Listen) Open(mode os.FileMode) (net.Listener, error) {
	network, address, err := l.Split()
	if err != nil || network == "" {
		return nil, err
	}
	if network == "unix" {
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(address)
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	if network == "unix" {
		if err := os.Chmod(address, mode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on %s: %w", l, err)
		}
	}
	return ln, nil
}

// Path resolves p against the state directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.StateDir, p)
}

// StorePath is the database file.
func (c *Config) StorePath() string { return c.Path(c.Store.Path) }

// KeyDir is the token key directory.
func (c *Config) KeyDir() string { return c.Path(c.Tokens.KeyDir) }
