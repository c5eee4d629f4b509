package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/suppcsv"
)

const suppressUsage = `list|show|add|remove|import|export ...

  list   [-scope S] [-reason R] [-since 2026-11-01|7d] [-all]
  show   ADDRESS [-scope S]
  add    ADDRESS|*@DOMAIN -scope S|* [-stream X] [-reason manual] [-expires 30d] [-note TEXT]
  remove ADDRESS|*@DOMAIN -scope S|* [-stream X] [-note TEXT]
  import FILE|- [-scope S] [-reason R] [-source NAME]
  export [FILE|-] [-scope S] [-reason R] [-all]

The CSV format of import and export is described in docs/suppression-csv.md.`

// now is the clock of the CLI; replaced during tests.
var now = time.Now

func (c *cli) suppress(args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(c.stderr, "usage: senderkit suppress %s\n", suppressUsage)
		return exitUsage
	}
	sub := map[string]func(*cli, []string) int{
		"list": (*cli).suppressList, "show": (*cli).suppressShow, "add": (*cli).suppressAdd,
		"remove": (*cli).suppressRemove, "import": (*cli).suppressImport, "export": (*cli).suppressExport,
	}
	f, ok := sub[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "senderkit suppress: unknown subcommand %q\nusage: senderkit suppress %s\n", args[0], suppressUsage)
		return exitUsage
	}
	return f(c, args[1:])
}

// suppressCmd holds what every suppress subcommand sets up.
type suppressCmd struct {
	cf    configFlags
	cfg   *conf.Config
	store store.Store
	ctx   context.Context
	stop  context.CancelFunc
}

func (s *suppressCmd) open(c *cli) error {
	cfg, err := s.cf.load()
	if err != nil {
		return err
	}
	s.cfg = cfg
	s.ctx, s.stop = context.WithTimeout(c.ctx, storeTimeout)
	st, err := openStore(s.ctx, cfg)
	if err != nil {
		s.stop()
		return err
	}
	s.store = st
	return nil
}

// openAddress opens the store and normalises the command's address
// argument (an address or *@domain); ok is false when the command
// should return code.
func (s *suppressCmd) openAddress(c *cli, cmd, arg string) (a string, code int, ok bool) {
	if err := s.open(c); err != nil {
		return "", c.errorf(exitFailure, cmd, "%v", err), false
	}
	a, err := addr.NormalizePattern(arg, s.addrOptions())
	if err != nil {
		s.close()
		return "", c.errorf(exitUsage, cmd, "%v", err), false
	}
	return a, 0, true
}

func (s *suppressCmd) close() {
	if s.store != nil {
		s.store.Close()
	}
	if s.stop != nil {
		s.stop()
	}
}

func (s *suppressCmd) addrOptions() addr.Options {
	return addr.Options{CaseSensitiveLocal: s.cfg.Addresses.CaseSensitiveLocal}
}

// checkScope accepts a configured scope or "*".
func (s *suppressCmd) checkScope(name string) error {
	if name == store.AllScopes || s.cfg.Scope(name) != nil {
		return nil
	}
	return fmt.Errorf("scope %q is not in the configuration (known: %s, or * for every scope)", name, knownScopes(s.cfg))
}

// knownScopes lists the configured scopes' names, for an error.
func knownScopes(cfg *conf.Config) string {
	var known []string
	for _, sc := range cfg.Scopes {
		known = append(known, sc.Name)
	}
	return strings.Join(known, ", ")
}

// actor names who made a manual change, for the event's source.
func actor() string {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		return "cli"
	}
	return "cli:" + name
}

// parseSince reads "2026-11-01", an RFC 3339 time, or an age such as "7d".
func parseSince(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := conf.ParseDuration(v); err == nil {
		return now().Add(-d), nil
	}
	for _, l := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("-since %q: want a date (2026-11-01), a time (RFC 3339) or an age (7d, 12h)", v)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) suppressList(args []string) int {
	fs := c.newFlags("suppress list", "[-scope S] [-reason R] [-since DATE|AGE] [-all]")
	var s suppressCmd
	s.cf.register(fs)
	scope := fs.String("scope", "", "only this `scope`")
	reason := fs.String("reason", "", "only this `reason`: "+reasonList())
	since := fs.String("since", "", "only entries listed since this date or age")
	all := fs.Bool("all", false, "include entries that have lapsed")
	if _, code, ok := parseOrUsage(fs, args); !ok {
		return code
	}
	f := store.Filter{Scope: *scope, Reason: store.Reason(*reason), Lapsed: *all, At: now()}
	if f.Reason != "" && !f.Reason.Valid() {
		return c.errorf(exitUsage, "suppress list", "-reason %q: want %s", *reason, reasonList())
	}
	var err error
	if f.Since, err = parseSince(*since); err != nil {
		return c.errorf(exitUsage, "suppress list", "%v", err)
	}
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, "suppress list", "%v", err)
	}
	defer s.close()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSCOPE\tSTREAM\tREASON\tSINCE\tEXPIRES\tSOURCE\tDETAIL")
	n := 0
	err = s.store.Suppressions(s.ctx, f, func(e store.Suppression) error {
		n++
		src, detail := "", ""
		if e.Cause != nil {
			src, detail = e.Cause.Source, suppcsv.Detail(e.Cause)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Address, e.Scope, dash(e.Stream), e.Reason,
			day(e.Created), day(e.Expires), dash(src), oneLine(detail, 60))
		return nil
	})
	tw.Flush()
	if err != nil {
		return c.errorf(exitFailure, "suppress list", "%v", err)
	}
	fmt.Fprintf(c.stdout, "%d entr%s\n", n, plural(n, "y", "ies"))
	return exitOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func reasonList() string {
	var r []string
	for _, x := range store.Reasons {
		r = append(r, string(x))
	}
	return strings.Join(r, ", ")
}

// oneLine flattens s and cuts it to n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (c *cli) suppressShow(args []string) int {
	fs := c.newFlags("suppress show", "ADDRESS [-scope S]")
	var s suppressCmd
	s.cf.register(fs)
	scope := fs.String("scope", "", "only this `scope`")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	a, code, ok := s.openAddress(c, "suppress show", pos[0])
	if !ok {
		return code
	}
	defer s.close()
	t := now()
	var entries []store.Suppression
	patterns := []string{a}
	if !addr.IsDomainPattern(a) {
		patterns = append(patterns, addr.DomainPattern(a))
	}
	for _, p := range patterns {
		err := s.store.Suppressions(s.ctx, store.Filter{Address: p, Scope: *scope, Lapsed: true, At: t}, func(e store.Suppression) error {
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return c.errorf(exitFailure, "suppress show", "%v", err)
		}
	}
	if *scope != "" && *scope != store.AllScopes {
		err := s.store.Suppressions(s.ctx, store.Filter{Scope: store.AllScopes, Lapsed: true, At: t}, func(e store.Suppression) error {
			if e.Address == a || e.Address == addr.DomainPattern(a) {
				entries = append(entries, e)
			}
			return nil
		})
		if err != nil {
			return c.errorf(exitFailure, "suppress show", "%v", err)
		}
	}
	w := c.stdout
	fmt.Fprintln(w, a)
	active := 0
	for _, e := range entries {
		where := "in scope " + e.Scope
		if e.Scope == store.AllScopes {
			where = "in every scope"
		}
		if e.Stream != "" {
			where += ", stream " + e.Stream
		} else {
			where += ", all streams"
		}
		if e.Address != a {
			where += ", through " + e.Address
		}
		state := "suppressed"
		if !e.Active(t) {
			state = "lapsed"
		} else {
			active++
		}
		expiry := "does not expire"
		if !e.Expires.IsZero() {
			expiry = "until " + stamp(e.Expires)
		}
		fmt.Fprintf(w, "  %s %s: %s since %s, %s (listed %d time%s)\n", state, where, e.Reason, stamp(e.Created), expiry, e.Times, plural(e.Times, "", "s"))
		if e.Cause != nil {
			fmt.Fprintf(w, "    because: %s\n", describeEvent(*e.Cause))
		}
	}
	if active == 0 {
		fmt.Fprintf(w, "  not suppressed%s\n", map[bool]string{true: " in scope " + *scope, false: ""}[*scope != ""])
	}
	fmt.Fprintln(w, "history:")
	n := 0
	err := s.store.Events(s.ctx, store.EventFilter{Address: a, Scope: *scope}, func(ev store.Event) error {
		n++
		fmt.Fprintf(w, "  %s\n", describeEvent(ev))
		return nil
	})
	if err != nil {
		return c.errorf(exitFailure, "suppress show", "%v", err)
	}
	if n == 0 {
		fmt.Fprintln(w, "  no events")
	}
	return exitOK
}

// describeEvent renders an event as one line of evidence.
func describeEvent(ev store.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", stamp(ev.At), ev.Type)
	if ev.Scope != "" {
		fmt.Fprintf(&b, " scope=%s", ev.Scope)
	}
	if ev.Stream != "" {
		fmt.Fprintf(&b, " stream=%s", ev.Stream)
	}
	if ev.Address != "" {
		fmt.Fprintf(&b, " address=%s", ev.Address)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", ev.Reason)
	}
	if ev.Hard {
		b.WriteString(" hard")
	}
	for _, kv := range [][2]string{{"status", ev.Status}, {"reply", ev.ReplyCode}, {"feedback-type", ev.FeedbackType},
		{"reporting-mta", ev.ReportingMTA}, {"source", ev.Source}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if ev.SendID != 0 {
		fmt.Fprintf(&b, " send=%d", ev.SendID)
	}
	if ev.Diagnostic != "" {
		fmt.Fprintf(&b, " %q", oneLine(ev.Diagnostic, 200))
	}
	return b.String()
}

// changeFlags are the flags of add and remove.
type changeFlags struct {
	scope, stream, note string
}

func (f *changeFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&f.scope, "scope", "", "the `scope` (required), or * for every scope")
	fs.StringVar(&f.stream, "stream", "", "only this `stream` of the scope (default: every stream)")
	fs.StringVar(&f.note, "note", "", "why, for the record")
}

func (c *cli) suppressAdd(args []string) int {
	fs := c.newFlags("suppress add", "ADDRESS|*@DOMAIN -scope S|* [-stream X] [-reason manual] [-expires AGE] [-note TEXT]")
	var s suppressCmd
	s.cf.register(fs)
	var cf changeFlags
	cf.register(fs)
	reason := fs.String("reason", string(store.Manual), "`reason`: "+reasonList())
	expires := fs.String("expires", "", "lapse after this long (30d); default never")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || cf.scope == "" {
		fs.Usage()
		return exitUsage
	}
	r := store.Reason(*reason)
	if !r.Valid() {
		return c.errorf(exitUsage, "suppress add", "-reason %q: want %s", *reason, reasonList())
	}
	var ttl time.Duration
	if *expires != "" {
		d, err := conf.ParseDuration(*expires)
		if err != nil || d <= 0 {
			return c.errorf(exitUsage, "suppress add", "-expires %q: want a positive age such as 30d", *expires)
		}
		ttl = d
	}
	a, code, ok := s.openAddress(c, "suppress add", pos[0])
	if !ok {
		return code
	}
	defer s.close()
	if err := s.checkScope(cf.scope); err != nil {
		return c.errorf(exitUsage, "suppress add", "%v", err)
	}
	ev := store.Event{At: now(), Type: store.Suppressed, Scope: cf.scope, Stream: cf.stream, Address: a,
		Reason: string(r), Diagnostic: cf.note, Source: actor()}
	res, err := s.store.Record(s.ctx, ev, store.Change{Op: store.Suppress, Scope: cf.scope, Stream: cf.stream, Address: a, Reason: r, TTL: ttl})
	if err != nil {
		return c.errorf(exitFailure, "suppress add", "%v", err)
	}
	if !res.Changed {
		fmt.Fprintf(c.stdout, "%s was already suppressed in scope %s (%s since %s); the request is recorded\n", a, cf.scope, res.Entry.Reason, stamp(res.Entry.Created))
		return exitOK
	}
	fmt.Fprintf(c.stdout, "suppressed %s in scope %s (%s)\n", a, cf.scope, r)
	return exitOK
}

func (c *cli) suppressRemove(args []string) int {
	fs := c.newFlags("suppress remove", "ADDRESS|*@DOMAIN -scope S|* [-stream X] [-note TEXT]")
	var s suppressCmd
	s.cf.register(fs)
	var cf changeFlags
	cf.register(fs)
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || cf.scope == "" {
		fs.Usage()
		return exitUsage
	}
	a, code, ok := s.openAddress(c, "suppress remove", pos[0])
	if !ok {
		return code
	}
	defer s.close()
	// Look first, so that removing what is not there records nothing.
	found := false
	err := s.store.Suppressions(s.ctx, store.Filter{Scope: cf.scope, Address: a, Lapsed: true}, func(e store.Suppression) error {
		found = found || e.Stream == cf.stream
		return nil
	})
	if err != nil {
		return c.errorf(exitFailure, "suppress remove", "%v", err)
	}
	if !found {
		return c.errorf(exitFailure, "suppress remove", "%s is not suppressed in scope %s%s", a, cf.scope, map[bool]string{true: ", stream " + cf.stream, false: ""}[cf.stream != ""])
	}
	ev := store.Event{At: now(), Type: store.Unsuppressed, Scope: cf.scope, Stream: cf.stream, Address: a, Diagnostic: cf.note, Source: actor()}
	if _, err := s.store.Record(s.ctx, ev, store.Change{Op: store.Unsuppress, Scope: cf.scope, Stream: cf.stream, Address: a}); err != nil {
		return c.errorf(exitFailure, "suppress remove", "%v", err)
	}
	fmt.Fprintf(c.stdout, "removed %s from scope %s; its history is kept\n", a, cf.scope)
	return exitOK
}

// importBatch is how many entries one transaction imports: the write
// lock is released between batches so that Postfix's bounce pipes and
// the milter are not held up for the whole of a large import.
const importBatch = 10_000

func (c *cli) suppressImport(args []string) int {
	fs := c.newFlags("suppress import", "FILE|- [-scope S] [-reason R] [-source NAME]")
	var s suppressCmd
	s.cf.register(fs)
	scope := fs.String("scope", "", "`scope` of rows that have none")
	reason := fs.String("reason", "", "`reason` of rows that have none (default manual)")
	source := fs.String("source", "", "source of rows that have none (default import:FILE)")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	if *reason != "" && !store.Reason(*reason).Valid() {
		return c.errorf(exitUsage, "suppress import", "-reason %q: want %s", *reason, reasonList())
	}
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, "suppress import", "%v", err)
	}
	defer s.close()
	if *scope != "" {
		if err := s.checkScope(*scope); err != nil {
			return c.errorf(exitUsage, "suppress import", "%v", err)
		}
	}
	// The file is read twice: once to check every row, so that a bad row
	// imports nothing, then to import. Standard input is saved first.
	path, cleanup, err := c.importFile(pos[0])
	if err != nil {
		return c.errorf(exitFailure, "suppress import", "%v", err)
	}
	defer cleanup()
	src := *source
	if src == "" {
		src = "import:" + filepath.Base(pos[0])
	}
	t := now().UTC().Truncate(time.Second)
	def := suppcsv.Defaults{Scope: *scope, Reason: store.Reason(*reason), Created: t, Source: src}
	total := 0
	err = s.readCSV(path, def, func(e store.Suppression) error {
		total++
		return s.checkScope(e.Scope)
	}, c.stderr)
	if err != nil {
		return c.errorf(exitFailure, "suppress import", "%s: %v; nothing was imported", pos[0], err)
	}
	added := 0
	batch := make([]store.Suppression, 0, importBatch)
	flush := func() error {
		n, err := s.store.Import(s.ctx, batch, t)
		added += n
		batch = batch[:0]
		return err
	}
	err = s.readCSV(path, def, func(e store.Suppression) error {
		batch = append(batch, e)
		if len(batch) == importBatch {
			return flush()
		}
		return nil
	}, io.Discard)
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return c.errorf(exitFailure, "suppress import", "%v (after adding %d entries; importing the file again is safe)", err, added)
	}
	fmt.Fprintf(c.stdout, "imported %d of %d entries (%d already listed)\n", added, total, total-added)
	return exitOK
}

// importFile returns a path to read the import from, saving standard
// input to a temporary file.
func (c *cli) importFile(name string) (string, func(), error) {
	if name != "-" {
		return name, func() {}, nil
	}
	f, err := os.CreateTemp("", "senderkit-import-*.csv")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, c.stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("read standard input: %w", err)
	}
	return f.Name(), cleanup, nil
}

func (s *suppressCmd) readCSV(path string, def suppcsv.Defaults, fn func(store.Suppression) error, warn io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := suppcsv.NewReader(f, def, s.addrOptions())
	if err != nil {
		return err
	}
	if len(rd.Ignored) > 0 {
		fmt.Fprintf(warn, "senderkit suppress import: ignoring column(s) %s\n", joinQuoted(rd.Ignored))
	}
	for {
		e, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

func (c *cli) suppressExport(args []string) int {
	fs := c.newFlags("suppress export", "[FILE|-] [-scope S] [-reason R] [-all]")
	var s suppressCmd
	s.cf.register(fs)
	scope := fs.String("scope", "", "only this `scope`")
	reason := fs.String("reason", "", "only this `reason`")
	all := fs.Bool("all", false, "include entries that have lapsed")
	pos, code, ok := parseOrUsage(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fs.Usage()
		return exitUsage
	}
	if err := s.open(c); err != nil {
		return c.errorf(exitFailure, "suppress export", "%v", err)
	}
	defer s.close()
	out := c.stdout
	var f *os.File
	if len(pos) == 1 && pos[0] != "-" {
		var err error
		if f, err = os.Create(pos[0]); err != nil {
			return c.errorf(exitFailure, "suppress export", "%v", err)
		}
		defer f.Close()
		out = f
	}
	w, err := suppcsv.NewWriter(out)
	if err != nil {
		return c.errorf(exitFailure, "suppress export", "%v", err)
	}
	err = s.store.Suppressions(s.ctx, store.Filter{Scope: *scope, Reason: store.Reason(*reason), Lapsed: *all, At: now()}, w.Write)
	if err == nil {
		err = w.Flush()
	}
	if err == nil && f != nil {
		err = f.Close()
	}
	if err != nil {
		return c.errorf(exitFailure, "suppress export", "%v", err)
	}
	return exitOK
}
