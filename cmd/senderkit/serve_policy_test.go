package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/rules"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
	"github.com/senderkit/senderkit/policyd/dnstest"
)

// freeAddr returns a 127.0.0.1 address whose port was free.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `senderkit serve -c cfg` until the test ends and waits
// until its policy server listens.
func startServe(t *testing.T, cfg string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &lockedBuffer{}
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "-c", cfg}, strings.NewReader(""), log, log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d:\n%s", code, log.String())
		}
	})
	waitLog(t, log, "policy server listening")
	return log
}

const msg = "Subject: test\r\nFrom: news@acme.example\r\nTo: you@dest.example\r\n\r\nHello.\r\n"

// smtpCode returns the SMTP code of a refused submission, 0 for none.
// contribMainCF reads the parameters of contrib/postfix/policy.main.cf
// (continuation lines joined), with the policy address replaced.
func contribMainCF(t *testing.T, from, to string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../contrib/postfix/policy.main.cf")
	if err != nil {
		t.Fatal(err)
	}
	ps := map[string]string{}
	last := ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
			last = ""
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				t.Fatalf("policy.main.cf: continuation without a parameter: %q", line)
			}
			ps[last] = strings.TrimSpace(ps[last] + " " + strings.TrimSpace(line))
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("policy.main.cf: %q is not name = value", line)
			}
			last = strings.TrimSpace(k)
			ps[last] = strings.TrimSpace(v)
		}
	}
	if !strings.Contains(ps["smtpd_recipient_restrictions"], from) {
		t.Fatalf("policy.main.cf: smtpd_recipient_restrictions does not name %s: %q", from, ps["smtpd_recipient_restrictions"])
	}
	ps["smtpd_recipient_restrictions"] = strings.ReplaceAll(ps["smtpd_recipient_restrictions"], from, to)
	return ps
}

func smtpCode(err error) (int, string) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, se.Message
	}
	return 0, ""
}

// TestPolicySuppressionE2E: through a real Postfix with
// check_policy_service, a suppressed recipient is rejected at RCPT with
// the reason and date, another recipient passes, the same address from
// another scope passes, a scope's action may hold instead of reject, and
// an address suppressed while the server runs (by the CLI, another
// process's write) is refused soon after.
func TestPolicySuppressionE2E(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	policyAddr := freeAddr(t)
	cfgFile := writeFile(t, dir, "senderkit.toml", fmt.Sprintf(`state_dir = %q
[milter]
listen = ""
[http]
listen = ""
[policy]
listen = "inet:%s"
refresh = "50ms"
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
[[scope]]
name = "initech"
sender_domains = ["initech.example"]
suppressed_action = "hold"
`, state, policyAddr))
	// Suppressions recorded before the server starts, through the same
	// rules as the unsubscribe endpoint and the bounce pipe.
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(state, "senderkit.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	on := time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)
	ru := rules.Rules{Store: st, Config: cfg}
	for _, sc := range []string{"acme", "initech"} {
		if _, err := ru.Unsubscribe(context.Background(), store.Event{At: on, Scope: sc, Address: "bob@dest.example", Source: "http"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	startServe(t, cfgFile)
	// The lab installs contrib/postfix/policy.main.cf, pointed at this
	// test's port.
	lab := postfixlab.Start(t, postfixlab.Options{Main: contribMainCF(t, "127.0.0.1:10040", policyAddr)})

	err = lab.Send("news@acme.example", []string{"bob@dest.example"}, []byte(msg))
	code, text := smtpCode(err)
	if code != 550 || !strings.Contains(text, "recipient unsubscribed on 2026-11-02") {
		t.Errorf("acme -> bob (unsubscribed): %v; want 550 with the reason and date", err)
	}
	if err := lab.Send("news@acme.example", []string{"carol@dest.example"}, []byte(msg)); err != nil {
		t.Errorf("acme -> carol (not suppressed): %v", err)
	}
	if err := lab.Send("news@globex.example", []string{"bob@dest.example"}, []byte(msg)); err != nil {
		t.Errorf("globex -> bob (suppressed in acme only): %v", err)
	}
	got := lab.Sink.Wait(t, 2, 30*time.Second)
	var to []string
	for _, m := range got {
		to = append(to, m.From+">"+strings.Join(m.To, ","))
	}
	if len(got) != 2 {
		t.Errorf("the sink got %v, want carol from acme and bob from globex", to)
	}

	// initech holds a suppressed recipient's message rather than reject it.
	if err := lab.Send("news@initech.example", []string{"bob@dest.example"}, []byte(msg)); err != nil {
		t.Errorf("initech -> bob (held): %v", err)
	}
	lab.WaitLog(t, `: hold: RCPT from .*<bob@dest.example>: .*recipient unsubscribed on 2026-11-02`, 30*time.Second)

	// Suppressed by another process while the server runs.
	if r := runCLI(t, "", "suppress", "add", "dave@dest.example", "-scope", "acme", "-c", cfgFile); r.code != exitOK {
		t.Fatalf("suppress add: %+v", r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := lab.Send("news@acme.example", []string{"dave@dest.example"}, []byte(msg))
		if code, text := smtpCode(err); code == 550 && strings.Contains(text, "suppressed by the administrator on") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dave suppressed by the CLI is still accepted 30s later: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPolicyThrottleE2E: a sink that answers 451 "rate limited" for one
// destination makes senderkit, reading the maillog the real Postfix
// writes, defer new mail for that destination (and for another domain
// served by the same mail exchangers), not for others; the state shows
// in `senderkit report throttle`; and acceptance recovers once the sink
// is healthy again.
func TestPolicyThrottleE2E(t *testing.T) {
	dns := dnstest.Start(t, map[string][]string{
		"slow.example":  {"10 mx1.slowmail.example", "20 mx2.slowmail.example"},
		"slow2.example": {"5 mx9.slowmail.example"},
		"fast.example":  {"10 mx.fastmail.example"},
	})
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	policyAddr := freeAddr(t)
	var limited = func(from, rcpt string) *smtp.SMTPError {
		if strings.HasSuffix(rcpt, "@slow.example") {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "rate limited, try again later"}
		}
		return nil
	}
	lab := postfixlab.Start(t, postfixlab.Options{PolicyService: "inet:" + policyAddr, SinkHandler: limited})
	cfgFile := writeFile(t, dir, "senderkit.toml", fmt.Sprintf(`state_dir = %q
[milter]
listen = ""
[http]
listen = ""
[policy]
listen = "inet:%s"
maillog = %q
resolver = %q
[policy.throttle]
# Postfix retries the deferred mail every 1 to 3 seconds here: the rate
# must not grow between two of its 451s, but may soon after they stop.
window = "20s"
tempfails = 3
increase_every = "5s"
increase = 60
max_rate = 61
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
`, state, policyAddr, filepath.Join(lab.Dir, "maillog"), dns.Addr))
	log := startServe(t, cfgFile)

	// Mail to the slow destination is accepted until its deferrals,
	// read from the maillog, throttle it.
	deferred := ""
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; deferred == ""; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no deferral at RCPT after 60s of 451s from slow.example\nserve log:\n%s", log.String())
		}
		rcpt := fmt.Sprintf("u%d@slow.example", i)
		if i%2 == 1 {
			rcpt = fmt.Sprintf("u%d@slow2.example", i) // same mail exchangers
		}
		err := lab.Send("news@acme.example", []string{rcpt}, []byte(msg))
		switch code, text := smtpCode(err); {
		case err == nil:
			time.Sleep(200 * time.Millisecond)
		case code == 450 && strings.Contains(text, "destination slowmail.example is rate-limiting our mail") && strings.Contains(text, "try again after"):
			deferred = rcpt
			t.Logf("after %d messages, %s: %d %s", i, rcpt, code, text)
		default:
			t.Fatalf("%s: %v", rcpt, err)
		}
	}
	// Both domains of the group are deferred; another destination is not.
	for _, rcpt := range []string{"late@slow.example", "late@slow2.example"} {
		if code, _ := smtpCode(lab.Send("news@acme.example", []string{rcpt}, []byte(msg))); code != 450 {
			t.Errorf("%s accepted while its destination is throttled", rcpt)
		}
	}
	if err := lab.Send("news@acme.example", []string{"ok@fast.example"}, []byte(msg)); err != nil {
		t.Errorf("fast.example refused while only slowmail.example is throttled: %v", err)
	}
	// The state is saved for the CLI, a separate process.
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := runCLI(t, "", "report", "throttle", "-c", cfgFile)
		if r.code == exitOK && strings.Contains(r.stdout, "slowmail.example") && strings.Contains(r.stdout, "rate-limited") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report throttle does not show slowmail.example: %+v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Healthy again: the queued mail goes out, and acceptance recovers.
	lab.Sink.SetRcptHandler(nil)
	deadline = time.Now().Add(60 * time.Second)
	for {
		err := lab.Send("news@acme.example", []string{"again@slow2.example"}, []byte(msg))
		if err == nil {
			break
		}
		if code, _ := smtpCode(err); code != 450 || time.Now().After(deadline) {
			t.Fatalf("slow2.example after the sink recovered: %v\nserve log:\n%s", err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	lab.WaitQueueEmpty(t, 60*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := runCLI(t, "", "report", "throttle", "-c", cfgFile)
		if r.code == exitOK && !strings.Contains(r.stdout, "slowmail.example") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report throttle still shows slowmail.example after recovery: %+v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLogFollowerClosesTheLoopE2E: with the milter recording one send per
// copy (by its queue ID) and the log follower reading the maillog of the
// same real Postfix, a delivery becomes a "delivered" event and a
// remote's 550 5.1.1 a hard bounce of that send, which suppresses the
// recipient, whom the policy server then refuses at RCPT.
func TestLogFollowerClosesTheLoopE2E(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	lab := startWiredLab(t, func(from, rcpt string) *smtp.SMTPError {
		if rcpt == "gone@dest.example" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}
		}
		return nil
	})
	cfgFile := writeFile(t, dir, "senderkit.toml", lab.config(state, `
[[scope]]
name = "acme"
sender_domains = ["example.com"]
`))
	log := startServe(t, cfgFile)
	waitLog(t, log, "milter listening")

	body := []byte("From: news@example.com\r\nTo: you@dest.example\r\nSubject: news\r\n\r\nHello.\r\n")
	for _, rcpt := range []string{"ok@dest.example", "gone@dest.example"} {
		if err := lab.Send("news@example.com", []string{rcpt}, body); err != nil {
			t.Fatalf("%s: %v", rcpt, err)
		}
	}
	// The events, as the CLI (another process) sees them.
	st, err := sqlitestore.Open(context.Background(), filepath.Join(state, "senderkit.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitEvent := func(addr string, typ store.EventType) store.Event {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var found *store.Event
			st.Events(context.Background(), store.EventFilter{Address: addr}, func(e store.Event) error {
				if e.Type == typ && e.Source == "log" {
					found = &e
				}
				return nil
			})
			if found != nil {
				return *found
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s event from the log for %s after 30s\nserve log:\n%s", typ, addr, log.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	d := waitEvent("ok@dest.example", store.Delivered)
	b := waitEvent("gone@dest.example", store.Bounced)
	if d.SendID == 0 || d.Scope != "acme" || b.SendID == 0 || !b.Hard || b.Status != "5.1.1" {
		t.Errorf("events not attached to the milter's sends: delivered %+v, bounced %+v", d, b)
	}
	err = lab.Send("news@example.com", []string{"gone@dest.example"}, body)
	if code, text := smtpCode(err); code != 550 || !strings.Contains(text, "recipient address bounced permanently on") {
		t.Errorf("gone@dest.example after its bounce: %v; want refused at RCPT", err)
	}
}

// wiredLab is a private Postfix wired to senderkit as contrib/postfix
// says (milter, copy service, policy server), at fresh loopback
// addresses.
type wiredLab struct {
	*postfixlab.Lab
	milter, copy, policy string
}

// startWiredLab starts one, whose sink answers each recipient with sink.
func startWiredLab(t *testing.T, sink postfixlab.RcptHandler) *wiredLab {
	t.Helper()
	w := &wiredLab{milter: freeAddr(t), copy: freeAddr(t), policy: freeAddr(t)}
	opts := contribMilter(t, w.milter, w.copy)
	for k, v := range contribMainCF(t, "127.0.0.1:10040", w.policy) {
		opts.Main[k] = v
	}
	opts.SinkHandler = sink
	w.Lab = postfixlab.Start(t, opts)
	return w
}

// config is a senderkit configuration for serve with the milter, the
// policy server and the log follower wired to the lab, and no HTTP or
// metrics; extra adds scopes and the rest.
func (w *wiredLab) config(state, extra string) string {
	return fmt.Sprintf(`state_dir = %q
[bounce]
domain = "bounces.example.net"
[milter]
listen = "inet:%s"
copy_service = %q
[policy]
listen = "inet:%s"
maillog = %q
refresh = "50ms"
[http]
listen = ""
[metrics]
listen = ""
`, state, w.milter, w.copy, w.policy, filepath.Join(w.Dir, "maillog")) + extra
}
