package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/milter/dkim"
)

func (c *cli) dkim(args []string) int {
	usage := func() int {
		fmt.Fprint(c.stderr, `usage: senderkit dkim COMMAND

commands:
  keygen   write a new private key (0600) and print its DNS TXT record
  explain  show which keys, d= and s= a From address gets, and why
  dns      print the DNS TXT record of every key the KeyTable names
`)
		return exitUsage
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "keygen":
		return c.dkimKeygen(args[1:])
	case "explain":
		return c.dkimExplain(args[1:])
	case "dns":
		return c.dkimDNS(args[1:])
	case "-h", "--help", "help":
		usage()
		return exitOK
	}
	fmt.Fprintf(c.stderr, "senderkit dkim: unknown command %q\n", args[0])
	return usage()
}

func (c *cli) dkimKeygen(args []string) int {
	fs := c.newFlags("dkim keygen", "-d DOMAIN -s SELECTOR [-a rsa|ed25519] [-b BITS] [-o FILE]")
	domain := fs.String("d", "", "the signing `domain` (d=)")
	selector := fs.String("s", "", "the `selector` (s=)")
	alg := fs.String("a", "rsa", "key `algorithm`: rsa or ed25519 (RFC 8463)")
	bits := fs.Int("b", 2048, "RSA key size in `bits`")
	out := fs.String("o", "", "private key `file` to write (default DOMAIN.SELECTOR.pem)")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 || *domain == "" || *selector == "" {
		fs.Usage()
		return exitUsage
	}
	d, err := addr.NormalizeDomain(*domain)
	if err != nil {
		return c.errorf(exitUsage, "dkim keygen", "domain: %v", err)
	}
	if err := dkim.CheckSelector(*selector); err != nil {
		return c.errorf(exitUsage, "dkim keygen", "%v", err)
	}
	if *out == "" {
		*out = d + "." + *selector + ".pem"
	}
	k, err := dkim.GenerateKey(*alg, *bits)
	if err != nil {
		return c.errorf(exitUsage, "dkim keygen", "%v", err)
	}
	pemBytes, err := dkim.MarshalPrivateKey(k)
	if err != nil {
		return c.errorf(exitFailure, "dkim keygen", "%v", err)
	}
	// O_EXCL: never overwrite a key that may be published already.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return c.errorf(exitFailure, "dkim keygen", "%v", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return c.errorf(exitFailure, "dkim keygen", "%v", err)
	}
	if err := f.Close(); err != nil {
		return c.errorf(exitFailure, "dkim keygen", "%v", err)
	}
	txt, err := dkim.TXTRecord(k)
	if err != nil {
		return c.errorf(exitFailure, "dkim keygen", "%v", err)
	}
	abs, _ := filepath.Abs(*out)
	name := dkim.RecordName(*selector, d)
	fmt.Fprintf(c.stdout, "; %s key written to %s (mode 0600; chown it to the user senderkit runs as)\n", dkim.Describe(k), abs)
	fmt.Fprintf(c.stdout, "; Publish this record in DNS:\n%s\n", dkim.ZoneRecord(name, txt))
	fmt.Fprintf(c.stdout, "; KeyTable line:\n; %s %s:%s:%s\n", name, d, *selector, abs)
	fmt.Fprintf(c.stdout, "; SigningTable line (refile:):\n; *@%s %s\n", d, name)
	return exitOK
}

func (c *cli) loadSigning(cmd string, cf configFlags) (*dkim.Set, int) {
	cfg, err := cf.load()
	if err != nil {
		return nil, c.errorf(exitFailure, cmd, "%v", err)
	}
	s, err := loadDKIM(cfg, nil)
	if err != nil {
		return nil, c.errorf(exitFailure, cmd, "%v", err)
	}
	if s == nil {
		return nil, c.errorf(exitFailure, cmd, "the configuration has no milter.key_table and milter.signing_table: nothing is signed")
	}
	return s, exitOK
}

func (c *cli) dkimExplain(args []string) int {
	fs := c.newFlags("dkim explain", "[-c FILE] ADDRESS")
	var cf configFlags
	cf.register(fs)
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	s, code := c.loadSigning("dkim explain", cf)
	if s == nil {
		return code
	}
	a := strings.TrimSpace(pos[0])
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	i := strings.LastIndexByte(a, '@')
	if i <= 0 {
		return c.errorf(exitUsage, "dkim explain", "%q is not an address", pos[0])
	}
	user := a[:i]
	domain, err := addr.NormalizeDomain(a[i+1:])
	if err != nil {
		return c.errorf(exitUsage, "dkim explain", "%q: %v", pos[0], err)
	}
	explain(c.stdout, s, user, domain)
	return exitOK
}

// explain writes what Select decides for user@domain, step by step.
func explain(w io.Writer, s *dkim.Set, user, domain string) {
	kt, st := s.Datasets()
	multi := "no"
	if s.Multiple() {
		multi = "yes"
	}
	fmt.Fprintf(w, "From %s@%s (domain %s)\n", user, domain, domain)
	fmt.Fprintf(w, "KeyTable %s\nSigningTable %s, multiple signatures: %s\n", kt, st, multi)
	choices, steps, err := s.Select(user, domain)
	if len(steps) == 0 {
		fmt.Fprintf(w, "No SigningTable line matches: mail from this address is not signed.\n")
		return
	}
	for _, step := range steps {
		fmt.Fprintf(w, "  SigningTable line %d %q -> key %q\n", step.Rule.Line, step.Rule.Pattern, step.Choice.KeyName)
		if e := step.Entry; e != nil {
			key := e.Key
			if !e.IsPath() {
				key = "(the key itself)"
			}
			fmt.Fprintf(w, "    KeyTable line %d: d=%s s=%s key %s\n", e.Line, step.Choice.Domain, step.Choice.Selector, key)
		}
		switch {
		case step.Err != nil && errors.Is(step.Err, dkim.ErrNotAligned):
			fmt.Fprintf(w, "    refused: d=%s does not align with %s, and %q is not in milter.provider_keys\n",
				step.Choice.Domain, domain, step.Choice.KeyName)
		case step.Err != nil:
			fmt.Fprintf(w, "    refused: %v\n", step.Err)
		default:
			why := "aligned with " + domain
			if !step.Choice.Aligned {
				why = "the provider's signature (milter.provider_keys), not aligned with " + domain
			}
			id := ""
			if step.Choice.Identity != "" {
				id = " i=" + step.Choice.Identity
			}
			fmt.Fprintf(w, "    sign: d=%s s=%s%s a=%s (%s), %s\n", step.Choice.Domain, step.Choice.Selector, id,
				dkim.Algorithm(step.Choice.Key), dkim.Describe(step.Choice.Key), why)
		}
	}
	if err != nil {
		fmt.Fprintf(w, "Mail from this address is tempfailed until this is fixed: %v\n", err)
		return
	}
	fmt.Fprintf(w, "%d signature(s):", len(choices))
	for _, ch := range choices {
		fmt.Fprintf(w, " d=%s s=%s;", ch.Domain, ch.Selector)
	}
	fmt.Fprintln(w)
}

func (c *cli) dkimDNS(args []string) int {
	fs := c.newFlags("dkim dns", "[-c FILE]")
	var cf configFlags
	cf.register(fs)
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fs.Usage()
		return exitUsage
	}
	s, code := c.loadSigning("dkim dns", cf)
	if s == nil {
		return code
	}
	for _, r := range s.Records() {
		if r.Err != nil {
			fmt.Fprintf(c.stdout, "; KeyTable line %d, key %q: %v\n", r.Entry.Line, r.Entry.Name, r.Err)
			continue
		}
		fmt.Fprintf(c.stdout, "; KeyTable line %d, key %q (%s)\n%s\n", r.Entry.Line, r.Entry.Name, r.Describe, dkim.ZoneRecord(r.Name, r.TXT))
	}
	return exitOK
}
