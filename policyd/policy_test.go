package policyd

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

var t0 = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

const testConfig = `
[policy]
refresh = "10ms"
[policy.throttle]
window = "1m"
tempfails = 3
tempfail_percent = 50
decrease_percent = 50
increase_every = "1m"
increase = 10
min_rate = 1
max_rate = 60
groups = ["googlemail.com=google.com"]
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
sasl_users = ["acme-app"]
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
clients = ["192.0.2.0/24"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
[[scope]]
name = "initech"
sender_domains = ["initech.example"]
suppressed_action = "discard"
`

// fixture is a policy on a real SQLite store, with a settable clock.
type fixture struct {
	cfg    atomic.Pointer[conf.Config]
	store  *sqlitestore.DB
	now    atomic.Pointer[time.Time]
	policy *Policy
}

func newFixture(t testing.TB, extra string) *fixture {
	t.Helper()
	f := &fixture{}
	cfg, err := conf.Parse([]byte(testConfig+extra), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Store(cfg)
	f.store, err = sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.setNow(t0.Add(24 * time.Hour))
	th := NewThrottler(func() *conf.Throttle { return &f.cfg.Load().Policy.Throttle }, f.clock)
	f.policy = &Policy{Store: f.store, Config: f.cfg.Load, Filter: &Filter{}, Throttle: th,
		Grouper: &Grouper{Resolver: tableResolver{}, Static: f.cfg.Load().Policy.Throttle.Group, Now: f.clock},
		Log:     slog.New(slog.DiscardHandler), Now: f.clock}
	return f
}

func (f *fixture) clock() time.Time   { return *f.now.Load() }
func (f *fixture) setNow(t time.Time) { f.now.Store(&t) }

// suppress lists an address as an event and its change would.
func (f *fixture) suppress(t testing.TB, scope, stream, address string, reason store.Reason, ttl time.Duration) {
	t.Helper()
	_, err := f.store.Record(context.Background(), store.Event{At: t0, Type: store.Suppressed, Scope: scope, Stream: stream, Address: address, Source: "test"},
		store.Change{Op: store.Suppress, Scope: scope, Stream: stream, Address: address, Reason: reason, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
}

func rcpt(sender, recipient string) *Request {
	return &Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Sender: sender, Recipient: recipient,
		ClientAddress: "198.51.100.1", Instance: "i1"}
}

// tableResolver is a fixed MX table: a seam, like net.Resolver's Dial.
type tableResolver map[string][]MX

func (r tableResolver) LookupMX(ctx context.Context, domain string) ([]MX, time.Duration, error) {
	return r[domain], 5 * time.Minute, nil
}

func TestDecideSuppression(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	f.suppress(t, "acme", "", "bob@dest.example", store.Unsubscribe, 0)
	f.suppress(t, "acme", "", "*@spamtrap.example", store.Manual, 0)
	f.suppress(t, store.AllScopes, "", "legal@dest.example", store.Manual, 0)
	f.suppress(t, "globex", "news", "carol@dest.example", store.Unsubscribe, 0)
	f.suppress(t, "acme", "", "full@dest.example", store.SoftBounce, 30*24*time.Hour)
	f.suppress(t, "initech", "", "bob@dest.example", store.Complained, 0)
	f.suppress(t, "acme", "", `"john smith"@dest.example`, store.Unsubscribe, 0)
	for _, withFilter := range []bool{false, true} {
		if withFilter {
			if err := f.policy.Filter.Refresh(ctx, f.store); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			req  *Request
			want string
		}{
			{rcpt("news@acme.example", "Bob@DEST.example"), "550 5.7.1 recipient unsubscribed on 2026-11-02"},
			{rcpt("news@acme.example", "carol@dest.example"), "DUNNO"},
			{rcpt("news@globex.example", "bob@dest.example"), "DUNNO"},
			{rcpt("news@acme.example", "anyone@spamtrap.example"), "550 5.7.1 recipient domain spamtrap.example suppressed by the administrator on 2026-11-02"},
			{rcpt("news@globex.example", "legal@dest.example"), "550 5.7.1 recipient suppressed by the administrator on 2026-11-02 (for every sender)"},
			{rcpt("news@acme.example", "full@dest.example"), "550 5.7.1 recipient address bounced repeatedly; suppressed on 2026-11-02 until 2026-12-02"},
			// A stream-level entry is left to the milter: the stream is
			// not known at RCPT when a scope has several.
			{rcpt("news@globex.example", "carol@dest.example"), "DUNNO"},
			// The scope's action.
			{rcpt("news@initech.example", "bob@dest.example"), "DISCARD recipient complained about earlier mail on 2026-11-02"},
			// Scope by SASL login, whatever the sender.
			{&Request{ProtocolState: "RCPT", Sender: "x@other.example", Recipient: "bob@dest.example", SASLUsername: "acme-app"}, "550 5.7.1 recipient unsubscribed on 2026-11-02"},
			// smtpd sends a quoted local part without its quotes.
			{rcpt("news@acme.example", "john smith@dest.example"), "550 5.7.1 recipient unsubscribed on 2026-11-02"},
			{rcpt("news@acme.example", "a b@spamtrap.example"), "550 5.7.1 recipient domain spamtrap.example suppressed by the administrator on 2026-11-02"},
			// The null sender belongs to no scope, whatever its login.
			{&Request{ProtocolState: "RCPT", Sender: "", Recipient: "bob@dest.example", SASLUsername: "acme-app"}, "DUNNO"},
			// Mail of no scope is not checked; other stages are not judged.
			{rcpt("x@unknown.example", "bob@dest.example"), "DUNNO"},
			{&Request{ProtocolState: "DATA", Sender: "news@acme.example", Recipient: "bob@dest.example"}, "DUNNO"},
		} {
			if got := f.policy.Decide(ctx, c.req); got != c.want {
				t.Errorf("filter=%v %s -> %s: %q, want %q", withFilter, c.req.Sender, c.req.Recipient, got, c.want)
			}
		}
	}
	// A lapsed soft entry no longer applies.
	f.setNow(t0.Add(31 * 24 * time.Hour))
	if got := f.policy.Decide(ctx, rcpt("news@acme.example", "full@dest.example")); got != "DUNNO" {
		t.Errorf("after the soft entry lapsed: %q", got)
	}
	// The filter learns of entries added after it was built.
	f.suppress(t, "acme", "", "new@dest.example", store.Unsubscribe, 0)
	f.policy.Filter.Refresh(ctx, f.store)
	if got := f.policy.Decide(ctx, rcpt("news@acme.example", "new@dest.example")); !strings.HasPrefix(got, "550 5.7.1 recipient unsubscribed") {
		t.Errorf("after refresh: %q", got)
	}
}

// TestDecideSingleStream: with one stream, the stream is known at RCPT
// and its stream-level entries apply.
func TestDecideSingleStream(t *testing.T) {
	f := newFixture(t, "")
	f.suppress(t, "acme", "bulk", "dan@dest.example", store.Unsubscribe, 0)
	if got := f.policy.Decide(context.Background(), rcpt("news@acme.example", "dan@dest.example")); got != "550 5.7.1 recipient unsubscribed on 2026-11-02" {
		t.Errorf("acme's only stream: %q", got)
	}
}

// TestDecideStoreError: an unreadable store defers by default, and lets
// the mail through when on_store_error = "dunno".
func TestDecideStoreError(t *testing.T) {
	f := newFixture(t, "")
	f.suppress(t, "acme", "", "bob@dest.example", store.Unsubscribe, 0)
	f.store.Close() // reads now fail: "sql: database is closed"
	if got := f.policy.Decide(context.Background(), rcpt("news@acme.example", "bob@dest.example")); !strings.HasPrefix(got, "DEFER_IF_PERMIT 4.3.0 ") {
		t.Errorf("default (defer): %q", got)
	}
	f2 := newFixture(t, "")
	f2.suppress(t, "acme", "", "bob@dest.example", store.Unsubscribe, 0)
	cfg := *f2.cfg.Load()
	cfg.Policy.OnStoreError = conf.OnErrorDunno
	f2.cfg.Store(&cfg)
	f2.store.Close()
	if got := f2.policy.Decide(context.Background(), rcpt("news@acme.example", "bob@dest.example")); got != "DUNNO" {
		t.Errorf("on_store_error = dunno: %q", got)
	}
}
