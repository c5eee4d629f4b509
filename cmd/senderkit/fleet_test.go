package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// TestReportThrottleFleet: two relays' saved throttle state, summed per
// destination and split by relay with -by-relay; each relay's policy
// server takes back only its own.
func TestReportThrottleFleet(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "senderkit.toml", "state_dir = \""+dir+"\"\n")
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for i, relay := range []string{"mx1", "mx2"} {
		st, err := sqlitestore.Open(ctx, filepath.Join(dir, "senderkit.db"), sqlitestore.Options{Relay: relay})
		if err != nil {
			t.Fatal(err)
		}
		err = st.SetThrottles(ctx, []store.Throttle{{Destination: "google.com", State: store.ThrottleLimited, Rate: 10,
			Since: at.Add(time.Duration(i) * time.Minute), Tempfails: 3, Successes: 5, Reason: "rate-limited",
			Reply: "421 4.7.28 from " + relay, Updated: at.Add(time.Duration(i) * time.Minute)}})
		if err != nil {
			t.Fatal(err)
		}
		own, err := ownThrottles{st}.Throttles(ctx)
		if err != nil || len(own) != 1 || own[0].Relay != relay {
			t.Errorf("%s takes back %+v, %v", relay, own, err)
		}
		st.Close()
	}
	r := runCLI(t, "", "report", "throttle", "-c", cfg)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitOK || len(lines) != 3 ||
		!regexp.MustCompile(`^google\.com\s+-\s+throttled\s+20\s+-\s+2026-11-02T10:00:00Z\s+6\s+10\s+rate-limited\s+421 4\.7\.28 from mx2$`).MatchString(lines[1]) {
		t.Errorf("report throttle (the fleet):\n%s%s", r.stdout, r.stderr)
	}
	r = runCLI(t, "", "report", "throttle", "-by-relay", "-c", cfg)
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitOK || len(lines) != 4 || !strings.HasPrefix(lines[0], "RELAY") ||
		!strings.HasPrefix(lines[1], "mx1 ") || !strings.HasPrefix(lines[2], "mx2 ") {
		t.Errorf("report throttle -by-relay:\n%s%s", r.stdout, r.stderr)
	}
}
