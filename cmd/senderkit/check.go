package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/token"
)

// check validates a configuration file and reports every error.
func (c *cli) check(args []string) int {
	fs := c.newFlags("check", "[-c FILE] [-example]")
	var cf configFlags
	cf.register(fs)
	example := fs.Bool("example", false, "print the commented example configuration and exit")
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
	if problems > 0 {
		return c.errorf(exitFailure, "check", "%d error(s)", problems)
	}
	fmt.Fprintf(c.stdout, "%s: ok (%d scope(s), bounce domain %s)\n", name, len(cfg.Scopes), cfg.Bounce.Domain)
	return exitOK
}
