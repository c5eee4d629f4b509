package dkim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/senderkit/senderkit/internal/addr"
)

// TableError is a problem in a KeyTable or SigningTable, with its line.
type TableError struct {
	Table  string // "KeyTable" or "SigningTable"
	Source string // the file
	Line   int    // 0 when the whole table is concerned
	Msg    string
}

func (e *TableError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s %s:%d: %s", e.Table, e.Source, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s %s: %s", e.Table, e.Source, e.Msg)
}

// Dataset is an OpenDKIM dataset naming a table file: "file:/path",
// "refile:/path", or a bare absolute path, which OpenDKIM reads as
// "file:" (opendkim(8), DATA SETS, a, b and i).
type Dataset struct {
	Path  string
	Regex bool // refile: keys are wildcard patterns tried in order
}

// ParseDataset reads a dataset specification. A relative path is taken
// from dir. Datasets that are not files (csl:, db:, dsn:, ldap:, ...)
// are refused.
func ParseDataset(spec, dir string) (Dataset, error) {
	var d Dataset
	switch {
	case strings.HasPrefix(spec, "refile:"):
		d = Dataset{Path: strings.TrimPrefix(spec, "refile:"), Regex: true}
	case strings.HasPrefix(spec, "file:"):
		d = Dataset{Path: strings.TrimPrefix(spec, "file:")}
	case strings.HasPrefix(spec, "/"):
		d = Dataset{Path: spec}
	default:
		kind, _, ok := strings.Cut(spec, ":")
		if ok && !strings.ContainsAny(kind, "/.") {
			return Dataset{}, fmt.Errorf("dataset %q: %s: datasets are not supported; use a file (file:/path or refile:/path)", spec, kind)
		}
		d = Dataset{Path: spec}
	}
	if d.Path == "" {
		return Dataset{}, fmt.Errorf("dataset %q: no file name", spec)
	}
	if !filepath.IsAbs(d.Path) {
		d.Path = filepath.Join(dir, d.Path)
	}
	return d, nil
}

// String writes the dataset back in OpenDKIM's form.
func (d Dataset) String() string {
	if d.Regex {
		return "refile:" + d.Path
	}
	return "file:" + d.Path
}

// globRE turns an OpenDKIM wildcard pattern into a regular expression
// exactly as dkimf_mkregexp (opendkim/util.c) does: anchored, "*" becomes
// ".*", "." and "+" are escaped, and every other character is left to
// the regular expression syntax.
func globRE(pattern string, icase bool) (*regexp.Regexp, error) {
	var b strings.Builder
	if icase {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for _, c := range pattern {
		switch c {
		case '*':
			b.WriteString(".*")
		case '.', '+':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// line is one key/value line of a table.
type line struct {
	no         int
	key, value string
}

// maxLine bounds a table line; OpenDKIM's own limit is lower.
const maxLine = 64 << 10

// readLines reads a table as OpenDKIM does: everything from '#' to the
// end of a line is a comment, blank lines are skipped, the key runs to
// the first white space and the value is the rest, trimmed.
func readLines(r io.Reader, table, source string) ([]line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	var lines []line
	for no := 1; sc.Scan(); no++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if !utf8.ValidString(text) {
			return nil, &TableError{table, source, no, "not valid UTF-8"}
		}
		key, value := text, ""
		if i := strings.IndexAny(text, " \t\v\f\r"); i >= 0 {
			key, value = text[:i], strings.TrimSpace(text[i:])
		}
		lines = append(lines, line{no, key, value})
	}
	if err := sc.Err(); err != nil {
		return nil, &TableError{table, source, 0, err.Error()}
	}
	return lines, nil
}

// KeyEntry is one line of a KeyTable: a key name and the three values
// "domain:selector:key".
type KeyEntry struct {
	Name     string // the key name; in a refile: table, a wildcard pattern
	Domain   string // d=, in A-labels; "%" stands for the From domain
	Selector string // s=
	// Key is a path of the private key file (starting with "/", "./" or
	// "../"), or the key itself (PEM or base64 DER). In a path written
	// from "/", a "%" stands for the signing domain; OpenDKIM leaves it
	// as it is in a relative path, and so does senderkit.
	Key  string
	Line int

	perDomain bool // Key is a path with "%" standing for the domain
	re        *regexp.Regexp
}

// IsPath reports whether Key names a file, by OpenDKIM's rule
// (dkimf_loadkey).
func (e *KeyEntry) IsPath() bool {
	return strings.HasPrefix(e.Key, "/") || strings.HasPrefix(e.Key, "./") || strings.HasPrefix(e.Key, "../")
}

// KeyTable maps key names to signing keys (opendkim.conf(5), KeyTable).
type KeyTable struct {
	Dataset Dataset
	Entries []KeyEntry
}

// ParseKeyTable reads a KeyTable. Relative key paths are taken from the
// table's directory (OpenDKIM takes them from its working directory).
func ParseKeyTable(r io.Reader, d Dataset) (*KeyTable, error) {
	lines, err := readLines(r, "KeyTable", d.Path)
	if err != nil {
		return nil, err
	}
	kt := &KeyTable{Dataset: d}
	for _, l := range lines {
		e, err := parseKeyEntry(l, d)
		if err != nil {
			return nil, err
		}
		kt.Entries = append(kt.Entries, e)
	}
	return kt, nil
}

func parseKeyEntry(l line, d Dataset) (KeyEntry, error) {
	bad := func(format string, a ...any) error {
		return &TableError{"KeyTable", d.Path, l.no, fmt.Sprintf(format, a...)}
	}
	// OpenDKIM splits the value at colons; the last field keeps the rest
	// (dkimf_db_datasplit).
	parts := strings.SplitN(l.value, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return KeyEntry{}, bad("key %q: want \"domain:selector:keyfile\", got %q", l.key, l.value)
	}
	e := KeyEntry{Name: l.key, Domain: parts[0], Selector: parts[1], Key: parts[2], Line: l.no}
	if e.Domain != "%" {
		dom, err := addr.NormalizeDomain(e.Domain)
		if err != nil {
			return KeyEntry{}, bad("key %q: domain %q: %v", l.key, e.Domain, err)
		}
		e.Domain = dom
	}
	if !selectorRE.MatchString(e.Selector) {
		return KeyEntry{}, bad("key %q: selector %q is not a DNS name", l.key, e.Selector)
	}
	// dkimf_add_signrequest replaces "%" only in a path that starts
	// with "/".
	e.perDomain = strings.HasPrefix(e.Key, "/") && strings.Contains(e.Key, "%")
	if strings.HasPrefix(e.Key, "./") || strings.HasPrefix(e.Key, "../") {
		e.Key = filepath.Join(filepath.Dir(d.Path), e.Key)
	}
	if d.Regex {
		re, err := globRE(e.Name, false)
		if err != nil {
			return KeyEntry{}, bad("key name pattern %q: %v", e.Name, err)
		}
		e.re = re
	}
	return e, nil
}

// selectorRE is a selector: dot-separated DNS labels (RFC 6376 §3.1).
var selectorRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$`)

// CheckSelector says whether s can be a selector.
func CheckSelector(s string) error {
	if !selectorRE.MatchString(s) {
		return fmt.Errorf("selector %q is not a DNS name", s)
	}
	return nil
}

// Lookup returns the entry for a key name as OpenDKIM finds it: the
// first line whose name is name (case-sensitive), or in a refile: table
// whose pattern matches it.
func (kt *KeyTable) Lookup(name string) (*KeyEntry, bool) {
	for i := range kt.Entries {
		e := &kt.Entries[i]
		if e.re != nil && e.re.MatchString(name) || e.re == nil && e.Name == name {
			return e, true
		}
	}
	return nil, false
}

// SignRule is one line of a SigningTable: which key signs mail whose
// From address matches.
type SignRule struct {
	// Pattern is the key of the line: in a refile: table a wildcard
	// pattern matched against "user@domain"; otherwise one of the
	// lookup keys "user@domain", "domain", "user@.domain", ".domain",
	// "user@*" or "*". Domains are in A-labels.
	Pattern string
	// KeyName names a KeyTable entry; "%" stands for the From domain.
	KeyName string
	// Signer is the optional i= (a "%" in it stands for the From
	// domain), "" for none.
	Signer string
	Line   int

	re *regexp.Regexp
}

// SigningTable chooses keys by the From address (opendkim.conf(5),
// SigningTable).
type SigningTable struct {
	Dataset Dataset
	Rules   []SignRule
	first   map[string]int // lower-cased key -> first rule (file: tables)
}

// ParseSigningTable reads a SigningTable.
func ParseSigningTable(r io.Reader, d Dataset) (*SigningTable, error) {
	lines, err := readLines(r, "SigningTable", d.Path)
	if err != nil {
		return nil, err
	}
	st := &SigningTable{Dataset: d, first: map[string]int{}}
	for _, l := range lines {
		bad := func(format string, a ...any) error {
			return &TableError{"SigningTable", d.Path, l.no, fmt.Sprintf(format, a...)}
		}
		keyName, signer, _ := strings.Cut(l.value, ":")
		if keyName == "" {
			return nil, bad("%q names no key", l.key)
		}
		rule := SignRule{Pattern: l.key, KeyName: keyName, Signer: signer, Line: l.no}
		if d.Regex {
			rule.Pattern = idnaPattern(rule.Pattern)
			if rule.re, err = globRE(rule.Pattern, true); err != nil {
				return nil, bad("pattern %q: %v", l.key, err)
			}
		} else {
			p, err := normalizeLookupKey(rule.Pattern)
			if err != nil {
				return nil, bad("%q: %v", l.key, err)
			}
			rule.Pattern = p
			if _, dup := st.first[strings.ToLower(p)]; !dup {
				st.first[strings.ToLower(p)] = len(st.Rules)
			}
		}
		st.Rules = append(st.Rules, rule)
	}
	return st, nil
}

// normalizeLookupKey puts the domain of a file: SigningTable key in
// A-labels: "user@domain", "domain", "user@.domain", ".domain",
// "user@*" or "*".
func normalizeLookupKey(k string) (string, error) {
	user, dom, hasAt := "", k, false
	if i := strings.LastIndexByte(k, '@'); i >= 0 {
		user, dom, hasAt = k[:i+1], k[i+1:], true
	}
	if dom == "*" && (hasAt || user == "") {
		return k, nil
	}
	dot := ""
	if rest, ok := strings.CutPrefix(dom, "."); ok {
		dot, dom = ".", rest
	}
	n, err := addr.NormalizeDomain(dom)
	if err != nil {
		return "", err
	}
	return user + dot + n, nil
}

// idnaPattern writes the non-ASCII labels of a refile: pattern's domain
// in A-labels, leaving labels with wildcards as they are.
func idnaPattern(p string) string {
	i := strings.LastIndexByte(p, '@')
	if i < 0 || isASCII(p[i+1:]) {
		return p
	}
	labels := strings.Split(p[i+1:], ".")
	for j, l := range labels {
		if isASCII(l) || strings.ContainsAny(l, "*+?()[]{}|^$\\") {
			continue
		}
		if a, err := addr.NormalizeDomain(l); err == nil {
			labels[j] = a
		}
	}
	return p[:i+1] + strings.Join(labels, ".")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Match returns the rules that apply to the From address user@domain
// (domain lower-case, in A-labels), in the order OpenDKIM applies them
// (dkimf_apply_signtable): all of them when multiple, else the first.
//
// A refile: table is walked in file order. Any other table is asked,
// in turn, for "user@domain", "domain", then for each parent domain
// "user@.parent" and ".parent", then "user@*" and "*"; each key finds
// its first line. Keys that are not ASCII are not found (OpenDKIM opens
// the table ASCII-only).
func (st *SigningTable) Match(user, domain string, multiple bool) []*SignRule {
	var out []*SignRule
	if st.Dataset.Regex {
		a := user + "@" + domain
		for i := range st.Rules {
			if st.Rules[i].re.MatchString(a) {
				out = append(out, &st.Rules[i])
				if !multiple {
					break
				}
			}
		}
		return out
	}
	for _, k := range lookupKeys(user, domain) {
		if !isASCII(k) {
			continue
		}
		if i, ok := st.first[strings.ToLower(k)]; ok {
			out = append(out, &st.Rules[i])
			if !multiple {
				break
			}
		}
	}
	return out
}

// lookupKeys lists the keys a file: SigningTable is asked for.
func lookupKeys(user, domain string) []string {
	keys := []string{user + "@" + domain, domain}
	for i := strings.IndexByte(domain, '.'); i >= 0; {
		p := domain[i:]
		keys = append(keys, user+"@"+p, p)
		j := strings.IndexByte(domain[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return append(keys, user+"@*", "*")
}

// readTable opens a dataset's file and parses it with parse.
func readTable[T any](d Dataset, parse func(io.Reader, Dataset) (T, error)) (T, error) {
	f, err := os.Open(d.Path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, d)
}
