package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/senderkit/senderkit/internal/store/pgstore"
)

const storeUsage = `migrate [-c FILE] [-from sqlite:PATH] [-to postgres:DSN] [-relay NAME]

migrate copies a single host's SQLite store into an empty PostgreSQL
database, for a fleet of relays to share: names with the ids that tokens
in flight carry, sends, events with their ids and idempotency keys,
suppressions with their evidence, soft-bounce streaks and throttle state.
-from defaults to the configuration's store.path, -to to its store.dsn;
-relay names the host the copied history came from (default: the
configuration's store.relay, else the host name). Stop senderkit serve
and hold the bounce pipe (postfix defer_transports) while it runs, then
set store.dsn and start again.`

func (c *cli) store(args []string) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprintf(c.stderr, "usage: senderkit store %s\n", storeUsage)
		return exitUsage
	}
	fs := c.newFlags("store migrate", storeUsage)
	var cf configFlags
	cf.register(fs)
	from := fs.String("from", "", "source store, `sqlite:PATH`")
	to := fs.String("to", "", "destination, `postgres:DSN` (an empty database)")
	relay := fs.String("relay", "", "relay `name` for the copied history")
	pos, code, ok := parseOrUsage(fs, args[1:])
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := cf.load()
	if err != nil {
		return c.errorf(exitFailure, "store migrate", "%v", err)
	}
	src := cfg.StorePath()
	if *from != "" {
		p, ok := strings.CutPrefix(*from, "sqlite:")
		if !ok || p == "" {
			return c.errorf(exitUsage, "store migrate", "-from %q: want sqlite:PATH", *from)
		}
		src = cfg.Path(p)
	}
	dsn := cfg.Store.DSN
	if *to != "" {
		d, ok := strings.CutPrefix(*to, "postgres:")
		if !ok || d == "" {
			return c.errorf(exitUsage, "store migrate", "-to %q: want postgres:DSN", *to)
		}
		dsn = d
	}
	if dsn == "" {
		return c.errorf(exitUsage, "store migrate", "no destination: pass -to postgres:DSN or set store.dsn")
	}
	if *relay == "" {
		*relay = cfg.RelayName()
	}
	ctx, cancel := context.WithTimeout(c.ctx, storeTimeout)
	defer cancel()
	dst, err := pgstore.Open(ctx, dsn, pgstore.Options{Timeout: cfg.Store.BusyTimeout.D(), Relay: *relay})
	if err != nil {
		return c.errorf(exitFailure, "store migrate", "%v", err)
	}
	defer dst.Close()
	n, err := pgstore.CopyFromSQLite(ctx, dst, src, *relay)
	if err != nil {
		return c.errorf(exitFailure, "store migrate", "%v", err)
	}
	fmt.Fprintf(c.stdout, "copied %s into PostgreSQL at %s: %s (history from relay %s)\n", src, dst.Where(), n, *relay)
	return exitOK
}
