package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// TestScopeVettingE2E is the vetting scenario on a real Postfix with
// senderkit serve (milter, policy server, log follower, vetter) and the
// bounce pipe: scope acme's bulk mail draws a complaint (an ARF report
// about one of its real copies) and hard bounces past its thresholds;
// acme is paused, so its next bulk message is deferred at RCPT with the
// reason and one whose stream header chooses the bulk stream is
// deferred by the milter, while its transactional mail and scope
// globex's mail pass; scope status shows exactly the scripted figures;
// after `scope resume acme` its bulk mail flows again.
func TestScopeVettingE2E(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	lab := startWiredLab(t, func(from, rcpt string) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, "gone") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}
		}
		return nil
	})
	cfgFile := writeFile(t, dir, "senderkit.toml", lab.config(state, `
[vetting]
interval = "200ms"
window = "24h"
min_sent = 10
complaint_percent = 10
hard_bounce_percent = 20
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
  senders = ["billing@acme.example"]
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
`))
	log := startServe(t, cfgFile)
	waitLog(t, log, "milter listening")

	st, err := sqlitestore.Open(context.Background(), filepath.Join(state, "senderkit.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	count := func(typ store.EventType, scope string) int {
		n := 0
		st.Events(context.Background(), store.EventFilter{Scope: scope, Types: []store.EventType{typ}}, func(store.Event) error { n++; return nil })
		return n
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 60s\nserve log:\n%s\nmaillog:\n%s", what, log.String(), lab.Log())
			}
		}
	}
	mail := func(from, to, extra string) []byte {
		return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: news\r\n%s\r\nHello.\r\n", from, to, extra))
	}
	send := func(from, to, extra string) error { return lab.Send(from, []string{to}, mail(from, to, extra)) }

	// Seven copies delivered, then a complaint about one of them: below
	// min_sent, nothing is judged yet.
	for i := 1; i <= 7; i++ {
		if err := send("news@acme.example", fmt.Sprintf("reader%d@dest.example", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("7 deliveries", func() bool { return count(store.Delivered, "acme") == 7 })
	// The complained-about copy's token, as the milter wrote it into
	// its envelope sender (qmgr logs it).
	verp := regexp.MustCompile(`from=<b\+([A-Za-z0-9]+)@bounces\.example\.net>`)
	lines := lab.LogLines(verp.String())
	if len(lines) == 0 {
		t.Fatalf("no VERP sender in the maillog:\n%s", lab.Log())
	}
	tok := verp.FindStringSubmatch(lines[0])[1]
	tmpl, err := os.ReadFile("../../testdata/arf/abuse-redacted.eml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	arf := strings.ReplaceAll(strings.ReplaceAll(string(tmpl), "{{TOKEN}}", tok), "bounces.example.test", "bounces.example.net")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"bouncepipe", "-c", cfgFile, "feedback@fbl.yahoo.example", "abuse@bounces.example.net"},
		strings.NewReader(arf), &out, &out); code != exitOK {
		t.Fatalf("bouncepipe exited %d: %s", code, out.String())
	}
	if n := count(store.Complaint, "acme"); n != 1 {
		t.Fatalf("%d complaints recorded; want 1\n%s", n, out.String())
	}
	time.Sleep(time.Second) // five vetting rounds: 7 copies are below min_sent
	if n := count(store.Paused, "acme"); n != 0 {
		t.Fatalf("acme paused below min_sent")
	}
	// Three copies to addresses that do not exist: the tenth copy brings
	// acme to min_sent with 1 complaint of 7 delivered (14 % > 10 %),
	// and the bounces bring its hard-bounce rate to 30 % (> 20 %).
	for i := 1; i <= 3; i++ {
		if err := send("news@acme.example", fmt.Sprintf("gone%d@dest.example", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("3 hard bounces", func() bool { return count(store.Bounced, "acme") == 3 })
	waitFor("acme's pause", func() bool { return count(store.Paused, "acme") == 1 })
	waitLog(t, log, "scope paused: its bulk mail is deferred")
	// Both the policy server and the milter have read the pause.
	waitLog(t, log, `msg="scope paused: deferring its bulk mail" component=policy scope=acme`)
	waitLog(t, log, `msg="scope paused: deferring its bulk mail" component=milter scope=acme`)

	// acme's next bulk message is deferred at RCPT, with the reason.
	err = send("news@acme.example", "reader8@dest.example", "")
	code, text := smtpCode(err)
	if code != 450 && code != 451 || !strings.Contains(text, "mail from acme is paused since") ||
		!strings.Contains(text, "complaint rate 14 % (1 of 7 delivered copies sent in the last 24h) is above 10 %") {
		t.Errorf("acme's bulk mail while paused: %v", err)
	}
	// A bulk stream chosen by header, on a sender that selects the
	// transactional stream at RCPT: the milter defers it.
	err = send("billing@acme.example", "reader9@dest.example", "X-Senderkit-Stream: news\r\n")
	if code, text := smtpCode(err); code != 451 || !strings.Contains(text, "mail from acme is paused since") {
		t.Errorf("acme's bulk mail chosen by header while paused: %v", err)
	}
	// acme's transactional mail and globex's mail pass.
	if err := send("billing@acme.example", "buyer@dest.example", ""); err != nil {
		t.Errorf("acme's transactional mail while paused: %v", err)
	}
	if err := send("news@globex.example", "reader1@dest.example", ""); err != nil {
		t.Errorf("globex's mail while acme is paused: %v", err)
	}
	waitFor("the receipt's and globex's deliveries", func() bool {
		return count(store.Delivered, "acme") == 8 && count(store.Delivered, "globex") == 1
	})

	// scope status: exactly the scripted figures.
	out.Reset()
	if code := run(context.Background(), []string{"scope", "status", "-c", cfgFile, "-format", "json"}, strings.NewReader(""), &out, &out); code != exitOK {
		t.Fatalf("scope status exited %d: %s", code, out.String())
	}
	var status scopeStatus
	if err := json.Unmarshal(out.Bytes(), &status); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	byName := map[string]scopeJSON{}
	for _, s := range status.Scopes {
		byName[s.Name] = s
	}
	acme, globex := byName["acme"], byName["globex"]
	type fig struct{ sent, delivered, hard, unknown, complaints int }
	figOf := func(w windowJSON) fig { return fig{w.Sent, w.Delivered, w.HardBounced, w.UnknownUser, w.Complaints} }
	if acme.State != "paused" || acme.Pause == nil || acme.Pause.Reason != "complaint-rate" || acme.Pause.Source != "vetting" {
		t.Errorf("acme's state: %s %+v", acme.State, acme.Pause)
	}
	for _, w := range acme.Windows {
		if got, want := figOf(w), (fig{11, 8, 3, 3, 1}); got != want {
			t.Errorf("acme, window %s: %+v; want %+v", w.Window, got, want)
		}
	}
	streams := map[string]fig{}
	for _, s := range acme.Streams {
		streams[s.Name] = figOf(s.Windows[1])
	}
	if streams["news"] != (fig{10, 7, 3, 3, 1}) || streams["receipts"] != (fig{1, 1, 0, 0, 0}) {
		t.Errorf("acme's streams over 24h: %+v", streams)
	}
	if acme.Judged == nil || figOf(*acme.Judged) != (fig{11, 8, 3, 3, 1}) || acme.Judged.HardBounceRate != 100*3.0/11 ||
		acme.Judged.ComplaintRate != 100*1.0/8 {
		t.Errorf("acme judged: %+v", acme.Judged)
	}
	if globex.State != "sending" || figOf(globex.Windows[1]) != (fig{1, 1, 0, 0, 0}) {
		t.Errorf("globex: %+v", globex)
	}

	// The table says the same, for a person.
	out.Reset()
	if code := run(context.Background(), []string{"scope", "status", "-c", cfgFile}, strings.NewReader(""), &out, &out); code != exitOK {
		t.Fatalf("scope status exited %d: %s", code, out.String())
	}
	for _, want := range []string{
		"acme: PAUSED since ", "(complaint-rate, by vetting): complaint rate 14 % (1 of 7 delivered copies sent in the last 24h) is above 10 %",
		"globex: sending",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("scope status lacks %q:\n%s", want, out.String())
		}
	}
	// window, stream, sent, delivered, deferred, hard, unknown, soft,
	// problems, complaints, unsubscribes, then the four rates.
	if row := `judged 24h\s+\(all\)\s+11\s+8\s+0\s+3\s+3\s+0\s+0\s+1\s+0\s+12\s+27\s+27\s+0\n`; !regexp.MustCompile(row).MatchString(out.String()) {
		t.Errorf("scope status lacks the judged row %s:\n%s", row, out.String())
	}

	// An administrator resumes acme: its bulk mail flows again, and the
	// copies that paused it do not pause it again.
	out.Reset()
	if code := run(context.Background(), []string{"scope", "resume", "-c", cfgFile, "-note", "list cleaned", "acme"}, strings.NewReader(""), &out, &out); code != exitOK ||
		!strings.Contains(out.String(), "scope acme resumed") {
		t.Fatalf("scope resume exited %d: %s", code, out.String())
	}
	waitLog(t, log, `msg="scope resumed: accepting its mail again" component=policy scope=acme`)
	waitLog(t, log, `msg="scope resumed: accepting its mail again" component=milter scope=acme`)
	if err := send("news@acme.example", "reader10@dest.example", ""); err != nil {
		t.Errorf("acme's bulk mail after the resume: %v", err)
	}
	time.Sleep(time.Second) // five vetting rounds
	if n := count(store.Paused, "acme"); n != 1 {
		t.Errorf("%d pauses of acme after the resume; want 1 (a resume starts a clean slate)", n)
	}
	if n := count(store.Resumed, "acme"); n != 1 {
		t.Errorf("%d resume events; want 1", n)
	}
}
