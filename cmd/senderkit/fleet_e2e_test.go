package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/pgtest"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/pgstore"
	"github.com/senderkit/senderkit/internal/token"
)

// fleet is several relays on one PostgreSQL, sharing one token key ring:
// each its own state directory, configuration, `senderkit serve`
// (milter, policy server, unsubscribe endpoint, log follower) and
// private Postfix, whose bounce domain goes to `senderkit bouncepipe`
// run by pipe(8) as nobody.
type fleet struct {
	t      *testing.T
	dir    string
	pg     *pgtest.Server
	dsn    string
	keyDir string
	keys   *token.Keyring
	dkim   map[string]string // TXT records of the signing key
	relays []*relay
}

// relay is one relay of a fleet.
type relay struct {
	name     string
	cfgPath  string
	httpAddr string
	lab      *postfixlab.Lab
	log      *lockedBuffer
}

const fleetBounceDomain = "bounces.example.test"

// newFleet starts PostgreSQL and the relays, named relay-a, relay-b....
// handler answers RCPT at every relay's sink.
func newFleet(t *testing.T, relays int, handler postfixlab.RcptHandler) *fleet {
	t.Helper()
	postfixlab.NeedRoot(t, "the fleet end-to-end test")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, err := os.MkdirTemp("", "senderkit-fleet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)

	f := &fleet{t: t, dir: dir, pg: pgtest.Start(t, pgtest.Options{})}
	f.dsn = f.pg.NewDatabase(t)
	// One key ring for the fleet: a token signed by one relay verifies on
	// every other (the bounce may come back to, and the unsubscribe
	// click reach, any of them). The bounce pipes run as nobody.
	f.keyDir = filepath.Join(dir, "keys")
	if _, err := token.EnsureKey(f.keyDir); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(f.keyDir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	if f.keys, err = token.LoadKeyring(f.keyDir); err != nil {
		t.Fatal(err)
	}
	var keyTable string
	f.dkim, keyTable = keygen(t, dir, "acme.example", "fleet", "ed25519")
	writeFile(t, dir, "KeyTable", keyTable+"\n")
	writeFile(t, dir, "SigningTable", "*@acme.example fleet._domainkey.acme.example\n")

	bin := buildBinary(t)
	for i := range relays {
		name := "relay-" + string(rune('a'+i))
		rdir := filepath.Join(dir, name)
		state := filepath.Join(rdir, "state")
		if err := os.MkdirAll(state, 0o750); err != nil {
			t.Fatal(err)
		}
		os.Chmod(rdir, 0o755)
		milterAddr, policyAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
		r := &relay{name: name, cfgPath: filepath.Join(rdir, "senderkit.toml"), httpAddr: httpAddr}
		r.lab = postfixlab.Start(t, postfixlab.Options{
			Milters:       []string{"inet:" + milterAddr},
			PolicyService: "inet:" + policyAddr,
			SinkHandler:   handler,
			Pipes: []postfixlab.Pipe{{
				Service: "bouncepipe",
				Domain:  fleetBounceDomain,
				User:    "nobody",
				Argv:    []string{bin, "bouncepipe", "-c", r.cfgPath, "${sender}", "${recipient}"},
			}},
		})
		cfg := fmt.Sprintf(`state_dir = %q
[store]
dsn = %q
relay = %q
busy_timeout = "2s"
[tokens]
key_dir = %q
[bounce]
domain = %q
forward_relay = "127.0.0.1:1"
[milter]
listen = "inet:%s"
key_table = "refile:%s"
signing_table = "refile:%s"
[policy]
listen = "inet:%s"
refresh = "100ms"
maillog = %q
[http]
listen = %q
base_url = "https://unsubscribe.example.test/u/"
[metrics]
listen = ""
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
`, state, f.dsn, name, f.keyDir, fleetBounceDomain, milterAddr, filepath.Join(dir, "KeyTable"), filepath.Join(dir, "SigningTable"),
			policyAddr, filepath.Join(r.lab.Dir, "maillog"), httpAddr)
		if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		r.log = f.serve(r)
		f.relays = append(f.relays, r)
	}
	return f
}

// serve runs senderkit serve for r until the test ends.
func (f *fleet) serve(r *relay) *lockedBuffer {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &lockedBuffer{}
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "-c", r.cfgPath}, strings.NewReader(""), log, log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("%s: serve exited %d:\n%s", r.name, code, log.String())
		}
		if t.Failed() {
			t.Logf("%s: serve log:\n%s", r.name, log.String())
		}
	})
	waitLog(t, log, "policy server listening")
	waitLog(t, log, "milter listening")
	waitLog(t, log, "unsubscribe endpoint listening")
	return log
}

// store opens the fleet's store, as an administrator's CLI would.
func (f *fleet) store() *pgstore.DB {
	f.t.Helper()
	st, err := pgstore.Open(context.Background(), f.dsn, pgstore.Options{Relay: "test"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { st.Close() })
	return st
}

func fleetMessage(to string) []byte {
	return []byte("From: Acme News <news@acme.example>\r\nTo: <" + to + ">\r\nSubject: news for " + to + "\r\nMessage-ID: <" +
		strconv.FormatInt(time.Now().UnixNano(), 36) + "@acme.example>\r\n\r\nHello.\r\n")
}

var verpRE = regexp.MustCompile(`^b\+([a-z2-7]{42,48})@` + regexp.QuoteMeta(fleetBounceDomain) + `$`)

// checkSigned fails unless m left as senderkit sends it: a VERP sender
// whose token verifies with the fleet's keys, List-Unsubscribe naming
// the same token, and a DKIM signature of acme.example.
func (f *fleet) checkSigned(m postfixlab.Message) (tok string) {
	f.t.Helper()
	sm := verpRE.FindStringSubmatch(m.From)
	if sm == nil {
		f.t.Errorf("a copy to %v left with envelope sender %q: not VERP", m.To, m.From)
		return ""
	}
	if _, err := f.keys.Decode(sm[1]); err != nil {
		f.t.Errorf("a copy to %v: its token does not verify: %v", m.To, err)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Data)))
	if err != nil {
		f.t.Fatal(err)
	}
	if lu := h.Get("List-Unsubscribe"); !strings.Contains(lu, "/u/"+sm[1]+">") {
		f.t.Errorf("a copy to %v: List-Unsubscribe %q does not carry its token", m.To, lu)
	}
	if sig := h.Get("DKIM-Signature"); !strings.Contains(sig, "d=acme.example") || !strings.Contains(sig, "s=fleet") {
		f.t.Errorf("a copy to %v is not DKIM-signed by acme.example: %q", m.To, sig)
	}
	return sm[1]
}

// waitRefused sends to rcpt through r until the policy server refuses it
// with 550 and want in the text.
func (f *fleet) waitRefused(r *relay, rcpt, want string) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.lab.Send("news@acme.example", []string{rcpt}, fleetMessage(rcpt))
		code, text := smtpCode(err)
		if code == 550 && strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s still takes mail for %s 30s later: %v", r.name, rcpt, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFleetE2E: two relays, each with its own Postfix and senderkit serve,
// on one PostgreSQL and one token key ring. A bounce taken in by relay
// A's bounce pipe makes relay B refuse the recipient at RCPT; a one-click
// unsubscribe POSTed to relay B's endpoint, for a copy relay A sent,
// makes relay A refuse the recipient. What each relay wrote says so.
func TestFleetE2E(t *testing.T) {
	f := newFleet(t, 2, rejectAt(map[string]*smtp.SMTPError{
		"gone@dest.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@dest.example>: Recipient address rejected: User unknown"},
	}))
	a, b := f.relays[0], f.relays[1]

	// Relay A sends; the copy to gone@ bounces, and the bounce comes back
	// to A's bounce pipe.
	for _, rcpt := range []string{"gone@dest.example", "carol@dest.example"} {
		if err := a.lab.Send("news@acme.example", []string{rcpt}, fleetMessage(rcpt)); err != nil {
			t.Fatalf("relay A, %s: %v", rcpt, err)
		}
	}
	a.lab.WaitLog(t, `to=<gone@dest\.example>.*dsn=5\.1\.1, status=bounced`, 30*time.Second)
	a.lab.WaitLog(t, `relay=bouncepipe, .*status=sent`, 30*time.Second)
	// B has never seen gone@: its policy server learns of A's bounce
	// from the shared store.
	f.waitRefused(b, "gone@dest.example", "bounced permanently")

	// The copy to carol carries a one-click link; the click lands on
	// relay B (the fleet shares one unsubscribe URL behind a balancer).
	got := a.lab.Sink.Wait(t, 1, 30*time.Second)
	tok := f.checkSigned(got[0])
	resp, err := http.Post("http://"+b.httpAddr+"/u/"+tok, "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"List-Unsubscribe": {"One-Click"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("one-click POST to relay B: %s", resp.Status)
	}
	f.waitRefused(a, "carol@dest.example", "unsubscribed")

	// Who did what: the bounce by relay A's pipe, the unsubscribe by
	// relay B's endpoint, carol's delivery by relay A's log follower.
	st := f.store()
	want := map[string]string{"bounced gone@dest.example": "relay-a", "unsubscribe carol@dest.example": "relay-b",
		"delivered carol@dest.example": "relay-a"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := map[string]string{}
		st.Events(context.Background(), store.EventFilter{Scope: "acme"}, func(e store.Event) error {
			// The first of each: B's policy server may take one more
			// message to gone@ before its filter has caught up (it
			// refreshes every 100ms here), which B then bounces itself.
			if k := string(e.Type) + " " + e.Address; seen[k] == "" {
				seen[k] = e.Relay
			}
			return nil
		})
		missing := ""
		for k, v := range want {
			if seen[k] != v {
				missing += fmt.Sprintf(" %s by %q (got %q);", k, v, seen[k])
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events:%s", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The report sums the fleet and splits it by relay: the split adds
	// up to the sum, and relay A's row holds what A sent. (How many test
	// messages each relay took before its filter caught up varies.)
	sum := reportCSV(t, b.cfgPath)
	split := reportCSV(t, b.cfgPath, "-by-relay")
	if len(sum) != 1 || len(split) < 1 {
		t.Fatalf("report rows: fleet %v, by relay %v", sum, split)
	}
	total := make([]int, len(sum[0])-3)
	for _, row := range split {
		for i := range total {
			n, _ := strconv.Atoi(row[4+i])
			total[i] += n
		}
	}
	for i := range total {
		if c := 3 + i; c != 10 && c != 12 && fmt.Sprint(total[i]) != sum[0][c] { // not the rate, not the flag
			t.Errorf("column %d: relays add up to %d, the fleet says %s", c, total[i], sum[0][c])
		}
	}
	if a := split[0]; a[0] != "relay-a" || atoi(a[4]) < 2 || a[7] != "1" || a[12] != "1" {
		t.Errorf("relay A's row %v: want at least 2 sent, 1 hard bounce, 1 unsubscribe", a)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// reportCSV runs `senderkit report -format csv` and returns its rows
// without the header.
func reportCSV(t *testing.T, cfg string, args ...string) [][]string {
	t.Helper()
	r := runCLI(t, "", append([]string{"report", "-c", cfg, "-format", "csv"}, args...)...)
	if r.code != exitOK {
		t.Fatalf("report %v: %+v", args, r)
	}
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) < 1 {
		t.Fatalf("report %v: %v\n%s", args, err, r.stdout)
	}
	return rows[1:]
}

// TestFleetOutageE2E: PostgreSQL stops in the middle of traffic and
// starts again. While it is down the milter tempfails every message (no
// copy leaves unsigned), and bounces wait in Postfix's queue (the bounce
// pipe exits 75); once it is back, without a restart of senderkit, the
// deferred bounces come through Postfix's retry, the retried messages
// leave signed, and the policy server's filter follows the list again.
func TestFleetOutageE2E(t *testing.T) {
	gone := func(rcpt string) bool { return strings.HasPrefix(rcpt, "gone") }
	defer4xx := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try later"}
	f := newFleet(t, 1, func(from, rcpt string) *smtp.SMTPError {
		if gone(rcpt) {
			return defer4xx // held in Postfix's queue until the outage
		}
		return nil
	})
	a := f.relays[0]
	sent := 0
	send := func(rcpt string) error {
		return a.lab.Send("news@acme.example", []string{rcpt}, fleetMessage(rcpt))
	}

	// Before: traffic flows; three copies whose recipients are gone wait
	// in the queue (deferred by the remote).
	for i := range 3 {
		for _, rcpt := range []string{fmt.Sprintf("user%d@dest.example", i), fmt.Sprintf("gone%d@dest.example", i)} {
			if err := send(rcpt); err != nil {
				t.Fatalf("before the outage, %s: %v", rcpt, err)
			}
		}
		sent++
	}
	a.lab.WaitLogN(t, `to=<gone\d@dest\.example>.*status=deferred`, 3, 30*time.Second)
	// An address on the list: refused while the store answers.
	if r := runCLI(t, "", "suppress", "add", "blocked@dest.example", "-scope", "acme", "-c", a.cfgPath); r.code != exitOK {
		t.Fatalf("suppress add: %+v", r)
	}
	f.waitRefused(a, "blocked@dest.example", "suppressed by the administrator")

	f.pg.Stop()
	// Nobody can tell whether it is still listed: the policy server
	// follows policy.on_store_error (defer), and the milter, which looks
	// every recipient up at the end of the header, tempfails.
	err := send("blocked@dest.example")
	if code, text := smtpCode(err); code < 400 || code > 499 ||
		!strings.Contains(text, "cannot check the recipient") && !strings.Contains(text, "against the suppression list") {
		t.Errorf("a listed recipient while PostgreSQL is down: %v, want a 4xx for the suppression check", err)
	}
	// The remote now refuses the gone recipients for good: their bounces
	// reach the bounce pipe while the store is down.
	a.lab.Sink.SetRcptHandler(rejectAt(map[string]*smtp.SMTPError{
		"gone0@dest.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"},
		"gone1@dest.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"},
		"gone2@dest.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"},
	}))
	a.lab.Flush()
	a.lab.WaitLogN(t, `to=<gone\d@dest\.example>.*dsn=5\.1\.1, status=bounced`, 3, 30*time.Second)
	a.lab.WaitLog(t, `relay=bouncepipe, .*status=deferred`, 30*time.Second)
	// New mail while the store is down is refused for now: 4xx, never
	// accepted unsigned.
	var held []string
	for i := 3; i < 6; i++ {
		rcpt := fmt.Sprintf("user%d@dest.example", i)
		err := send(rcpt)
		if code, _ := smtpCode(err); code < 400 || code > 499 {
			t.Errorf("%s while PostgreSQL is down: %v, want a 4xx", rcpt, err)
		}
		held = append(held, rcpt)
	}
	if lines := a.lab.LogLines(`relay=bouncepipe, .*status=sent`); len(lines) > 0 {
		t.Errorf("a bounce was taken in while the store was down: %v", lines)
	}

	f.pg.Restart()
	// The client tries again, as any sender does after a 4xx: the same
	// serve, untouched, takes it now.
	deadline := time.Now().Add(60 * time.Second)
	for _, rcpt := range held {
		for {
			err := send(rcpt)
			if err == nil {
				sent++
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is still refused after PostgreSQL came back: %v", rcpt, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// The deferred bounces come back through Postfix's retry, each once.
	a.lab.Flush()
	a.lab.WaitLogN(t, `relay=bouncepipe, .*status=sent`, 3, 60*time.Second)
	st := f.store()
	var bounces []string
	st.Events(context.Background(), store.EventFilter{Types: []store.EventType{store.Bounced}}, func(e store.Event) error {
		if gone(e.Address) {
			bounces = append(bounces, fmt.Sprintf("%s (%s, key %s)", e.Address, e.Source, e.Key))
		}
		return nil
	})
	if len(bounces) != 3 {
		t.Errorf("bounces recorded for the three gone recipients: %v, want one each", bounces)
	}
	for i := range 3 {
		f.waitRefused(a, fmt.Sprintf("gone%d@dest.example", i), "bounced permanently")
	}

	// Every copy that reached the remote is signed: none slipped out
	// during the outage.
	msgs := a.lab.Sink.Wait(t, 3+len(held), 60*time.Second)
	users := map[string]bool{}
	for _, m := range msgs {
		f.checkSigned(m)
		for _, to := range m.To {
			if strings.HasPrefix(to, "user") { // blocked@ may have had one before the filter caught up
				users[to] = true
			}
		}
	}
	if len(users) != 6 {
		t.Errorf("the remote got mail for %v, want user0..user5", users)
	}
	log := a.log.String()
	for _, want := range []string{"the suppression filter cannot be refreshed", "the suppression filter is refreshed again"} {
		if !strings.Contains(log, want) {
			t.Errorf("serve's log lacks %q", want)
		}
	}
	_ = sent
}
