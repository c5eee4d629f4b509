package milter

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/store"
)

// suppress lists address in scope acme: for one stream, or for the whole
// scope when stream is "".
func (e *env) suppress(address, stream string, reason store.Reason) {
	e.t.Helper()
	ev := store.Event{At: time.Now(), Type: store.Unsubscribed, Scope: "acme", Stream: stream, Address: address, Source: "test"}
	ch := store.Change{Op: store.Suppress, Scope: "acme", Stream: stream, Address: address, Reason: reason}
	if _, err := e.st.Record(context.Background(), ev, ch); err != nil {
		e.t.Fatal(err)
	}
}

// An entry for one stream (an unsubscribe from the newsletter) can only
// be matched once the stream is known, at the end of the header: the
// milter removes such recipients, refuses a message left with none, and
// lets the scope's other streams through. A whole-scope entry is caught
// there too when no policy server refused it at RCPT (this lab has none).
func TestSuppressedAtEndOfData(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.suppress("ann@dest.example", "news", store.Unsubscribe)
	e.suppress("cat@dest.example", "", store.HardBounce)

	// The newsletter to Ann alone: refused, with the reason.
	err := e.lab.Send("news@example.com", []string{"ann@dest.example"}, msg("news@example.com", "ann@dest.example", "news for ann"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "senderkit: recipient unsubscribed on ") {
		t.Errorf("news to ann: %v, want 550 5.7.1 ... recipient unsubscribed on ...", err)
	}
	// The newsletter to Ann, Bob and Cat: one copy, Bob's.
	to := []string{"ann@dest.example", "bob@dest.example", "cat@dest.example"}
	if err := e.lab.Send("news@example.com", to, msg("news@example.com", "list@example.com", "news for three")); err != nil {
		t.Fatal(err)
	}
	// A receipt to Ann: her unsubscribe from the news does not cover it.
	if err := e.lab.Send("orders@example.com", []string{"ann@dest.example"}, msg("orders@example.com", "ann@dest.example", "your order")); err != nil {
		t.Fatal(err)
	}
	e.lab.Sink.Wait(t, 2, wait)
	e.lab.WaitQueueEmpty(t, wait)
	var got []string
	for _, m := range e.lab.Sink.Messages() {
		got = append(got, strings.Join(m.To, ",")+" "+header(t, m).Get("Subject"))
	}
	if strings.Join(got, "; ") != "bob@dest.example news for three; ann@dest.example your order" &&
		strings.Join(got, "; ") != "ann@dest.example your order; bob@dest.example news for three" {
		t.Errorf("delivered: %q, want Bob's news and Ann's receipt only", got)
	}
	if n := e.srv.Stats().Suppressed.Load(); n != 3 {
		t.Errorf("%d recipients counted as suppressed, want 3", n)
	}
	e.lab.WaitLog(t, `\w+: milter-reject: END-OF-MESSAGE .*: 5.7.1 senderkit: recipient unsubscribed on `, wait)
	if l := e.log.String(); !strings.Contains(l, `msg="suppressed recipient removed"`) || !strings.Contains(l, "rcpt=cat@dest.example") {
		t.Errorf("the milter's log does not name the removed recipients:\n%s", l)
	}
}

// With suppressed_action = "hold", a message whose recipients are all
// suppressed waits in Postfix's hold queue for an administrator.
func TestSuppressedHeld(t *testing.T) {
	e := newEnv(t, envOptions{scopes: strings.Replace(defaultScopes, `sender_domains = ["example.com"]`,
		`sender_domains = ["example.com"]`+"\nsuppressed_action = \"hold\"", 1)})
	e.suppress("ann@dest.example", "news", store.Unsubscribe)
	if err := e.lab.Send("news@example.com", []string{"ann@dest.example"}, msg("news@example.com", "ann@dest.example", "held news")); err != nil {
		t.Fatalf("held message: %v, want it accepted", err)
	}
	e.lab.WaitLog(t, `\w+: milter-hold: END-OF-MESSAGE .*milter triggers HOLD action`, wait)
	if l := e.log.String(); !strings.Contains(l, `msg="message held: every recipient is suppressed"`) || !strings.Contains(l, "recipient unsubscribed on ") {
		t.Errorf("the milter's log does not say why the message is held:\n%s", l)
	}
	q, err := e.lab.Queue()
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Queue != "hold" {
		t.Fatalf("queue %+v, want the message in the hold queue", q)
	}
	if n := len(e.lab.Sink.Messages()); n != 0 {
		t.Errorf("%d messages reached the sink", n)
	}
	// Released by an administrator, it leaves as any other: signed,
	// with its VERP sender and a token naming Ann.
	if err := e.lab.Release(q[0].ID); err != nil {
		t.Fatal(err)
	}
	m := e.lab.Sink.Wait(t, 1, wait)[0]
	if _, send := e.copyOf(m); send.Recipient != "ann@dest.example" {
		t.Errorf("the released message's token names %q", send.Recipient)
	}
	e.checkSigned(m, "example.com/rsa2026", "example.com/ed2026")
}

// sendmail -t takes the recipients from the header: Postfix names them
// to non_smtpd_milters too, so the message leaves signed, with its VERP
// sender and a token naming its recipient, never taken for a message
// whose recipients were all suppressed.
func TestSendmailHeaderRecipients(t *testing.T) {
	e := newEnv(t, envOptions{})
	cmd := exec.Command("sendmail", "-C", e.lab.ConfigDir(), "-i", "-t", "-f", "news@example.com")
	if p, err := exec.LookPath("/usr/sbin/sendmail"); err == nil {
		cmd.Path = p
	}
	cmd.Stdin = bytes.NewReader(msg("news@example.com", "bob@dest.example", "by sendmail -t"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail -t: %v: %s", err, out)
	}
	m := e.lab.Sink.Wait(t, 1, wait)[0]
	if len(m.To) != 1 || m.To[0] != "bob@dest.example" {
		t.Fatalf("delivered to %v", m.To)
	}
	if _, send := e.copyOf(m); send.Recipient != "bob@dest.example" {
		t.Errorf("the token names %q, want bob@dest.example", send.Recipient)
	}
	e.checkSigned(m, "example.com/rsa2026", "example.com/ed2026")
}
