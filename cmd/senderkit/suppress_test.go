package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/suppcsv"
)

// newState makes a state directory and a configuration with two scopes.
func newState(t testing.TB) (cfgArgs []string, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg := writeFile(t, dir, "senderkit.toml", fmt.Sprintf(`state_dir = %q
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
`, dir))
	return []string{"-c", cfg}, dir
}

func runCfg(t testing.TB, cfg []string, stdin string, args ...string) result {
	t.Helper()
	return runCLI(t, stdin, append(args, cfg...)...)
}

func TestSuppressAddShowRemove(t *testing.T) {
	cfg, _ := newState(t)
	r := runCfg(t, cfg, "", "suppress", "add", "Bob@Example.COM", "-scope", "acme", "-note", "asked by phone")
	if r.code != exitOK || r.stdout != "suppressed bob@example.com in scope acme (manual)\n" {
		t.Fatalf("add: %+v", r)
	}
	if r := runCfg(t, cfg, "", "suppress", "add", "bob@example.com", "-scope", "acme"); r.code != exitOK || !strings.Contains(r.stdout, "already suppressed") {
		t.Errorf("second add: %+v", r)
	}
	runCfg(t, cfg, "", "suppress", "add", "*@spamtrap.example", "-scope", "*", "-reason", "complaint")
	runCfg(t, cfg, "", "suppress", "add", "carol@example.com", "-scope", "globex", "-stream", "news", "-reason", "unsubscribe", "-expires", "30d")
	for _, bad := range [][]string{
		{"suppress", "add", "x@example.com", "-scope", "initech"},              // unknown scope
		{"suppress", "add", "not an address", "-scope", "acme"},                // bad address
		{"suppress", "add", "x@example.com", "-scope", "acme", "-reason", "x"}, // bad reason
		{"suppress", "add", "x@example.com"},                                   // no scope
		{"suppress", "list", "-since", "last tuesday"},
	} {
		if r := runCfg(t, cfg, "", bad...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d; %s", bad, r.code, exitUsage, r.stderr)
		}
	}

	r = runCfg(t, cfg, "", "suppress", "list")
	for _, want := range []string{"*@spamtrap.example  *", "bob@example.com     acme", "asked by phone", "carol@example.com   globex  news", "3 entries"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCfg(t, cfg, "", "suppress", "list", "-scope", "globex", "-reason", "unsubscribe"); !strings.Contains(r.stdout, "1 entry") {
		t.Errorf("filtered list:\n%s", r.stdout)
	}
	if r := runCfg(t, cfg, "", "suppress", "list", "-since", "1h"); !strings.Contains(r.stdout, "3 entries") {
		t.Errorf("list -since 1h:\n%s", r.stdout)
	}

	// show explains the entry, including a domain-wide one in every scope.
	r = runCfg(t, cfg, "", "suppress", "show", "anyone@SPAMTRAP.example")
	if !strings.Contains(r.stdout, "suppressed in every scope, all streams, through *@spamtrap.example: complaint") {
		t.Errorf("show domain entry:\n%s", r.stdout)
	}
	r = runCfg(t, cfg, "", "suppress", "show", "bob@example.com")
	if !strings.Contains(r.stdout, "suppressed in scope acme, all streams: manual since") || !strings.Contains(r.stdout, `because: `) ||
		strings.Count(r.stdout, `"asked by phone"`) != 2 {
		t.Errorf("show:\n%s", r.stdout)
	}

	// remove: an event too; history stays.
	if r := runCfg(t, cfg, "", "suppress", "remove", "bob@example.com", "-scope", "acme", "-note", "mistake"); r.code != exitOK {
		t.Fatalf("remove: %+v", r)
	}
	if r := runCfg(t, cfg, "", "suppress", "remove", "bob@example.com", "-scope", "acme"); r.code != exitFailure || !strings.Contains(r.stderr, "is not suppressed") {
		t.Errorf("second remove: %+v", r)
	}
	r = runCfg(t, cfg, "", "suppress", "show", "bob@example.com")
	if !strings.Contains(r.stdout, "not suppressed") || !strings.Contains(r.stdout, "unsuppressed scope=acme") || !strings.Contains(r.stdout, `"mistake"`) ||
		strings.Count(r.stdout, "  20") != 3 { // two adds and the removal
		t.Errorf("show after remove:\n%s", r.stdout)
	}
}

func TestSuppressNeedsStateDir(t *testing.T) {
	r := runCLI(t, "", "suppress", "list", "-state-dir", filepath.Join(t.TempDir(), "missing"))
	if r.code != exitFailure || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing state dir: %+v", r)
	}
}

func TestImportValidatesEverythingFirst(t *testing.T) {
	cfg, _ := newState(t)
	in := "address,scope\nok@example.com,acme\nbad@example.com,initech\n"
	r := runCfg(t, cfg, in, "suppress", "import", "-")
	if r.code != exitFailure || !strings.Contains(r.stderr, `scope "initech" is not in the configuration`) || !strings.Contains(r.stderr, "nothing was imported") {
		t.Fatalf("import with a bad row: %+v", r)
	}
	if r := runCfg(t, cfg, "", "suppress", "list"); !strings.Contains(r.stdout, "0 entries") {
		t.Errorf("a failed import left entries:\n%s", r.stdout)
	}
	// An ESP's export: its own column names, no scope column.
	in = "Email Address,First Name\nAlice@Example.com,Alice\n"
	r = runCfg(t, cfg, in, "suppress", "import", "-", "-scope", "acme", "-reason", "unsubscribe")
	if r.code != exitOK || r.stdout != "imported 1 of 1 entries (0 already listed)\n" || !strings.Contains(r.stderr, `ignoring column(s) "First Name"`) {
		t.Fatalf("ESP import: %+v", r)
	}
	r = runCfg(t, cfg, in, "suppress", "import", "-", "-scope", "acme")
	if r.stdout != "imported 0 of 1 entries (1 already listed)\n" {
		t.Errorf("re-import: %+v", r)
	}
}

// TestImportExport1M: a million-row CSV imports and exports back
// byte for byte.
func TestImportExport1M(t *testing.T) {
	const rows = 1_000_000
	if testing.Short() {
		t.Skip("-short: skipping the 1,000,000-row round trip")
	}
	cfg, dir := newState(t)
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }

	// Export order is by scope name, address, stream: write the input in
	// that order so that a faithful round trip is byte-identical.
	in := filepath.Join(dir, "in.csv")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	w, _ := suppcsv.NewWriter(bw)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	reasons := store.Reasons
	for _, scope := range []string{"*", "acme", "globex"} {
		n := rows / 3
		if scope == "*" {
			n = rows - 2*(rows/3)
		}
		entries := make([]store.Suppression, n)
		for i := range n {
			e := store.Suppression{
				Scope:   scope,
				Address: fmt.Sprintf("u%07d@d%03d.example", i, i%997),
				Reason:  reasons[i%len(reasons)],
				Created: base.Add(time.Duration(i) * time.Minute),
				Times:   1 + i%3,
				Cause:   &store.Event{Type: store.Imported, Source: "esp", Diagnostic: fmt.Sprintf("row %d, \"quoted\", ümlaut", i)},
			}
			if i%10 == 0 {
				e.Address = fmt.Sprintf("*@d%07d.example", i)
			}
			if e.Reason == store.SoftBounce {
				e.Expires = e.Created.Add(400 * 24 * time.Hour)
			}
			entries[i] = e
		}
		slices.SortFunc(entries, func(a, b store.Suppression) int { return strings.Compare(a.Address, b.Address) })
		for _, e := range entries {
			if err := w.Write(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	f.Close()

	start := time.Now()
	r := runCfg(t, cfg, "", "suppress", "import", in)
	importTime := time.Since(start)
	if r.code != exitOK || r.stdout != fmt.Sprintf("imported %d of %d entries (0 already listed)\n", rows, rows) {
		t.Fatalf("import: %+v", r)
	}
	out := filepath.Join(dir, "out.csv")
	start = time.Now()
	// -all: the expiry dates of some rows lie before the fixed clock.
	if r := runCfg(t, cfg, "", "suppress", "export", out, "-all"); r.code != exitOK {
		t.Fatalf("export: %+v", r)
	}
	exportTime := time.Since(start)
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
		for i := range min(len(la), len(lb)) {
			if la[i] != lb[i] {
				t.Fatalf("export differs from import at line %d:\n in: %s\nout: %s", i+1, la[i], lb[i])
			}
		}
		t.Fatalf("export has %d lines, import %d", len(lb), len(la))
	}
	t.Logf("1,000,000 rows (%d MB): import %v, export %v, identical", len(a)>>20, importTime.Round(time.Millisecond), exportTime.Round(time.Millisecond))
}
