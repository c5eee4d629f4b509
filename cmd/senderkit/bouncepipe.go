package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/senderkit/senderkit/bouncepipe"
	"github.com/senderkit/senderkit/bouncepipe/intake"
	"github.com/senderkit/senderkit/internal/logging"
	"github.com/senderkit/senderkit/internal/token"
)

const bouncepipeUsage = `[-c FILE] [-queue-id ID] SENDER RECIPIENT    (as Postfix's pipe(8) runs it)
       senderkit bouncepipe classify [-c FILE] FILE...

Postfix's master.cf runs it for the bounce domain (contrib/postfix/bouncepipe.master.cf):
  senderkit-bounce unix - n n - 4 pipe
    flags=Rq user=senderkit size=52428800
    argv=/usr/local/bin/senderkit bouncepipe -c /etc/senderkit/senderkit.toml -queue-id ${queue_id} ${sender} ${recipient}

The message is read from standard input. The exit status is 0 when the
message was handled (recorded, forwarded to the role address, or kept in
quarantine) and 75 (EX_TEMPFAIL) when it should be tried again later: no
status ever makes Postfix bounce a bounce.

classify prints how each saved message would be read, one JSON line per
recipient record, without touching the store. A FILE that is a saved
mailbox (mbox) is read message by message.`

// bouncepipeTimeout bounds one run; Postfix's pipe(8) has its own
// (command_time_limit, default 1000s).
const bouncepipeTimeout = 2 * time.Minute

func (c *cli) bouncepipe(args []string) (status int) {
	if len(args) > 0 && args[0] == "classify" {
		return c.classify(args[1:])
	}
	// pipe(8) takes any status but 0 and 75 (and a few others) as a
	// permanent failure and bounces the bounce: a bug must not do that.
	defer func() {
		if r := recover(); r != nil {
			status = c.tempfail("internal error: %v\n%s", r, debug.Stack())
		}
	}()
	fs := c.newFlags("bouncepipe", bouncepipeUsage)
	var cf configFlags
	cf.register(fs)
	queueID := fs.String("queue-id", "", "Postfix's queue ID of the message (${queue_id} in master.cf), for the log")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		// A broken master.cf line: keep the mail while the admin looks.
		return exitTempFail
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitTempFail
	}
	_ = code
	env := intake.Envelope{Sender: pos[0], Recipient: pos[1]}
	// pipe(8) shows what we write only when we fail: warnings and errors
	// go there; every decision is also an event in the store.
	logs := logging.New(c.stderr, "text")
	cfg, err := cf.load()
	if err != nil {
		return c.tempfail("configuration: %v", err)
	}
	// Postfix writes what the pipe prints into its log line for the
	// delivery, cut short: warnings and errors go there, and the one-line
	// summary below; details only when log.levels.bouncepipe asks.
	lc := cfg.Log
	if lc.Levels["bouncepipe"] == "" {
		lc.Levels = map[string]string{"bouncepipe": "warn"}
	}
	logs.Apply(lc)
	log := logs.For("bouncepipe")
	if *queueID != "" {
		log = log.With("queue_id", *queueID)
	}
	ctx, cancel := context.WithTimeout(c.ctx, bouncepipeTimeout)
	defer cancel()

	f, err := spool(c.stdin)
	if err != nil {
		return c.tempfail("%v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	keys, err := token.LoadKeyring(cfg.KeyDir())
	if err != nil {
		return c.tempfail("%v", err)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return c.tempfail("%v", err)
	}
	defer st.Close()
	in := &intake.Intake{Config: cfg, Keys: keys, Store: st, Log: log}
	out, err := in.Process(ctx, env, f)
	if err != nil {
		if !errors.Is(err, intake.ErrTemporary) {
			log.Error("unexpected failure; Postfix will try again", "err", err)
		}
		return c.tempfail("%v", err)
	}
	log.Debug("handled", "kind", out.Kind, "token", out.Token, "action", out.Action, "address", out.Recipient,
		"scope", out.Scope, "events", out.Events, "duplicates", out.Duplicates)
	summary := fmt.Sprintf("%s: %s", out.Kind, out.Action)
	if out.Recipient != "" {
		summary += " " + out.Recipient
	}
	if out.Scope != "" {
		summary += " in scope " + out.Scope
	}
	fmt.Fprintf(c.stdout, "%s (token %s)\n", summary, out.Token)
	return exitOK
}

// tempfail reports a failure that Postfix should retry: exit 75.
func (c *cli) tempfail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "senderkit bouncepipe: %s; Postfix will try again\n", fmt.Sprintf(format, a...))
	return exitTempFail
}

// spool saves the message to a temporary file: the message is read more
// than once (hash, parse, forward or quarantine) and may be large, so it
// is not kept in memory.
func spool(r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp("", "senderkit-bounce-*.eml")
	if err != nil {
		return nil, fmt.Errorf("spool message: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("read message from standard input: %w", err)
	}
	return f, nil
}

// classify prints how the bounce pipe reads saved messages, one JSON
// object per recipient record, without touching the store. Tokens are
// verified with the configured key ring when it can be read.
func (c *cli) classify(args []string) int {
	fs := c.newFlags("bouncepipe classify", "[-c FILE] [-recipient ADDRESS] FILE...")
	var cf configFlags
	cf.register(fs)
	rcpt := fs.String("recipient", "", "the envelope `address` the messages came to (a VERP or unsubscribe address carries a token)")
	files, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := cf.load()
	if err != nil {
		return c.errorf(exitFailure, "bouncepipe classify", "%v", err)
	}
	keys, err := token.LoadKeyring(cfg.KeyDir())
	if err != nil {
		fmt.Fprintf(c.stderr, "senderkit bouncepipe classify: tokens are not verified (%v)\n", err)
	}
	status := func(cand bouncepipe.Candidate) string {
		if keys == nil {
			return bouncepipe.TokenNone
		}
		_, err := keys.Decode(cand.Token)
		switch {
		case err == nil:
			return bouncepipe.TokenVerified
		case errors.Is(err, token.ErrForged):
			return bouncepipe.TokenForged
		}
		return bouncepipe.TokenNone
	}
	opt := bouncepipe.Options{
		Recipient:         *rcpt,
		BounceDomain:      cfg.Bounce.Domain,
		VERPPrefix:        cfg.Bounce.VERPPrefix,
		UnsubscribePrefix: cfg.Bounce.UnsubscribePrefix,
		UnsubscribeURL:    cfg.HTTP.BaseURL,
	}
	code = exitOK
	for _, name := range files {
		if err := classifyFile(c.stdout, name, opt, status); err != nil {
			fmt.Fprintf(c.stderr, "senderkit bouncepipe classify: %v\n", err)
			code = exitFailure
		}
	}
	return code
}

// classifyFile prints the records of every message in file name: one, or
// each of a saved mailbox's (bouncepipe.SplitMbox). A file that is not a
// mailbox is read as it streams, as the bounce pipe reads its input.
func classifyFile(w io.Writer, name string, opt bouncepipe.Options, status func(bouncepipe.Candidate) string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	msgs := []io.Reader{br}
	if start, _ := br.Peek(5); string(start) == "From " {
		b, err := io.ReadAll(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		msgs = msgs[:0]
		for _, m := range bouncepipe.SplitMbox(b) {
			msgs = append(msgs, bytes.NewReader(m))
		}
	}
	for _, r := range msgs {
		rep, err := bouncepipe.Parse(r, opt)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := bouncepipe.ClassifyJSON(w, name, rep, status); err != nil {
			return err
		}
	}
	return nil
}
