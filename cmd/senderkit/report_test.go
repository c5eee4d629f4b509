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
	if r := runCLI(t, "", "report", "weekly", "-c", cfg); r.code != exitFailure || !strings.Contains(r.stderr, "issue #7") {
		t.Errorf("report weekly: %+v", r)
	}
	if r := runCLI(t, "", "report"); r.code != exitUsage || !strings.Contains(r.stderr, "usage: senderkit report throttle") {
		t.Errorf("report without arguments: %+v", r)
	}
}
