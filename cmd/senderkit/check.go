package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/doctor"
	"github.com/senderkit/senderkit/internal/token"
)

// check validates a configuration file and reports every error; with
// -dns it then runs the DNS and compliance doctor.
func (c *cli) check(args []string) int {
	fs := c.newFlags("check", "[-c FILE] [-example] [-dns]")
	var cf configFlags
	cf.register(fs)
	example := fs.Bool("example", false, "print the commented example configuration and exit")
	dns := fs.Bool("dns", false, "then check DNS (SPF, DKIM, DMARC, reverse DNS, MX) and the unsubscribe URL as the world sees them")
	rootCA := fs.String("testing__root-ca", "", "for tests only: trust only the CA certificates in this PEM `file` for the unsubscribe URL")
	if _, code, ok := parseOrUsage(fs, args); !ok {
		return code
	}
	if *example {
		b, err := conf.Example()
		if err != nil {
			return c.errorf(exitFailure, "check", "%v", err)
		}
		c.stdout.Write(b)
		return exitOK
	}
	cfg, err := cf.load()
	if err != nil {
		var errs conf.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(c.stderr, e)
			}
			return c.errorf(exitFailure, "check", "%d error(s)", len(errs))
		}
		return c.errorf(exitFailure, "check", "%v", err)
	}
	name := cfg.File()
	if name == "" {
		name = "built-in default configuration"
	}
	problems := 0
	if _, err := os.Stat(cfg.KeyDir()); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.stdout, "note: token key directory %s does not exist yet; senderkit serve creates it\n", cfg.KeyDir())
	} else if _, err := token.LoadKeyring(cfg.KeyDir()); err != nil {
		fmt.Fprintf(c.stderr, "%s: tokens.key_dir: %v\n", name, err)
		problems++
	}
	// The DKIM tables and every key they name, as serve would load them.
	if cfg.Milter.KeyTable != "" {
		if _, err := loadDKIM(cfg, nil); err != nil {
			fmt.Fprintf(c.stderr, "%s: milter.key_table / signing_table: %v\n", name, err)
			problems++
		}
	}
	if problems > 0 {
		return c.errorf(exitFailure, "check", "%d error(s)", problems)
	}
	fmt.Fprintf(c.stdout, "%s: ok (%d scope(s), bounce domain %s)\n", name, len(cfg.Scopes), cfg.Bounce.Domain)
	if *dns {
		return c.checkDNS(cfg, *rootCA)
	}
	return exitOK
}

// doctorTimeout bounds a whole run of the doctor.
const doctorTimeout = 5 * time.Minute

// checkDNS runs the doctor and prints its report; any failure makes the
// exit status non-zero.
func (c *cli) checkDNS(cfg *conf.Config, rootCAFile string) int {
	o := doctor.Options{Config: cfg, HELOName: cfg.Check.HELOName}
	var err error
	if o.DKIM, err = loadDKIM(cfg, nil); err != nil {
		return c.errorf(exitFailure, "check", "%v", err)
	}
	if o.Resolver, err = doctor.NewResolver(cfg.Check.ResolverAddr(), cfg.Check.Timeout.D()); err != nil {
		return c.errorf(exitFailure, "check", "%v; set [check] resolver", err)
	}
	if rootCAFile != "" {
		pem, err := os.ReadFile(rootCAFile)
		if err != nil {
			return c.errorf(exitUsage, "check", "%v", err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return c.errorf(exitUsage, "check", "%s holds no PEM certificate", rootCAFile)
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, doctorTimeout)
	defer cancel()
	if o.HELOName == "" {
		o.HELOName = postfixHELOName(ctx)
	}
	rep := doctor.Run(ctx, o)
	rep.Write(c.stdout)
	if n := rep.Count(doctor.Fail); n > 0 {
		return c.errorf(exitFailure, "check", "%d check(s) failed", n)
	}
	return exitOK
}

// postfixHELOName asks Postfix for the name its SMTP client says in
// EHLO (smtp_helo_name, $myhostname by default), else returns the
// machine's host name when it is fully qualified, else "".
func postfixHELOName(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "postconf", "-xh", "smtp_helo_name").Output(); err == nil {
		if name := strings.TrimSpace(string(out)); name != "" {
			return name
		}
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") {
		return h
	}
	return ""
}
