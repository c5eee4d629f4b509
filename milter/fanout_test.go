package milter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

func rcpts(n int) []string {
	var rs []string
	for i := 1; i <= n; i++ {
		rs = append(rs, fmt.Sprintf("r%d@dest.example", i))
	}
	return rs
}

// checkCopies checks that msgs are one copy per recipient in want, each
// with a token naming its own recipient, a queue ID of its own, and
// signatures that dkimpy verifies.
func (e *env) checkCopies(msgs []postfixlab.Message, want []string) {
	t := e.t
	t.Helper()
	got := byRcpt(t, msgs)
	if len(got) != len(want) {
		t.Fatalf("%d messages reached the sink, want %d", len(got), len(want))
	}
	qids := map[string]bool{}
	toks := map[string]bool{}
	for _, r := range want {
		m, ok := got[r]
		if !ok {
			t.Errorf("no copy for %s", r)
			continue
		}
		tok, send := e.copyOf(m)
		if send.Recipient != r {
			t.Errorf("the copy for %s has a token naming %q", r, send.Recipient)
		}
		if qids[send.QueueID] || toks[tok] {
			t.Errorf("the copy for %s shares its queue ID %s or token with another copy", r, send.QueueID)
		}
		qids[send.QueueID], toks[tok] = true, true
		if lu := header(t, m).Get("List-Unsubscribe"); !strings.Contains(lu, "+"+tok+"@") {
			t.Errorf("the copy for %s: List-Unsubscribe %q does not carry its token", r, lu)
		}
		e.checkSigned(m, "example.com/rsa2026", "example.com/ed2026")
	}
}

// A bulk message to five recipients leaves as five copies, each with a
// token naming its own recipient, all queued before the original is
// accepted; the copies name the original client and queue ID.
func TestBulkFanOut(t *testing.T) {
	e := newEnv(t, envOptions{})
	to := rcpts(5)
	if err := e.lab.Send("news@example.com", to, msg("news@example.com", "list@example.com", "news for five")); err != nil {
		t.Fatal(err)
	}
	// All five are queued when the client has its 250: no waiting.
	q, err := e.lab.Queue()
	if err != nil {
		t.Fatal(err)
	}
	inQueue := 0
	for _, x := range q {
		inQueue += len(x.Recipients)
	}
	if delivered := len(e.lab.Sink.Messages()); inQueue+delivered != 5 {
		t.Errorf("when the original was accepted, %d copies were queued and %d delivered; want 5", inQueue, delivered)
	}
	msgs := e.lab.Sink.Wait(t, 5, wait)
	e.lab.WaitQueueEmpty(t, wait)
	e.checkCopies(e.lab.Sink.Messages(), to)

	// The original kept its first recipient; each copy's smtpd logged
	// the original's queue ID (XFORWARD IDENT) and client.
	var orig string
	for _, m := range msgs {
		if m.To[0] == to[0] {
			_, s := e.copyOf(m)
			orig = s.QueueID
		}
	}
	if n := len(e.lab.LogLines(`senderkit-copy/smtpd\[\d+\]: \w+: client=localhost\[127.0.0.1\], orig_queue_id=` + orig)); n != 4 {
		t.Errorf("%d copies logged orig_queue_id=%s, want 4:\n%s", n, orig, strings.Join(e.lab.LogLines("senderkit-copy"), "\n"))
	}
}

// A submission that fails half-way (the copy service refuses the third
// recipient's copy for now, so the original is tempfailed after one
// copy was queued) and is then retried by the client delivers exactly
// one copy to each recipient: the retry leaves out the recipient whose
// copy was queued the first time.
func TestRetryAfterFailureHalfWay(t *testing.T) {
	e := newEnv(t, envOptions{lab: postfixlab.Options{
		Main: map[string]string{"copy_test_restrictions": "check_recipient_access inline:{r3@dest.example=DEFER_IF_PERMIT},permit_mynetworks,reject"},
	}})
	// The copy service's recipient restrictions come from main.cf, so
	// the test can change them.
	setTestRestrictions(t, e)

	to := rcpts(5)
	body := msg("news@example.com", "list@example.com", "news, retried")
	err := e.lab.Send("news@example.com", to, body)
	if err == nil || !strings.Contains(err.Error(), "451") || !strings.Contains(err.Error(), "r3@dest.example") {
		t.Fatalf("first submission: %v; want a 451 naming the copy for r3@dest.example", err)
	}
	e.lab.Sink.Wait(t, 1, wait)
	e.lab.WaitQueueEmpty(t, wait)
	if got := e.lab.Sink.Messages(); len(got) != 1 || got[0].To[0] != "r2@dest.example" {
		t.Fatalf("after the failed submission the sink has %d messages (%v), want r2's copy alone", len(got), got)
	}

	e.lab.Postconf("copy_test_restrictions=permit_mynetworks,reject")
	e.lab.Reload()
	if err := e.lab.Send("news@example.com", to, body); err != nil {
		t.Fatalf("retried submission: %v", err)
	}
	e.lab.Sink.Wait(t, 5, wait)
	e.lab.WaitQueueEmpty(t, wait)
	time.Sleep(500 * time.Millisecond) // a duplicate would be on its way
	e.checkCopies(e.lab.Sink.Messages(), to)
	if !regexp.MustCompile(`retried submission.*left_out=1`).MatchString(e.log.String()) {
		t.Errorf("the milter did not log leaving out one recipient:\n%s", e.log.String())
	}

	// A third submission of the same message reaches nobody again.
	if err := e.lab.Send("news@example.com", to, body); err != nil {
		t.Fatalf("third submission: %v", err)
	}
	e.lab.WaitLog(t, `milter-discard: END-OF-MESSAGE`, wait)
	e.lab.WaitQueueEmpty(t, wait)
	if n := len(e.lab.Sink.Messages()); n != 5 {
		t.Errorf("after the third submission the sink has %d messages, want 5", n)
	}
	_, one := e.copyOf(e.lab.Sink.Messages()[0])
	sends, err := e.st.SendsByMessageKey(context.Background(), one.MessageKey, time.Time{})
	if one.MessageKey == "" || err != nil || len(sends) != 5 {
		t.Errorf("%d sends recorded for the message (%v), want 5", len(sends), err)
	}
}

// setTestRestrictions points the copy service's recipient restrictions
// at the main.cf parameter copy_test_restrictions.
func setTestRestrictions(t *testing.T, e *env) {
	t.Helper()
	b := readMaster(t, e)
	const from = "-o smtpd_recipient_restrictions=permit_mynetworks,reject"
	if !strings.Contains(b, from) {
		t.Fatalf("master.cf has no %q", from)
	}
	writeMaster(t, e, strings.Replace(b, from, "-o smtpd_recipient_restrictions=$copy_test_restrictions", 1))
	e.lab.Reload()
}

func readMaster(t *testing.T, e *env) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.lab.ConfigDir(), "master.cf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeMaster replaces master.cf, backdated so that Postfix does not
// wait for it to settle.
func writeMaster(t *testing.T, e *env, text string) {
	t.Helper()
	p := filepath.Join(e.lab.ConfigDir(), "master.cf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-10 * time.Second)
	os.Chtimes(p, old, old)
}
