package dkim

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/net/publicsuffix"
)

// Options say where the tables are and how to apply them.
type Options struct {
	// KeyTable and SigningTable are OpenDKIM datasets ("refile:/path",
	// "file:/path" or "/path"); both or neither.
	KeyTable, SigningTable string
	// Dir is where relative dataset paths are taken from.
	Dir string
	// Multiple applies every matching SigningTable rule, not only the
	// first (OpenDKIM's MultipleSignatures).
	Multiple bool
	// ProviderKeys are key names (as the SigningTable writes them) whose
	// signature need not align with the From domain: the provider's own
	// signature on its customers' mail.
	ProviderKeys []string
	// Log says, once, whether OpenSSL or Go makes RSA signatures, and
	// warns when OpenSSL fails; nil: slog.Default().
	Log *slog.Logger
}

// ErrNotAligned is returned when a matching rule's d= does not align
// with the From domain and its key is not a provider key.
var ErrNotAligned = errors.New("dkim: signing domain does not align with the From domain")

// Set is a loaded signing configuration: the tables and the keys they
// name. It is immutable and safe for concurrent use; a reload builds a
// new Set.
type Set struct {
	keys     *KeyTable
	signing  *SigningTable
	multiple bool
	provider map[string]bool
	static   map[string]crypto.Signer // key file path or inline key -> key
	dynamic  sync.Map                 // key file path with "%" filled in -> crypto.Signer
	files    []string
	log      *slog.Logger
}

// Load reads both tables and every key they name that does not depend
// on the From domain, and refuses rules that could sign without
// alignment. Any error leaves nothing loaded.
func Load(o Options) (*Set, error) {
	if (o.KeyTable == "") != (o.SigningTable == "") {
		return nil, errors.New("dkim: key_table and signing_table go together: set both or neither")
	}
	if o.KeyTable == "" {
		return nil, nil
	}
	kd, err := ParseDataset(o.KeyTable, o.Dir)
	if err != nil {
		return nil, fmt.Errorf("dkim: KeyTable: %w", err)
	}
	sd, err := ParseDataset(o.SigningTable, o.Dir)
	if err != nil {
		return nil, fmt.Errorf("dkim: SigningTable: %w", err)
	}
	kt, err := readTable(kd, ParseKeyTable)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	st, err := readTable(sd, ParseSigningTable)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	s := &Set{keys: kt, signing: st, multiple: o.Multiple, provider: map[string]bool{},
		static: map[string]crypto.Signer{}, files: []string{kd.Path, sd.Path}, log: o.Log}
	for _, p := range o.ProviderKeys {
		if _, ok := kt.Lookup(p); !ok {
			return nil, fmt.Errorf("dkim: provider key %q is not in KeyTable %s", p, kd.Path)
		}
		s.provider[p] = true
	}
	var errs []error
	for i := range st.Rules {
		if err := s.check(&st.Rules[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Strings(s.files)
	s.files = slices.Compact(s.files)
	return s, nil
}

// check loads the key of a rule when it does not depend on the From
// domain, and refuses the rule if a From address it matches could get a
// signature that does not align.
func (s *Set) check(r *SignRule) error {
	bad := func(format string, a ...any) error {
		return &TableError{"SigningTable", s.signing.Dataset.Path, r.Line, fmt.Sprintf(format, a...)}
	}
	if r.KeyName == "%" {
		// The key named after the From domain: any entry may be it, and
		// its d= is checked per message.
		for i := range s.keys.Entries {
			e := &s.keys.Entries[i]
			if err := s.prepare(e); err != nil {
				return bad("%%: %v", err)
			}
			if e.re == nil && strings.Contains(e.Name, ".") && e.Domain != "%" && !s.provider[e.Name] && !Aligned(e.Domain, strings.ToLower(e.Name)) {
				return bad("%% names key %q after the From domain, but it signs as d=%s, which does not align with %s (RFC 7489 §3.1.1)",
					e.Name, e.Domain, e.Name)
			}
		}
		return nil
	}
	e, ok := s.keys.Lookup(r.KeyName)
	if !ok {
		return bad("key %q is not in KeyTable %s", r.KeyName, s.keys.Dataset.Path)
	}
	if err := s.prepare(e); err != nil {
		return bad("key %q: %v", r.KeyName, err)
	}
	if e.Domain == "%" || s.provider[r.KeyName] {
		return nil
	}
	scope, any := r.fromDomains(s.signing.Dataset.Regex)
	switch {
	case !any && scope == "":
		return nil // matches no address
	case any:
		return bad("%q can match any From domain, but key %q signs as d=%s, which aligns with few of them; "+
			"list %q in milter.provider_keys if it is the provider's signature", r.Pattern, r.KeyName, e.Domain, r.KeyName)
	case !Aligned(e.Domain, scope):
		return bad("%q matches From domain %s, but key %q signs as d=%s, which does not align with it (RFC 7489 §3.1.1); "+
			"list %q in milter.provider_keys if it is the provider's signature", r.Pattern, scope, r.KeyName, e.Domain, r.KeyName)
	}
	return nil
}

// staticDir is the part of a key path before its first "%": the
// directory to watch for such keys.
func staticDir(p string) string {
	d := filepath.Dir(p[:strings.IndexByte(p, '%')+1])
	return d
}

// fromDomains says which From domains a rule can match: every one
// (any), or scope and, when the rule covers subdomains, those of scope,
// which share its organisational domain.
func (r *SignRule) fromDomains(regex bool) (scope string, any bool) {
	p := r.Pattern
	dom := p
	if i := strings.LastIndexByte(p, '@'); i >= 0 {
		dom = p[i+1:]
	} else if regex {
		// "*" and the like match the whole address; a pattern without
		// '@' or anything that could stand for one matches nothing.
		return "", strings.ContainsAny(p, "*+?()[]{}|^$\\")
	}
	if regex {
		if rest, ok := strings.CutPrefix(dom, "*."); ok {
			dom = "." + rest
		}
		if strings.ContainsAny(dom, "*+?()[]{}|^$\\") {
			return "", true
		}
	} else if dom == "*" {
		return "", true
	}
	if sub, ok := strings.CutPrefix(dom, "."); ok {
		// Subdomains of a public suffix belong to many organisations.
		if ps, _ := publicsuffix.PublicSuffix(sub); ps == sub {
			return "", true
		}
		return sub, false
	}
	return strings.ToLower(dom), false
}

// prepare loads an entry's key when it does not depend on the From
// domain, and notes what to watch for changes.
func (s *Set) prepare(e *KeyEntry) error {
	if _, ok := s.static[e.Key]; ok {
		return nil
	}
	var k crypto.Signer
	var err error
	switch {
	case e.perDomain:
		s.files = append(s.files, staticDir(e.Key))
		return nil
	case e.IsPath():
		s.files = append(s.files, e.Key)
		k, err = LoadKeyFile(e.Key)
	default:
		k, err = ParsePrivateKey([]byte(e.Key))
	}
	if err != nil {
		return fmt.Errorf("KeyTable line %d: %v", e.Line, err)
	}
	s.static[e.Key] = signerOf(k, s.log)
	return nil
}

// Files are the files and directories whose change calls for a reload.
func (s *Set) Files() []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s.files...)
}

// Multiple reports whether every matching rule applies.
func (s *Set) Multiple() bool { return s.multiple }

// Datasets names the two tables.
func (s *Set) Datasets() (keyTable, signingTable Dataset) {
	return s.keys.Dataset, s.signing.Dataset
}

// Choice is one signature to make.
type Choice struct {
	KeyName  string // as the SigningTable names it ("%" filled in)
	Domain   string // d=
	Selector string // s=
	Identity string // i=, "" for none
	Key      crypto.Signer
	Provider bool // a provider key: need not align
	Aligned  bool
}

// Step explains what one matching SigningTable rule led to.
type Step struct {
	Rule   SignRule
	Choice Choice    // Key is nil when the key could not be had
	Entry  *KeyEntry // nil when the key name is unknown
	Err    error     // why the rule cannot be applied
}

// Select chooses the signatures for mail whose From address is
// user@domain (domain lower-case, in A-labels), following the
// SigningTable, and explains the choice. An error means a rule matched
// but cannot be applied (unknown key, unreadable key, no alignment):
// OpenDKIM tempfails such mail, and so does senderkit, rather than send
// it without the signature the tables promise.
func (s *Set) Select(user, domain string) ([]Choice, []Step, error) {
	if s == nil {
		return nil, nil, nil
	}
	var choices []Choice
	var steps []Step
	var errs []error
	seen := map[string]bool{}
	for _, r := range s.signing.Match(user, domain, s.multiple) {
		st := s.apply(*r, user, domain)
		steps = append(steps, st)
		if st.Err != nil {
			errs = append(errs, st.Err)
			continue
		}
		// Two rules naming the same key would sign twice alike.
		if k := st.Choice.Domain + "/" + st.Choice.Selector; !seen[k] {
			seen[k] = true
			choices = append(choices, st.Choice)
		}
	}
	return choices, steps, errors.Join(errs...)
}

func (s *Set) apply(r SignRule, user, domain string) Step {
	st := Step{Rule: r}
	name := r.KeyName
	if name == "%" {
		name = domain
	}
	st.Choice.KeyName = name
	e, ok := s.keys.Lookup(name)
	if !ok {
		st.Err = fmt.Errorf("dkim: SigningTable %s:%d references key %q, which is not in KeyTable %s",
			s.signing.Dataset.Path, r.Line, name, s.keys.Dataset.Path)
		return st
	}
	st.Entry = e
	d := e.Domain
	if d == "%" {
		d = domain
	}
	st.Choice.Domain, st.Choice.Selector = d, e.Selector
	st.Choice.Provider = s.provider[name]
	st.Choice.Aligned = Aligned(d, domain)
	if r.Signer != "" {
		// RFC 6376 §3.5: the domain of i= is d= or a subdomain of it;
		// OpenDKIM drops an i= that is not.
		i := strings.ReplaceAll(r.Signer, "%", domain)
		if at := strings.LastIndexByte(i, '@'); at >= 0 {
			id := strings.ToLower(i[at+1:])
			if id == d || strings.HasSuffix(id, "."+d) {
				st.Choice.Identity = i
			}
		}
	}
	if !st.Choice.Aligned && !st.Choice.Provider {
		st.Err = fmt.Errorf("%w: SigningTable %s:%d chooses key %q, d=%s, for From domain %s",
			ErrNotAligned, s.signing.Dataset.Path, r.Line, name, d, domain)
		return st
	}
	k, err := s.key(e, d)
	if err != nil {
		st.Err = fmt.Errorf("dkim: key %q (KeyTable %s:%d): %v", name, s.keys.Dataset.Path, e.Line, err)
		return st
	}
	st.Choice.Key = k
	return st
}

// key returns the private key of an entry; a "%" in its path stands for
// the signing domain d (OpenDKIM's dkimf_add_signrequest).
func (s *Set) key(e *KeyEntry, d string) (crypto.Signer, error) {
	if k, ok := s.static[e.Key]; ok {
		return k, nil
	}
	if !e.perDomain {
		return nil, fmt.Errorf("key %s was not loaded", e.Key) // cannot happen: Load loads them
	}
	p := strings.ReplaceAll(e.Key, "%", d)
	if k, ok := s.dynamic.Load(p); ok {
		return k.(crypto.Signer), nil
	}
	k, err := LoadKeyFile(p)
	if err != nil {
		return nil, err
	}
	// Two messages may load the same key at once: one signer is kept,
	// the other is garbage, and its EVP_PKEY is freed with it.
	got, _ := s.dynamic.LoadOrStore(p, signerOf(k, s.log))
	return got.(crypto.Signer), nil
}

// Record is the DNS TXT record of one KeyTable entry's key.
type Record struct {
	Entry    *KeyEntry
	Name     string // selector._domainkey.domain
	TXT      string
	Describe string // "RSA 2048"
	Err      error  // why there is none
}

// Records lists the TXT records to publish for the KeyTable's keys that
// Load read (those that do not depend on the From domain).
func (s *Set) Records() []Record {
	var out []Record
	for i := range s.keys.Entries {
		e := &s.keys.Entries[i]
		r := Record{Entry: e, Name: RecordName(e.Selector, e.Domain)}
		k, ok := s.static[e.Key]
		switch {
		case e.Domain == "%" || e.perDomain:
			r.Err = errors.New("depends on the From domain; run dkim keygen per domain")
		case !ok:
			r.Err = errors.New("not used by the SigningTable, not read")
		default:
			r.TXT, r.Err = TXTRecord(k)
			r.Describe = Describe(k)
		}
		out = append(out, r)
	}
	return out
}
