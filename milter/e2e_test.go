package milter

import (
	"bytes"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// byRcpt indexes received messages by their one recipient.
func byRcpt(t testing.TB, msgs []postfixlab.Message) map[string]postfixlab.Message {
	t.Helper()
	m := map[string]postfixlab.Message{}
	for _, x := range msgs {
		if len(x.To) != 1 {
			t.Fatalf("a message for %d recipients %v reached the sink; each copy must have one", len(x.To), x.To)
		}
		if _, dup := m[x.To[0]]; dup {
			t.Fatalf("two messages for %s reached the sink", x.To[0])
		}
		m[x.To[0]] = x
	}
	return m
}

// checkSigned checks that dkimpy verifies both signatures of m, the RSA
// and the Ed25519 one of example.com.
func (e *env) checkSigned(m postfixlab.Message, want ...string) {
	e.t.Helper()
	sigs := dkimpy(e.t, m.Data, e.records)
	var got []string
	for _, s := range sigs {
		if !s.OK {
			e.t.Errorf("message to %v: dkimpy fails the signature d=%s s=%s:\n%s", m.To, s.Domain, s.Selector, m.Data)
		}
		got = append(got, s.Domain+"/"+s.Selector)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		e.t.Errorf("message to %v: signatures %v, want %v", m.To, got, want)
	}
}

// Mail submitted by SMTP and by sendmail(1) leaves with the VERP sender,
// List-Unsubscribe and -Post, Feedback-ID, a Message-ID and a Date, and
// an RSA and an Ed25519 signature that python3-dkim verifies against the
// published keys; the send is recorded under the queue ID Postfix logs
// the delivery with.
func TestSMTPAndSendmail(t *testing.T) {
	// Postfix adds a missing Message-ID and Date only for local SMTP
	// clients (and for sendmail): make the SMTP client remote-like, so
	// that the milter adds them.
	e := newEnv(t, envOptions{lab: postfixlab.Options{Main: map[string]string{"local_header_rewrite_clients": ""}}})
	body := msg("news@example.com", "alice@dest.example", "by SMTP", "X-Folded: a header\r\n\tfolded over two lines")
	if err := e.lab.Send("news@example.com", []string{"alice@dest.example"}, body); err != nil {
		t.Fatal(err)
	}
	if err := e.lab.Sendmail("news@example.com", []string{"bob@dest.example"}, msg("news@example.com", "bob@dest.example", "by sendmail",
		"X-Senderkit-Stream: News")); err != nil {
		t.Fatal(err)
	}
	if err := e.lab.Sendmail("orders@example.com", []string{"carol@dest.example"}, msg("orders@example.com", "carol@dest.example", "a receipt")); err != nil {
		t.Fatal(err)
	}
	got := byRcpt(t, e.lab.Sink.Wait(t, 3, wait))
	for _, rcpt := range []string{"alice@dest.example", "bob@dest.example", "carol@dest.example"} {
		m := got[rcpt]
		h := header(t, m)
		tok, send := e.copyOf(m)
		if send.Recipient != rcpt {
			t.Errorf("%s: the token names recipient %q", rcpt, send.Recipient)
		}
		if send.QueueID == "" || !e.lab.LogContains(send.QueueID+`: to=<`+rcpt+`>.*status=sent`) {
			t.Errorf("%s: send recorded with queue ID %q, which Postfix's log does not deliver", rcpt, send.QueueID)
		}
		stream, kind := "news", "bulk"
		if rcpt == "carol@dest.example" {
			stream, kind = "receipts", "transactional"
		}
		if send.Stream != stream || send.Scope != "acme" {
			t.Errorf("%s: send in %s/%s, want acme/%s", rcpt, send.Scope, send.Stream, stream)
		}
		if got, want := h.Get("Feedback-ID"), stream+":acme:"+kind+":bounces.example.net"; got != want {
			t.Errorf("%s: Feedback-ID %q, want %q", rcpt, got, want)
		}
		lu, lup := h.Get("List-Unsubscribe"), h.Get("List-Unsubscribe-Post")
		if kind == "bulk" {
			want := fmt.Sprintf("<mailto:unsubscribe+%s@bounces.example.net>, <https://unsub.example.net/u/%s>", tok, tok)
			if lu != want || lup != "List-Unsubscribe=One-Click" {
				t.Errorf("%s: List-Unsubscribe %q, -Post %q; want %q and One-Click", rcpt, lu, lup, want)
			}
		} else if lu != "" || lup != "" {
			t.Errorf("%s: transactional mail got List-Unsubscribe %q, -Post %q", rcpt, lu, lup)
		}
		if h.Has("X-Senderkit-Stream") || h.Has(copyHeader) {
			t.Errorf("%s: senderkit's own header fields leaked:\n%s", rcpt, m.Header())
		}
		if !h.Has("Message-ID") || !h.Has("Date") {
			t.Errorf("%s: no Message-ID or Date added:\n%s", rcpt, m.Header())
		}
		if rcpt == "alice@dest.example" {
			if id := h.Get("Message-ID"); !strings.HasSuffix(id, "@example.com>") {
				t.Errorf("%s: the milter's Message-ID %q is not on the author's domain", rcpt, id)
			}
			if _, err := mail.ParseDate(h.Get("Date")); err != nil {
				t.Errorf("%s: the milter's Date: %v", rcpt, err)
			}
		}
		if !bytes.HasSuffix(m.Data, []byte("trailing space \r\n-- \r\nend\r\n")) {
			t.Errorf("%s: body changed:\n%q", rcpt, m.Body())
		}
		e.checkSigned(m, "example.com/rsa2026", "example.com/ed2026")
	}
	// The operator log has a line per message with its queue ID.
	for _, m := range got {
		_, send := e.copyOf(m)
		if !strings.Contains(e.log.String(), "queue_id="+send.QueueID) {
			t.Errorf("no log line with queue_id=%s:\n%s", send.QueueID, e.log.String())
		}
	}
}

// Internationalised domains: a scope and a signing rule written with
// U-labels match mail whose envelope uses the A-label and whose From
// header is UTF-8 (RFC 6532); d= is the A-label, and the signature
// verifies against the A-label's DNS record.
func TestInternationalised(t *testing.T) {
	e := newEnv(t, envOptions{
		signingTable: "*@bücher.example idn\n",
		scopes: `
[[scope]]
name = "buecher"
sender_domains = ["Bücher.example"]
`,
		lab: postfixlab.Options{Main: map[string]string{"smtputf8_enable": "yes"}},
	})
	body := []byte("From: =?utf-8?q?J=C3=BCrgen?= <jürgen@bücher.example>\r\nTo: <zoë@dest.example>\r\nSubject: Grüße\r\n\r\nHallo\r\n")
	if err := e.lab.Send("news@xn--bcher-kva.example", []string{"zoe@dest.example"}, body); err != nil {
		t.Fatal(err)
	}
	m := e.lab.Sink.Wait(t, 1, wait)[0]
	_, send := e.copyOf(m)
	if send.Scope != "buecher" || send.Recipient != "zoe@dest.example" {
		t.Errorf("send %+v", send)
	}
	if fid := header(t, m).Get("Feedback-ID"); fid != "bulk:buecher:bulk:bounces.example.net" {
		t.Errorf("Feedback-ID %q", fid)
	}
	e.checkSigned(m, "xn--bcher-kva.example/s1")
}

// An application's own List-Unsubscribe is replaced by senderkit's
// one-click links (the default), or kept as it is where the stream says
// list_unsubscribe = "keep"; an application's Feedback-ID is always
// senderkit's (a customer must not report under another's).
func TestApplicationListUnsubscribe(t *testing.T) {
	e := newEnv(t, envOptions{scopes: `
[[scope]]
name = "acme"
sender_domains = ["example.com"]
  [[scope.stream]]
  name = "news"
  [[scope.stream]]
  name = "digest"
  list_unsubscribe = "keep"
`})
	own := []string{"List-Unsubscribe: <https://app.example.com/unsub?u=42>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		"Feedback-ID: x:y:z:someone-else"}
	for _, stream := range []string{"news", "digest"} {
		to := stream + "@dest.example"
		if err := e.lab.Send("news@example.com", []string{to}, msg("news@example.com", to, stream, append(own, "X-Senderkit-Stream: "+stream)...)); err != nil {
			t.Fatal(err)
		}
	}
	got := byRcpt(t, e.lab.Sink.Wait(t, 2, wait))
	for _, stream := range []string{"news", "digest"} {
		m := got[stream+"@dest.example"]
		h := header(t, m)
		tok, _ := e.copyOf(m)
		lus := h.Values("List-Unsubscribe")
		want := "<mailto:unsubscribe+" + tok + "@bounces.example.net>, <https://unsub.example.net/u/" + tok + ">"
		if stream == "digest" {
			want = "<https://app.example.com/unsub?u=42>"
		}
		if len(lus) != 1 || lus[0] != want || len(h.Values("List-Unsubscribe-Post")) != 1 {
			t.Errorf("%s: List-Unsubscribe %q (-Post %q), want %q alone", stream, lus, h.Values("List-Unsubscribe-Post"), want)
		}
		if f := h.Values("Feedback-ID"); len(f) != 1 || f[0] != stream+":acme:bulk:bounces.example.net" {
			t.Errorf("%s: Feedback-ID %q", stream, f)
		}
		e.checkSigned(m, "example.com/rsa2026", "example.com/ed2026")
	}
}

// Transactional mail to several recipients keeps one envelope: one
// message leaves, VERPed with a message-level token (its send names no
// recipient) and without List-Unsubscribe.
func TestTransactionalSeveralRecipients(t *testing.T) {
	e := newEnv(t, envOptions{})
	to := []string{"a@dest.example", "b@dest.example"}
	if err := e.lab.Send("orders@example.com", to, msg("orders@example.com", "a@dest.example", "your order")); err != nil {
		t.Fatal(err)
	}
	msgs := e.lab.Sink.Wait(t, 1, wait)
	e.lab.WaitQueueEmpty(t, wait)
	if n := len(e.lab.Sink.Messages()); n != 1 || len(msgs[0].To) != 2 {
		t.Fatalf("%d messages at the sink (first to %v), want one to both recipients", n, msgs[0].To)
	}
	_, send := e.copyOf(msgs[0])
	if send.Recipient != "" || send.Stream != "receipts" || send.QueueID == "" {
		t.Errorf("send %+v: want a message-level token of stream receipts", send)
	}
	if h := header(t, msgs[0]); h.Has("List-Unsubscribe") {
		t.Errorf("transactional mail got List-Unsubscribe %q", h.Get("List-Unsubscribe"))
	}
	e.checkSigned(msgs[0], "example.com/rsa2026", "example.com/ed2026")
}
