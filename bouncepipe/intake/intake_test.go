package intake

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/bouncepipe"
	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
	"github.com/senderkit/senderkit/internal/token"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// env is a bounce domain with a store, keys, two scopes and a sink that
// plays the relay forwarded mail goes to.
type env struct {
	t     *testing.T
	cfg   *conf.Config
	keys  *token.Keyring
	store *sqlitestore.DB
	sink  *postfixlab.Sink
	clock time.Time
	next  uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	sink := postfixlab.NewSink(t)
	cfg, err := conf.Parse([]byte(fmt.Sprintf(`
state_dir = %q
[bounce]
domain = "bounces.example.test"
forward_to = "postmaster@example.test"
forward_relay = %q
  [[bounce.feedback_loop]]
  address = "fbl-yahoo"
  provider = "Yahoo"
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
`, dir, sink.Addr)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "s.db"), sqlitestore.Options{BusyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, _ := token.NewKeyring(token.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	return &env{t: t, cfg: cfg, keys: kr, store: st, sink: sink, clock: t0, next: 1000}
}

// send records a copy as the milter does and returns its token.
func (e *env) send(scope, stream, rcpt string) string {
	e.t.Helper()
	ctx := context.Background()
	sc, _ := e.store.ID(ctx, store.ScopeName, scope)
	stID, _ := e.store.ID(ctx, store.StreamName, stream)
	e.next++
	if err := e.store.AddSend(ctx, store.Send{ID: e.next, Scope: scope, Stream: stream, Recipient: rcpt, QueueID: "Q" + fmt.Sprint(e.next), At: e.clock}); err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.keys.Encode(token.Token{Kind: token.Copy, Time: e.clock, SendID: e.next, Scope: sc, Stream: stID})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) process(to, sender, msg string) (Outcome, error) {
	e.t.Helper()
	f, err := os.CreateTemp(e.t.TempDir(), "msg-*.eml")
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(msg)
	in := &Intake{Config: e.cfg, Keys: e.keys, Store: e.store, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.clock }}
	return in.Process(context.Background(), Envelope{Sender: sender, Recipient: to}, f)
}

func (e *env) suppressed(scope, a string) (store.Suppression, bool) {
	e.t.Helper()
	s, ok, err := e.store.Lookup(context.Background(), store.Query{Scope: scope, Address: a, At: e.clock})
	if err != nil {
		e.t.Fatal(err)
	}
	return s, ok
}

func (e *env) events(f store.EventFilter) []store.Event {
	e.t.Helper()
	var out []store.Event
	if err := e.store.Events(context.Background(), f, func(ev store.Event) error { out = append(out, ev); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// dsn is a bounce as Postfix writes it (RFC 3464), sent to the VERP
// address of the copy.
func dsn(verp, rcpt, status, diag string) string {
	return fmt.Sprintf(`Return-Path: <>
From: MAILER-DAEMON@lab.example.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: %[1]s
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host lab.example.test.

<%[2]s>: host mx.dest.example[192.0.2.25] said: %[4]s (in reply to RCPT TO command)

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; lab.example.test
X-Postfix-Queue-ID: 4XyZ1
Arrival-Date: Mon,  2 Nov 2026 10:00:00 +0000 (UTC)

Final-Recipient: rfc822; %[2]s
Original-Recipient: rfc822;%[2]s
Action: failed
Status: %[3]s
Remote-MTA: dns; mx.dest.example
Diagnostic-Code: smtp; %[4]s

--B
Content-Type: text/rfc822-headers

Return-Path: <%[1]s>
From: News <news@acme.example>
To: %[2]s
Subject: November news

--B--
`, verp, rcpt, status, diag)
}

// arf is a complaint report (RFC 5965) whose returned original carries
// the copy's tokens in List-Unsubscribe but not its recipient, as the
// big providers redact it.
func arf(tok, feedbackType string) string {
	return fmt.Sprintf(`From: Yahoo Feedback Loop <feedback@yahoo.example>
To: fbl-yahoo@bounces.example.test
Subject: FW: November news
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.10.

--F
Content-Type: message/feedback-report

Feedback-Type: %[2]s
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
Original-Mail-From: <b+%[1]s@bounces.example.test>
Arrival-Date: Mon, 02 Nov 2026 10:05:00 +0000
Reporting-MTA: dns; feedback.yahoo.example
Source-IP: 192.0.2.10

--F
Content-Type: message/rfc822

Return-Path: <redacted@bounces.example.test>
From: News <news@acme.example>
To: redacted@yahoo.example
Subject: November news
List-Unsubscribe: <mailto:unsubscribe+%[1]s@bounces.example.test>, <http://127.0.0.1:8025/u/%[1]s>
List-Unsubscribe-Post: List-Unsubscribe=One-Click

Hello.

--F--
`, tok, feedbackType)
}

const humanReply = `From: Carol <carol@dest.example>
To: News <news@acme.example>
Subject: Re: November news
Message-ID: <reply-1@dest.example>

Thanks, but could you send the December issue on paper?
`

func TestHardBounceSuppressesOnce(t *testing.T) {
	e := newEnv(t)
	tok := e.send("acme", "news", "gone@dest.example")
	verp := "b+" + tok + "@bounces.example.test"
	msg := dsn(verp, "gone@dest.example", "5.1.1", "550 5.1.1 <gone@dest.example>: Recipient address rejected: User unknown in virtual mailbox table")
	out, err := e.process(verp, "MAILER-DAEMON", msg)
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != bouncepipe.Bounce || out.Token != "verified" || out.Action != "suppressed" || out.Recipient != "gone@dest.example" || out.Events != 1 {
		t.Fatalf("outcome = %+v", out)
	}
	s, ok := e.suppressed("acme", "gone@dest.example")
	if !ok || s.Reason != store.HardBounce {
		t.Fatalf("not suppressed: %+v", s)
	}
	if _, ok := e.suppressed("globex", "gone@dest.example"); ok {
		t.Error("acme's bounce suppressed in globex")
	}
	evs := e.events(store.EventFilter{Address: "gone@dest.example"})
	if len(evs) != 1 || evs[0].Status != "5.1.1" || evs[0].ReplyCode != "550" || evs[0].SendID == 0 || evs[0].ReportingMTA != "lab.example.test" ||
		!strings.Contains(evs[0].Diagnostic, "User unknown") || evs[0].Stream != "news" {
		t.Errorf("event = %+v", evs)
	}
	// The same message handed over again changes nothing.
	out, err = e.process(verp, "MAILER-DAEMON", msg)
	if err != nil || out.Events != 0 || out.Duplicates != 1 {
		t.Errorf("second delivery: %+v %v", out, err)
	}
	if n := len(e.events(store.EventFilter{})); n != 1 {
		t.Errorf("%d events after a duplicate, want 1", n)
	}
}

// A message-level token (one token for every recipient of a
// transactional message) is in the Return-Path all of them see. A report
// to it is acted on only for an address Postfix's log shows the send
// went to, and never for a domain pattern: a made-up DSN cannot have
// strangers, or a whole domain, suppressed.
func TestMessageLevelTokenNamesNoStranger(t *testing.T) {
	e := newEnv(t)
	tok := e.send("acme", "receipts", "") // to ann and bob, one token
	verp := "b+" + tok + "@bounces.example.test"
	var sendID uint64 = e.next
	for _, a := range []string{"ann@dest.example", "bob@dest.example"} {
		ev := store.Event{At: e.clock, Type: store.Delivered, Scope: "acme", Stream: "receipts", Address: a, SendID: sendID, Source: "log",
			Key: store.DeliveryKey(sendID, a)}
		if _, err := e.store.Record(context.Background(), ev, store.Change{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, victim := range []string{"victim@dest.example", "*@dest.example"} {
		out, err := e.process(verp, "MAILER-DAEMON", dsn(verp, victim, "5.1.1", "550 5.1.1 user unknown"))
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != "unattributed" {
			t.Errorf("a report naming %s: %+v, want it unattributed", victim, out)
		}
		if _, ok := e.suppressed("acme", "victim@dest.example"); ok {
			t.Errorf("a report naming %s suppressed victim@dest.example", victim)
		}
	}
	// Bob, whom the send went to: suppressed.
	if _, err := e.process(verp, "MAILER-DAEMON", dsn(verp, "bob@dest.example", "5.1.1", "550 5.1.1 user unknown")); err != nil {
		t.Fatal(err)
	}
	if s, ok := e.suppressed("acme", "bob@dest.example"); !ok || s.Reason != store.HardBounce {
		t.Errorf("bob not suppressed: %+v", s)
	}
}

func TestSoftBounceThresholds(t *testing.T) {
	e := newEnv(t)
	day := 24 * time.Hour
	rcpt := "full@dest.example"
	// Three sends; each bounces softly. Day 0 and day 5: two sends but
	// only 5 days; day 14: the span is met.
	for i, at := range []time.Duration{0, 5 * day, 14 * day} {
		e.clock = t0.Add(at)
		tok := e.send("acme", "news", rcpt)
		verp := "b+" + tok + "@bounces.example.test"
		out, err := e.process(verp, "", dsn(verp, rcpt, "4.2.2", "452 4.2.2 <full@dest.example>: mailbox full, quota exceeded"))
		if err != nil {
			t.Fatal(err)
		}
		_, ok := e.suppressed("acme", rcpt)
		if want := i == 2; ok != want {
			for _, ev := range e.events(store.EventFilter{Address: rcpt}) {
				t.Logf("event %+v", ev)
			}
			t.Fatalf("bounce %d (day %d): suppressed=%v, want %v (outcome %+v)", i+1, at/day, ok, want, out)
		}
	}
	s, _ := e.suppressed("acme", rcpt)
	if s.Reason != store.SoftBounce || s.Expires.Sub(s.Created) != 30*day {
		t.Errorf("soft suppression: %+v", s)
	}
}

func TestSenderProblemIsNotTheRecipients(t *testing.T) {
	e := newEnv(t)
	tok := e.send("acme", "news", "fine@dest.example")
	verp := "b+" + tok + "@bounces.example.test"
	out, err := e.process(verp, "", dsn(verp, "fine@dest.example", "5.7.1",
		"554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.suppressed("acme", "fine@dest.example"); ok {
		t.Fatalf("a blocklist bounce suppressed the recipient: %+v", out)
	}
	evs := e.events(store.EventFilter{Address: "fine@dest.example"})
	if len(evs) != 1 || evs[0].Type != store.SenderProblem || evs[0].Scope != "acme" {
		t.Errorf("events = %+v", evs)
	}
}

func TestForgedTokenChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.send("acme", "news", "victim@dest.example")
	// A token made with a key we do not have, for a real send id.
	other, _ := token.NewKeyring(token.Key{ID: 1, Secret: bytes.Repeat([]byte{9}, 32)})
	forged, _ := other.Encode(token.Token{Kind: token.Copy, Time: t0, SendID: e.next, Scope: 1, Stream: 1})
	verp := "b+" + forged + "@bounces.example.test"
	out, err := e.process(verp, "", dsn(verp, "victim@dest.example", "5.1.1", "550 5.1.1 user unknown"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Token != "forged" || out.Action != "unattributed" {
		t.Errorf("outcome = %+v", out)
	}
	if _, ok := e.suppressed("acme", "victim@dest.example"); ok {
		t.Fatal("a forged bounce suppressed")
	}
	evs := e.events(store.EventFilter{Types: []store.EventType{store.Unattributed}})
	if len(evs) != 1 || evs[0].Reason != "forged" || evs[0].Scope != "" || evs[0].Status != "5.1.1" {
		t.Errorf("unattributed event = %+v", evs)
	}
	// No token at all: unattributable.
	out, _ = e.process("b+notatoken@bounces.example.test", "", dsn("b+x@bounces.example.test", "x@dest.example", "5.1.1", "550 no"))
	if out.Token != "none" || out.Action != "unattributed" {
		t.Errorf("no token: %+v", out)
	}
}

func TestComplaintFromFeedbackLoop(t *testing.T) {
	e := newEnv(t)
	tok := e.send("acme", "news", "angry@yahoo.example")
	out, err := e.process("fbl-yahoo@bounces.example.test", "", arf(tok, "abuse"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != bouncepipe.Complaint || out.Token != "verified" || out.Action != "suppressed" {
		t.Fatalf("outcome = %+v", out)
	}
	s, ok := e.suppressed("acme", "angry@yahoo.example")
	if !ok || s.Reason != store.Complained || s.Cause != nil && s.Cause.Source != "fbl:Yahoo" {
		t.Fatalf("suppression = %+v %v", s, ok)
	}
	if _, ok := e.suppressed("globex", "angry@yahoo.example"); ok {
		t.Error("a complaint crossed scopes")
	}
	evs := e.events(store.EventFilter{Address: "angry@yahoo.example"})
	if len(evs) != 1 || evs[0].Source != "fbl:Yahoo" || evs[0].FeedbackType != "abuse" || evs[0].ReportingMTA != "feedback.yahoo.example" {
		t.Errorf("complaint event = %+v", evs)
	}
	// The provider sends the same report again (our reply to it was
	// lost): our Postfix adds a Received field of its own; one complaint.
	again := "Received: from mx.yahoo.example by bounces.example.test; Mon, 2 Nov 2026 10:05:00 +0000\n" + arf(tok, "abuse")
	if out, err := e.process("fbl-yahoo@bounces.example.test", "", again); err != nil || out.Duplicates != 1 || out.Events != 0 {
		t.Errorf("the same report again: %+v %v, want a duplicate", out, err)
	}
	if n := len(e.events(store.EventFilter{Address: "angry@yahoo.example"})); n != 1 {
		t.Errorf("%d complaint events after the report came again, want 1", n)
	}
	// A complaint about a transactional stream is recorded, not acted on.
	tok = e.send("acme", "receipts", "buyer@yahoo.example")
	e.process("fbl-yahoo@bounces.example.test", "", arf(tok, "abuse"))
	if _, ok := e.suppressed("acme", "buyer@yahoo.example"); ok {
		t.Error("transactional complaint suppressed")
	}
}

func TestUnsubscribeByMail(t *testing.T) {
	e := newEnv(t)
	tok := e.send("globex", "bulk", "leaving@dest.example")
	msg := "From: leaving@dest.example\nTo: unsubscribe+" + tok + "@bounces.example.test\nSubject: unsubscribe\n\n"
	out, err := e.process("unsubscribe+"+tok+"@bounces.example.test", "leaving@dest.example", msg)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := e.suppressed("globex", "leaving@dest.example"); !ok || s.Reason != store.Unsubscribe {
		t.Fatalf("not unsubscribed: %+v %+v", out, s)
	}
	// The mailto address's token, not the From, decides whom: a forged
	// one changes nothing.
	out, _ = e.process("unsubscribe+"+strings.Repeat("a", 42)+"@bounces.example.test", "x@dest.example", msg)
	if out.Action != "unattributed" {
		t.Errorf("bad token: %+v", out)
	}
}

// An unsubscribe request that reaches the VERP address (Apple Mail
// sends its own to whatever address it finds) unsubscribes; it is no
// bounce, and leaves the copy's bounce key free for a real bounce.
func TestUnsubscribeToReturnPath(t *testing.T) {
	e := newEnv(t)
	tok := e.send("globex", "bulk", "apple@dest.example")
	msg := "From: apple@dest.example\nTo: b+" + tok + "@bounces.example.test\nSubject: Unsubscribe\nX-Apple-Unsubscribe: true\n\nunsubscribe\n"
	if _, err := e.process("b+"+tok+"@bounces.example.test", "apple@dest.example", msg); err != nil {
		t.Fatal(err)
	}
	if s, ok := e.suppressed("globex", "apple@dest.example"); !ok || s.Reason != store.Unsubscribe {
		t.Fatalf("not unsubscribed: %+v", s)
	}
	for _, ev := range e.events(store.EventFilter{Address: "apple@dest.example"}) {
		if ev.Type != store.Unsubscribed {
			t.Errorf("event %s %q, want only the unsubscribe", ev.Type, ev.Key)
		}
	}
}

func TestMailForAPersonIsForwarded(t *testing.T) {
	e := newEnv(t)
	tok := e.send("acme", "news", "carol@dest.example")
	verp := "b+" + tok + "@bounces.example.test"
	out, err := e.process(verp, "carol@dest.example", humanReply)
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != bouncepipe.Human || out.Action != "forwarded" {
		t.Fatalf("outcome = %+v", out)
	}
	got := e.sink.Wait(t, 1, 10*time.Second)
	if got[0].From != "" || len(got[0].To) != 1 || got[0].To[0] != "postmaster@example.test" {
		t.Errorf("forwarded envelope: from %q to %v", got[0].From, got[0].To)
	}
	body := strings.ReplaceAll(string(got[0].Data), "\r\n", "\n")
	if !strings.HasPrefix(body, "X-Senderkit-Forwarded-For: <"+verp+">\n") || !strings.HasSuffix(body, humanReply) {
		t.Errorf("forwarded message not intact:\n%s", body)
	}
	if _, ok := e.suppressed("acme", "carol@dest.example"); ok {
		t.Error("a human reply suppressed")
	}
	// A provider's administrative mail to a feedback-loop address, too.
	e.sink.Reset()
	out, _ = e.process("fbl-yahoo@bounces.example.test", "", "From: postmaster@yahoo.example\nSubject: Your feedback loop is confirmed\n\nWelcome.\n")
	if out.Action != "forwarded" {
		t.Errorf("administrative mail: %+v", out)
	}
	e.sink.Wait(t, 1, 10*time.Second)
	// A relay that refuses for now: temporary, nothing recorded.
	e.sink.SetRcptHandler(func(from, rcpt string) *smtpError { return tempRefusal })
	_, err = e.process(verp, "carol@dest.example", humanReply+"again\n")
	if !errors.Is(err, ErrTemporary) {
		t.Errorf("relay refusing: err = %v, want ErrTemporary", err)
	}
}

func TestUnreadableIsQuarantined(t *testing.T) {
	e := newEnv(t)
	msg := "\n\n\n" // no header, no text: nothing to read
	out, err := e.process("b+abc@bounces.example.test", "", msg)
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != "quarantined" {
		t.Fatalf("outcome = %+v", out)
	}
	files, _ := filepath.Glob(filepath.Join(e.cfg.Path(e.cfg.Bounce.QuarantineDir), "*"))
	if len(files) != 2 {
		t.Fatalf("quarantine holds %v", files)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.HasSuffix(f, ".eml") && string(b) != msg || strings.HasSuffix(f, ".txt") && !strings.Contains(string(b), "why: ") {
			t.Errorf("%s = %q", f, b)
		}
	}
	if evs := e.events(store.EventFilter{Types: []store.EventType{store.Quarantined}}); len(evs) != 1 {
		t.Errorf("quarantine events: %+v", evs)
	}
}

func TestStoreLockedIsTemporary(t *testing.T) {
	e := newEnv(t)
	tok := e.send("acme", "news", "x@dest.example")
	verp := "b+" + tok + "@bounces.example.test"
	raw, err := sql.Open("sqlite3", "file:"+e.store.Path()+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	if _, err := raw.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, err = e.process(verp, "", dsn(verp, "x@dest.example", "5.1.1", "550 5.1.1 no such user"))
	raw.Exec("ROLLBACK")
	if !errors.Is(err, ErrTemporary) || !errors.Is(err, store.ErrBusy) && !strings.Contains(err.Error(), "busy") {
		t.Fatalf("locked store: err = %v, want ErrTemporary", err)
	}
	if _, ok := e.suppressed("acme", "x@dest.example"); ok {
		t.Error("suppressed while the store was locked?")
	}
	// Once the lock is gone, the retry does the work.
	if out, err := e.process(verp, "", dsn(verp, "x@dest.example", "5.1.1", "550 5.1.1 no such user")); err != nil || out.Action != "suppressed" {
		t.Errorf("retry: %+v %v", out, err)
	}
}

type smtpError = smtp.SMTPError

var tempRefusal = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
