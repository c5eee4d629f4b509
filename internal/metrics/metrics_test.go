package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

func scrape(t *testing.T, m *Metrics) map[string]string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

func TestEventCounters(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := func(typ store.EventType, scope, reason string) {
		t.Helper()
		_, err := st.Record(context.Background(), store.Event{At: time.Now(), Type: typ, Scope: scope, Reason: reason, Address: "a@example.com", Source: "test"}, store.Change{})
		if err != nil {
			t.Fatal(err)
		}
	}
	m := New(st, slog.New(slog.DiscardHandler))
	got := scrape(t, m)
	if got["senderkit_returned_forged_tokens_total"] != "0" || got["senderkit_store_scrape_errors_total"] != "0" {
		t.Fatalf("empty store: %v", got)
	}
	for range 3 {
		rec(store.Bounced, "acme", "userunknown")
	}
	rec(store.Bounced, "acme", "mailboxfull")
	rec(store.Complaint, "globex", "feedback")
	rec(store.Unattributed, "", "forged")
	rec(store.Unsubscribed, "acme", "")
	got = scrape(t, m)
	for k, want := range map[string]string{
		`senderkit_bounces_total{reason="userunknown",scope="acme"}`: "3",
		`senderkit_bounces_total{reason="mailboxfull",scope="acme"}`: "1",
		`senderkit_complaints_total{scope="globex"}`:                 "1",
		`senderkit_unsubscribes_total{scope="acme"}`:                 "1",
		`senderkit_returned_forged_tokens_total`:                     "1",
		`senderkit_returned_unattributable_total`:                    "0",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %s", k, got[k], want)
		}
	}
	// Only what is new is read; the totals keep growing from there.
	rec(store.Bounced, "acme", "userunknown")
	if got := scrape(t, m); got[`senderkit_bounces_total{reason="userunknown",scope="acme"}`] != "4" {
		t.Errorf("after one more bounce: %s", got[`senderkit_bounces_total{reason="userunknown",scope="acme"}`])
	}
	// A restart (a new registry on the same store) starts from the same totals.
	if got := scrape(t, New(st, slog.New(slog.DiscardHandler))); got[`senderkit_bounces_total{reason="userunknown",scope="acme"}`] != "4" {
		t.Errorf("after a restart: %v", got)
	}
}
