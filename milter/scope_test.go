package milter

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// withoutOwnReceived removes the Received field Postfix puts on top of
// what it relays (the milter never sees it).
func withoutOwnReceived(t testing.TB, data []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("Received: ")) {
		t.Fatalf("the message does not start with Postfix's Received field:\n%.300s", data)
	}
	i := bytes.Index(data, []byte("\r\n"))
	for bytes.HasPrefix(data[i+2:], []byte("\t")) || bytes.HasPrefix(data[i+2:], []byte(" ")) {
		i += 2 + bytes.Index(data[i+2:], []byte("\r\n"))
	}
	return data[i+2:]
}

// Mail with the null sender and mail outside every scope keep their
// envelope sender and get no List-Unsubscribe or Feedback-ID; they are
// signed when a signing rule matches their From domain, and otherwise
// pass byte for byte.
func TestNullSenderAndOutOfScope(t *testing.T) {
	e := newEnv(t, envOptions{})
	complete := func(from, to, subject string) []byte {
		// Message-ID and Date present, so that Postfix adds nothing.
		return msg(from, to, subject, "Message-ID: <"+strings.ReplaceAll(subject, " ", "-")+"@x.example>",
			"Date: Mon, 02 Nov 2026 10:00:00 +0000", "X-Senderkit-Stream: news", "X-Folded: one\r\n\ttwo")
	}
	cases := []struct {
		sender, from, rcpt string
		signed             bool
	}{
		{"", "mailer-daemon@example.com", "a@dest.example", true},                   // a DSN of a signed domain
		{"", "postmaster@elsewhere.example", "b@dest.example", false},               // a DSN of an unsigned domain
		{"app@elsewhere.example", "app@elsewhere.example", "c@dest.example", false}, // out of scope, unsigned
		{"app@elsewhere.example", "news@example.com", "d@dest.example", true},       // out of scope, signed
		{"app@elsewhere.example", "x@customer1.test", "e@dest.example", true},       // a "%" key
	}
	sent := map[string][]byte{}
	for _, c := range cases {
		body := complete(c.from, c.rcpt, "to "+c.rcpt)
		sent[c.rcpt] = body
		if err := e.lab.Send(c.sender, []string{c.rcpt}, body); err != nil {
			t.Fatalf("%s: %v", c.rcpt, err)
		}
	}
	got := byRcpt(t, e.lab.Sink.Wait(t, len(cases), wait))
	for _, c := range cases {
		m := got[c.rcpt]
		if m.From != c.sender {
			t.Errorf("%s: envelope sender %q, want %q as it came", c.rcpt, m.From, c.sender)
		}
		h := header(t, m)
		for _, f := range []string{"List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID"} {
			if h.Has(f) {
				t.Errorf("%s: got %s: %q", c.rcpt, f, h.Get(f))
			}
		}
		if !c.signed {
			if rest := withoutOwnReceived(t, m.Data); !bytes.Equal(rest, sent[c.rcpt]) {
				t.Errorf("%s: changed in transit:\ngot  %q\nwant %q", c.rcpt, rest, sent[c.rcpt])
			}
			continue
		}
		want := []string{"example.com/rsa2026", "example.com/ed2026"}
		if strings.HasSuffix(c.from, ".test") {
			want = []string{"customer1.test/mail"}
		}
		e.checkSigned(m, want...)
		// Signing adds the signatures and changes nothing else.
		rest := withoutOwnReceived(t, bytes.TrimPrefix(m.Data, m.Data[:bytes.Index(m.Data, []byte("Received: "))]))
		if !bytes.Equal(rest, sent[c.rcpt]) {
			t.Errorf("%s: signed, but changed beyond the signatures:\n%q", c.rcpt, m.Data)
		}
	}
}

// A message in scope must name one author: Gmail and Yahoo refuse bulk
// mail without a valid From, and DKIM alignment needs one. Such mail is
// refused at the end of DATA with a reason; mail whose signing key
// cannot be had is tempfailed, never sent unsigned.
func TestRefusedAndTempfailed(t *testing.T) {
	// As for a remote client: Postfix adds no From (nor rewrites one).
	e := newEnv(t, envOptions{lab: postfixlab.Options{Main: map[string]string{"local_header_rewrite_clients": ""}}})
	base := "To: <a@dest.example>\r\nSubject: s\r\n\r\nbody\r\n"
	for _, c := range []struct {
		sender, message string
		code            int
		status, text    string
	}{
		{"news@example.com", base, 550, "5.6.0", "senderkit: no From header field"},
		{"news@example.com", "From: <news@example.com>\r\nFrom: <other@example.com>\r\n" + base, 550, "5.6.0", "senderkit: 2 From header fields; RFC 5322 section 3.6 allows one"},
		{"news@example.com", "From: a@example.com, b@example.com\r\n" + base, 550, "5.6.0", "senderkit: From header field names 2 authors"},
		{"news@example.com", "From: <<<nonsense\r\n" + base, 550, "5.6.0", "senderkit: From header field"},
		// Out of scope with a SigningTable rule whose "%" key file is
		// missing for this domain: tempfailed, the client retries.
		{"app@elsewhere.example", "From: <x@customer2.test>\r\n" + base, 451, "4.3.0", "senderkit: DKIM for From x@customer2.test"},
		{"news@example.com", "From: <x@customer2.test>\r\n" + base, 451, "4.3.0", "senderkit: DKIM for From x@customer2.test"},
	} {
		err := e.lab.Send(c.sender, []string{"a@dest.example"}, []byte(c.message))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != c.code || fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]) != c.status ||
			!strings.HasPrefix(se.Message, c.text) {
			t.Errorf("%q: %v, want %d %s %s...", c.message, err, c.code, c.status, c.text)
		}
	}
	// Postfix logs the reason, with the queue ID.
	e.lab.WaitLog(t, `\w+: milter-reject: END-OF-MESSAGE .*: 4.3.0 senderkit: DKIM for From x@customer2.test: .*customer2.test.pem`, wait)
	if n := len(e.lab.Sink.Messages()); n != 0 {
		t.Errorf("%d refused messages reached the sink", n)
	}
}

// A header too large for the milter to hold (more than maxHeaderFields
// fields) is refused when the milter must sign or mark the message, and
// passes as it came when it would have changed nothing anyway.
func TestHeaderTooLarge(t *testing.T) {
	e := newEnv(t, envOptions{})
	big := func(from string) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, "From: <%s>\r\nTo: <a@dest.example>\r\nSubject: many fields\r\nMessage-ID: <many@x.example>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n", from)
		for i := range maxHeaderFields + 10 {
			fmt.Fprintf(&b, "X-Filler-%d: %d\r\n", i, i)
		}
		b.WriteString("\r\nbody\r\n")
		return []byte(b.String())
	}
	for _, c := range []struct{ sender, from string }{
		{"news@example.com", "news@example.com"},      // in scope
		{"app@elsewhere.example", "news@example.com"}, // out of scope, but signed
	} {
		err := e.lab.Send(c.sender, []string{"a@dest.example"}, big(c.from))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 552 || !strings.Contains(se.Message, "message header larger than") {
			t.Errorf("%s / From %s: %v, want 552 5.3.4", c.sender, c.from, err)
		}
	}
	// Out of scope and no signing rule: left as it came.
	body := big("app@elsewhere.example")
	if err := e.lab.Send("app@elsewhere.example", []string{"b@dest.example"}, body); err != nil {
		t.Fatalf("out of scope, unsigned: %v", err)
	}
	m := e.lab.Sink.Wait(t, 1, wait)[0]
	if rest := withoutOwnReceived(t, m.Data); !bytes.Equal(rest, body) {
		t.Errorf("changed in transit (%d bytes, sent %d)", len(rest), len(body))
	}
}
