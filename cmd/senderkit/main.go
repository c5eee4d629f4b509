// Command senderkit turns a Postfix into a well-behaved bulk sender: one
// binary for the milter, the policy server, the bounce pipe, the
// unsubscribe endpoint and the administrator's tools.
//
//	senderkit serve        run the milter, policy server and unsubscribe endpoint
//	senderkit bouncepipe   read one returned message from Postfix's pipe(8)
//	senderkit suppress     list, show, add, remove, import and export suppressions
//	senderkit report       sender reports
//	senderkit scope        scope health, pause and resume, warm-up progress
//	senderkit store        copy a single host's store into PostgreSQL (store migrate)
//	senderkit dkim         DKIM keys
//	senderkit check        validate a configuration file
//	senderkit version      print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	_ "time/tzdata" // warm-up time zones work where the system has no zoneinfo

	gomilter "github.com/d--j/go-milter"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes (sysexits.h, which Postfix's pipe(8) understands).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 64 // EX_USAGE
	exitTempFail = 75 // EX_TEMPFAIL: Postfix keeps the message and retries
)

// cli is one run of the program: its streams and context.
type cli struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	summary string
	run     func(c *cli, args []string) int
}

func commands() map[string]command {
	return map[string]command{
		"serve":      {"run the milter, policy server and unsubscribe endpoint", (*cli).serve},
		"bouncepipe": {"read one returned message from Postfix's pipe(8)", (*cli).bouncepipe},
		"suppress":   {"list, show, add, remove, import and export suppressions", (*cli).suppress},
		"report":     {"sender reports", (*cli).report},
		"scope":      {"scope health, pause and resume, warm-up progress", (*cli).scope},
		"store":      {"copy a single host's store into PostgreSQL for a fleet", (*cli).store},
		"dkim":       {"DKIM keys", (*cli).dkim},
		"check":      {"validate a configuration file", (*cli).check},
		"version":    {"print the version", (*cli).version},
	}
}

// milterWarnings is the log of the running milter, for go-milter's own
// warnings (a connection lost mid-command, an unknown command), which
// would otherwise go to the standard library's log, unstructured.
var milterWarnings atomic.Pointer[slog.Logger]

func main() {
	// The store holds recipients' addresses and the key directory holds
	// secrets: nothing senderkit creates is for other users to read.
	syscall.Umask(0o027)
	gomilter.LogWarning = func(format string, v ...any) {
		if l := milterWarnings.Load(); l != nil {
			l.Warn("milter protocol: " + fmt.Sprintf(format, v...))
		} else {
			fmt.Fprintf(os.Stderr, "senderkit: milter protocol: "+format+"\n", v...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		c.usage(cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "senderkit: unknown command %q\n", args[0])
		c.usage(cmds)
		return exitUsage
	}
	return cmd.run(c, args[1:])
}

func (c *cli) usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(c.stderr, "usage: senderkit COMMAND [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(c.stderr, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(c.stderr, "\nsenderkit COMMAND -h describes a command's flags.")
}

// errorf prints "senderkit CMD: message" and returns code.
func (c *cli) errorf(code int, cmd, format string, a ...any) int {
	fmt.Fprintf(c.stderr, "senderkit %s: %s\n", cmd, fmt.Sprintf(format, a...))
	return code
}

// notYet is what a command that a later issue fills in says.
func (c *cli) notYet(cmd, what string, code int) int {
	return c.errorf(code, cmd, "%s is not built yet; it arrives with %s", cmd, what)
}

// newFlags makes a flag set that prints its usage on stderr.
func (c *cli) newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("senderkit "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: senderkit %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args allowing flags after positional arguments
// ("suppress add bob@example.com -scope acme").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseOrUsage parses and maps failures to exit codes; ok is false when
// the caller should return code.
func parseOrUsage(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	pos, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, exitOK, false
	}
	if err != nil {
		return nil, exitUsage, false
	}
	return pos, 0, true
}

func (c *cli) version(args []string) int {
	fmt.Fprintf(c.stdout, "senderkit %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

func joinQuoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
