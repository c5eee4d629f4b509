package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// TestReportThrottle: the saved throttle state, as the CLI shows it; the
// other reports still wait for issue #7.
func TestReportThrottle(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "senderkit.toml", "state_dir = \""+dir+"\"\n")
	if r := runCLI(t, "", "report", "throttle", "-c", cfg); r.code != exitOK || r.stdout != "no destination is throttled\n" {
		t.Errorf("empty: %+v", r)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "senderkit.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	err = st.SetThrottles(context.Background(), []store.Throttle{
		{Destination: "google.com", State: store.ThrottleLimited, Rate: 12.5, Since: at, Tempfails: 7, Successes: 3, Reason: "rate-limited", Reply: "421 4.7.28 unusual rate", Updated: at},
		{Destination: "outlook.com", Scope: "acme", State: store.ThrottleSuspended, Since: at, Until: at.Add(time.Hour), Reason: "blocklisted", Reply: "550 5.7.1 listed", Updated: at},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "report", "throttle", "-c", cfg)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitOK || len(lines) != 4 ||
		!strings.HasPrefix(lines[1], "google.com   -      throttled  12.5      -") ||
		!strings.Contains(lines[2], "outlook.com  acme   suspended  -         2026-11-02T11:00:00Z") ||
		lines[3] != "2 destinations and scopes held back, as of 2026-11-02T10:00:00Z" {
		t.Errorf("report throttle:\n%s\n%s", r.stdout, r.stderr)
	}
}

// TestReportCLI: the sender report through the command line, in its
// three forms (the numbers themselves are tested in internal/report).
func TestReportCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "senderkit.toml", "state_dir = \""+dir+"\"\n")
	if r := runCLI(t, "", "report", "weekly", "-c", cfg); r.code != exitUsage {
		t.Errorf("report weekly: %+v", r)
	}
	if r := runCLI(t, "", "report", "-format", "xml", "-c", cfg); r.code != exitUsage {
		t.Errorf("report -format xml: %+v", r)
	}
	if r := runCLI(t, "", "report", "-format", "json", "-c", cfg); r.code != exitOK || !strings.Contains(r.stdout, `"days": []`) {
		t.Errorf("empty store: %+v", r)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "senderkit.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	bg := context.Background()
	st.AddSend(bg, store.Send{ID: 1, Scope: "default", Stream: "bulk", Recipient: "a@example.com", At: at})
	st.Record(bg, store.Event{At: at, Type: store.Delivered, Scope: "default", Stream: "bulk", Address: "a@example.com", SendID: 1, Source: "t"}, store.Change{})
	st.Close()
	r := runCLI(t, "", "report", "-since", "2026-11-01", "-until", "2026-11-08", "-format", "csv", "-c", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "\ndefault,bulk,2026-11-02,1,1,0,0,0,0,0,0,0,\n") {
		t.Errorf("csv: %+v", r)
	}
	r = runCLI(t, "", "report", "-since", "2026-11-01", "-until", "2026-11-08", "-c", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "Mail sent from 2026-11-01 to 2026-11-07") || !strings.Contains(r.stdout, "2026-11-02") {
		t.Errorf("table: %+v", r)
	}
}
