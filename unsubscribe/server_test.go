package unsubscribe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
	"github.com/senderkit/senderkit/internal/token"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// world is an endpoint on a real store, served by a real HTTP server.
type world struct {
	t     testing.TB
	cfg   *conf.Config
	keys  *token.Keyring
	store *sqlitestore.DB
	srv   *Server
	ts    *httptest.Server
	clock time.Time
	mu    sync.Mutex
	next  uint64
}

func newWorld(t testing.TB, extra string) *world {
	t.Helper()
	cfg, err := conf.Parse([]byte(`
[http]
base_url = "https://unsubscribe.acme.example/u/"
rate_per_minute = 100000
`+extra+`
[[scope]]
name = "acme"
display_name = "Acme Newsletter"
sender_domains = ["acme.example"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "offers"
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
unsubscribe_covers = "stream"
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, _ := token.NewKeyring(token.Key{ID: 1, Secret: bytes.Repeat([]byte{3}, 32)})
	w := &world{t: t, cfg: cfg, keys: kr, store: st, clock: t0, next: 100}
	w.srv = &Server{
		Config: func() *conf.Config { return cfg },
		Keys:   func() *token.Keyring { return kr },
		Store:  st,
		Log:    slog.New(slog.DiscardHandler),
		Now:    func() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.clock },
	}
	w.ts = httptest.NewServer(w.srv)
	t.Cleanup(w.ts.Close)
	return w
}

func (w *world) setClock(c time.Time) { w.mu.Lock(); w.clock = c; w.mu.Unlock() }

// send records a copy as the milter does and returns its link path.
func (w *world) send(scope, stream, rcpt string) string {
	w.t.Helper()
	ctx := context.Background()
	w.mu.Lock()
	w.next++
	id := w.next
	w.mu.Unlock()
	sc, _ := w.store.ID(ctx, store.ScopeName, scope)
	st, _ := w.store.ID(ctx, store.StreamName, stream)
	if err := w.store.AddSend(ctx, store.Send{ID: id, Scope: scope, Stream: stream, Recipient: rcpt, At: t0}); err != nil {
		w.t.Fatal(err)
	}
	tok, err := w.keys.Encode(token.Token{Kind: token.Copy, Time: t0, SendID: id, Scope: sc, Stream: st})
	if err != nil {
		w.t.Fatal(err)
	}
	return "/u/" + tok
}

func (w *world) suppressed(scope, stream, a string) (store.Suppression, bool) {
	w.t.Helper()
	s, ok, err := w.store.Lookup(context.Background(), store.Query{Scope: scope, Stream: stream, Address: a, At: t0.Add(time.Hour)})
	if err != nil {
		w.t.Fatal(err)
	}
	return s, ok
}

type response struct {
	status int
	header http.Header
	body   string
}

func (w *world) do(req *http.Request) response {
	w.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// oneClick is the request a mailbox provider makes (RFC 8058 §3.1 and
// its appendix A example).
func (w *world) oneClick(path string) response {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.ts.URL+path, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Mozilla/5.0 (compatible; Google-Safety; +http://www.google.com/bot.html)")
	return w.do(req)
}

func (w *world) get(path string) response {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.ts.URL+path, nil)
	return w.do(req)
}

func TestOneClickAsAMailboxProviderSendsIt(t *testing.T) {
	w := newWorld(t, "")
	path := w.send("acme", "news", "bob@example.com")
	r := w.oneClick(path)
	if r.status != http.StatusOK {
		t.Fatalf("one-click POST: %d\n%s", r.status, r.body)
	}
	// Recorded before the answer: it is there the moment the 200 is.
	s, ok := w.suppressed("acme", "", "bob@example.com")
	if !ok || s.Reason != store.Unsubscribe || s.Stream != "" {
		t.Fatalf("not suppressed when the 200 arrived: %+v %v", s, ok)
	}
	if r.header.Get("Location") != "" || r.header.Get("Set-Cookie") != "" {
		t.Errorf("redirect or cookie in the answer: %v", r.header)
	}
	if !strings.Contains(r.body, "You are unsubscribed") || !strings.Contains(r.body, "b•••@example.com") || strings.Contains(r.body, "bob@example.com") {
		t.Errorf("page:\n%s", r.body)
	}
	// The same request again (providers retry) records nothing more.
	if r := w.oneClick(path); r.status != http.StatusOK {
		t.Errorf("repeated POST: %d", r.status)
	}
	var n int
	w.store.Events(context.Background(), store.EventFilter{Address: "bob@example.com"}, func(store.Event) error { n++; return nil })
	if n != 1 || w.srv.Stats().Unsubscribed.Load() != 1 || w.srv.Stats().Repeated.Load() != 1 {
		t.Errorf("%d events, stats %d/%d", n, w.srv.Stats().Unsubscribed.Load(), w.srv.Stats().Repeated.Load())
	}
}

func TestOneClickMultipart(t *testing.T) {
	w := newWorld(t, "")
	path := w.send("acme", "news", "carol@example.com")
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("List-Unsubscribe", "One-Click")
	mw.Close()
	req, _ := http.NewRequest("POST", w.ts.URL+path, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if r := w.do(req); r.status != http.StatusOK {
		t.Fatalf("multipart POST: %d %s", r.status, r.body)
	}
	if _, ok := w.suppressed("acme", "", "carol@example.com"); !ok {
		t.Error("multipart one-click not recorded")
	}
}

func TestGetChangesNothing(t *testing.T) {
	w := newWorld(t, "")
	path := w.send("acme", "news", "dave@example.com")
	for _, m := range []string{"GET", "HEAD"} {
		req, _ := http.NewRequest(m, w.ts.URL+path, nil)
		r := w.do(req)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", m, r.status)
		}
		if m == "GET" && (!strings.Contains(r.body, `<form method="post" action="`+path+`">`) || !strings.Contains(r.body, `name="List-Unsubscribe" value="One-Click"`) ||
			!strings.Contains(r.body, "Unsubscribe from Acme Newsletter?") || !strings.Contains(r.body, "d•••@example.com") || strings.Contains(r.body, "<script")) {
			t.Errorf("confirmation page:\n%s", r.body)
		}
	}
	if _, ok := w.suppressed("acme", "", "dave@example.com"); ok {
		t.Fatal("a GET unsubscribed")
	}
	// A POST that is not the one-click request changes nothing either.
	req, _ := http.NewRequest("POST", w.ts.URL+path, strings.NewReader("something=else"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := w.do(req); r.status != http.StatusBadRequest {
		t.Errorf("POST without the one-click body: %d", r.status)
	}
	if _, ok := w.suppressed("acme", "", "dave@example.com"); ok {
		t.Fatal("a POST without List-Unsubscribe=One-Click unsubscribed")
	}
}

func TestInvalidLinksChangeNothing(t *testing.T) {
	w := newWorld(t, "")
	path := w.send("acme", "news", "erin@example.com")
	tok := strings.TrimPrefix(path, "/u/")
	other, _ := token.NewKeyring(token.Key{ID: 1, Secret: bytes.Repeat([]byte{4}, 32)})
	forged, _ := other.Encode(token.Token{Kind: token.Copy, Time: t0, SendID: w.next, Scope: 1, Stream: 1})
	flipped := []byte(tok) // one character changed: tampered
	if flipped[20] == 'a' {
		flipped[20] = 'b'
	} else {
		flipped[20] = 'a'
	}
	unknown, _ := w.keys.Encode(token.Token{Kind: token.Copy, Time: t0, SendID: 999999, Scope: 1, Stream: 1})
	cases := []struct {
		path string
		want int
	}{
		{"/u/" + forged, 404},
		{"/u/" + string(flipped), 404},
		{"/u/" + tok[:30], 404},
		{"/u/not-a-token", 404},
		{"/u/", 404},
		{"/elsewhere/" + tok, 404},
		{"/u/" + unknown, 404},
	}
	for _, c := range cases {
		for _, r := range []response{w.oneClick(c.path), w.get(c.path)} {
			if r.status != c.want || !strings.Contains(r.body, "This link is not valid") {
				t.Errorf("%s: %d\n%s", c.path, r.status, r.body)
			}
		}
	}
	if _, ok := w.suppressed("acme", "", "erin@example.com"); ok {
		t.Fatal("an invalid link unsubscribed")
	}
	st := w.srv.Stats()
	if st.Forged.Load() < 2 || st.Unknown.Load() != 2 || st.Malformed.Load() < 6 || st.Unsubscribed.Load() != 0 {
		t.Errorf("counted forged %d, unknown %d, malformed %d", st.Forged.Load(), st.Unknown.Load(), st.Malformed.Load())
	}
}

var undoRE = regexp.MustCompile(`<a href="(/u/[a-z2-7]+)">I did not mean to`)

func TestUndo(t *testing.T) {
	w := newWorld(t, "")
	path := w.send("acme", "news", "frank@example.com")
	r := w.oneClick(path)
	m := undoRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no undo link on:\n%s", r.body)
	}
	undo := m[1]
	// The undo page asks first.
	if g := w.get(undo); g.status != 200 || !strings.Contains(g.body, "Subscribe again to Acme Newsletter?") {
		t.Fatalf("undo page: %d\n%s", g.status, g.body)
	}
	if _, ok := w.suppressed("acme", "", "frank@example.com"); !ok {
		t.Fatal("the undo page's GET changed something")
	}
	// An unsubscribe link is not an undo link, and the other way round.
	req, _ := http.NewRequest("POST", w.ts.URL+undo, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := w.do(req); r.status != http.StatusBadRequest {
		t.Errorf("one-click body on the undo link: %d", r.status)
	}
	post := func(p string) response {
		req, _ := http.NewRequest("POST", w.ts.URL+p, strings.NewReader("confirm=yes"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return w.do(req)
	}
	if r := post(undo); r.status != 200 || !strings.Contains(r.body, "You are subscribed again") {
		t.Fatalf("undo: %d\n%s", r.status, r.body)
	}
	if _, ok := w.suppressed("acme", "", "frank@example.com"); ok {
		t.Fatal("still suppressed after the undo")
	}
	// Unsubscribed again: a new undo link; the same request again (a
	// provider retrying, an old link posted) gets none.
	m = undoRE.FindStringSubmatch(w.oneClick(path).body)
	if m == nil {
		t.Fatal("no undo link for a new unsubscribe")
	}
	if again := undoRE.FindStringSubmatch(w.oneClick(path).body); again != nil {
		t.Error("a repeated one-click got an undo link")
	}
	// Past undo_days the link is gone.
	w.setClock(t0.Add(8 * 24 * time.Hour))
	if r := post(m[1]); r.status != http.StatusGone {
		t.Errorf("an 8-day-old undo link: %d", r.status)
	}
	// An undo never lifts a complaint.
	w.setClock(t0)
	g := w.send("acme", "news", "grace@example.com")
	m = undoRE.FindStringSubmatch(w.oneClick(g).body)
	ev := store.Event{At: t0, Type: store.Complaint, Scope: "acme", Address: "grace@example.com", Source: "test"}
	w.store.Record(context.Background(), ev, store.Change{Op: store.Unsuppress, Scope: "acme", Address: "grace@example.com"})
	w.store.Record(context.Background(), ev, store.Change{Op: store.Suppress, Scope: "acme", Address: "grace@example.com", Reason: store.Complained})
	if r := post(m[1]); !strings.Contains(r.body, "Nothing to undo") {
		t.Errorf("undo over a complaint:\n%s", r.body)
	}
	if _, ok := w.suppressed("acme", "", "grace@example.com"); !ok {
		t.Error("an undo link lifted a complaint")
	}
	// Nor a hard bounce that came after the unsubscribe (the entry in
	// force keeps its first reason, unsubscribe).
	h := w.send("acme", "news", "hugo@example.com")
	m = undoRE.FindStringSubmatch(w.oneClick(h).body)
	bounce := store.Event{At: t0.Add(time.Minute), Type: store.Bounced, Scope: "acme", Address: "hugo@example.com", Hard: true, Reason: "userunknown", Source: "test"}
	if _, err := w.store.Record(context.Background(), bounce, store.Change{Op: store.Suppress, Scope: "acme", Address: "hugo@example.com", Reason: store.HardBounce}); err != nil {
		t.Fatal(err)
	}
	w.setClock(t0.Add(2 * time.Minute))
	if r := post(m[1]); !strings.Contains(r.body, "Nothing to undo") {
		t.Errorf("undo over a later hard bounce:\n%s", r.body)
	}
	if _, ok := w.suppressed("acme", "", "hugo@example.com"); !ok {
		t.Error("an undo link lifted a hard bounce")
	}
}

func TestStreamCoverage(t *testing.T) {
	w := newWorld(t, "")
	path := w.send("globex", "news", "hank@example.com")
	r := w.oneClick(path)
	if !strings.Contains(r.body, `the &#34;news&#34; mail from globex`) {
		t.Errorf("page does not say what stops:\n%s", r.body)
	}
	if _, ok := w.suppressed("globex", "news", "hank@example.com"); !ok {
		t.Error("news not stopped")
	}
	if _, ok := w.suppressed("globex", "offers", "hank@example.com"); ok {
		t.Error("globex covers the stream only, but offers stopped too")
	}
}

func TestRateLimitAndProxies(t *testing.T) {
	w := newWorld(t, "trusted_proxies = [\"127.0.0.1\"]")
	w.cfg.HTTP.RatePerMinute = 60
	path := w.send("acme", "news", "ivy@example.com")
	bad := "/u/" + strings.Repeat("a", 42)
	// Through the trusted proxy, two clients: each has its own
	// allowance (a burst of 20; a bad link costs 10).
	limited := func(client, p string) int {
		n := 0
		for range 40 {
			req, _ := http.NewRequest("GET", w.ts.URL+p, nil)
			req.Header.Set("X-Forwarded-For", "198.51.100.7, "+client)
			if w.do(req).status == http.StatusTooManyRequests {
				n++
			}
		}
		return n
	}
	if n := limited("203.0.113.1", bad); n != 38 {
		t.Errorf("client 1: %d of 40 bad links refused, want 38", n)
	}
	if n := limited("203.0.113.2", bad); n != 38 {
		t.Errorf("client 2: %d of 40 refused, want 38", n)
	}
	// A link that verifies is served whatever the allowance: a mailbox
	// provider posting its users' one-click requests from one address.
	if n := limited("203.0.113.1", path); n != 0 {
		t.Errorf("client 1, its allowance spent: %d of 40 good links refused, want 0", n)
	}
	req, _ := http.NewRequest("POST", w.ts.URL+path, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "198.51.100.7, 203.0.113.1")
	if r := w.do(req); r.status != http.StatusOK {
		t.Errorf("one-click from a client past its allowance: %d", r.status)
	}
	if _, ok := w.suppressed("acme", "", "ivy@example.com"); !ok {
		t.Error("the one-click was not recorded")
	}
	// A minute later the allowance is back.
	w.setClock(t0.Add(time.Minute))
	if n := limited("203.0.113.1", bad); n != 38 {
		t.Errorf("client 1 after a minute: %d refused", n)
	}
	// An IPv6 client is its /64: a new address of the same /64 for each
	// bad link shares one allowance; another /64 has its own.
	n := 0
	for i := range 40 {
		req, _ := http.NewRequest("GET", w.ts.URL+bad, nil)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("2001:db8:1:2:%x::1", i+1))
		if w.do(req).status == http.StatusTooManyRequests {
			n++
		}
	}
	if n != 38 {
		t.Errorf("40 addresses of one IPv6 /64: %d of 40 bad links refused, want 38", n)
	}
	if n := limited("2001:db8:1:3::1", bad); n != 38 {
		t.Errorf("another /64: %d of 40 refused, want 38", n)
	}
}

func TestConcurrentRequests(t *testing.T) {
	const n = 1000
	w := newWorld(t, "")
	paths := make([]string, n)
	for i := range paths {
		paths[i] = w.send("acme", "news", fmt.Sprintf("u%04d@example.com", i))
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", w.ts.URL+paths[i], strings.NewReader("List-Unsubscribe=One-Click"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Sprint(paths[i], ": ", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := 0
	w.store.Suppressions(context.Background(), store.Filter{Scope: "acme", At: t0}, func(store.Suppression) error { got++; return nil })
	if got != n || w.srv.Stats().Errors.Load() != 0 {
		t.Errorf("%d of %d unsubscribes recorded, %d errors", got, n, w.srv.Stats().Errors.Load())
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{"bob@example.com": "b•••@example.com", "jörg@x.example": "j•••@x.example", "x": "•••", "@d": "•••"} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
