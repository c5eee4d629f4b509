package main

import (
	"strings"
	"testing"

	"github.com/senderkit/senderkit/internal/pgtest"
)

// TestStoreMigrateCLI: a single host's list, made with the CLI, is copied
// by `senderkit store migrate` and reads the same from PostgreSQL with
// store.dsn set; a second copy into the same database is refused.
func TestStoreMigrateCLI(t *testing.T) {
	dir := t.TempDir()
	single := writeFile(t, dir, "single.toml", "state_dir = \""+dir+"\"\n")
	for _, a := range []string{"bob@example.com", "*@spamtrap.example"} {
		if r := runCLI(t, "", "suppress", "add", a, "-scope", "default", "-c", single); r.code != exitOK {
			t.Fatalf("suppress add %s: %+v", a, r)
		}
	}
	before := runCLI(t, "", "suppress", "list", "-c", single)
	if before.code != exitOK || !strings.Contains(before.stdout, "bob@example.com") {
		t.Fatalf("list before: %+v", before)
	}

	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	if r := runCLI(t, "", "store", "migrate", "-c", single, "--to", "sqlite:x"); r.code != exitUsage {
		t.Errorf("-to sqlite: %+v", r)
	}
	r := runCLI(t, "", "store", "migrate", "-c", single, "--from", "sqlite:senderkit.db", "--to", "postgres:"+dsn, "-relay", "mx-old")
	if r.code != exitOK || !strings.Contains(r.stdout, "2 suppressions") || !strings.Contains(r.stdout, "relay mx-old") {
		t.Fatalf("store migrate: %+v", r)
	}
	fleet := writeFile(t, dir, "fleet.toml", "state_dir = \""+dir+"\"\n[store]\ndsn = \""+dsn+"\"\nrelay = \"mx1\"\n")
	after := runCLI(t, "", "suppress", "list", "-c", fleet)
	if after.code != exitOK || after.stdout != before.stdout {
		t.Errorf("list from PostgreSQL:\n%s\nfrom SQLite:\n%s\n%s", after.stdout, before.stdout, after.stderr)
	}
	if r := runCLI(t, "", "store", "migrate", "-c", fleet); r.code != exitFailure || !strings.Contains(r.stderr, "already holds") {
		t.Errorf("second migrate: %+v", r)
	}
}
