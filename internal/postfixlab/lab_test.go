package postfixlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// wait is the timeout of every wait in these tests.
const wait = 30 * time.Second

// testBody exercises what a relay could damage: dot stuffing, an empty
// line, 8-bit text, a long line, trailing white space.
var testBody = "Hello,\r\n" +
	".a line starting with a dot\r\n" +
	"..and one with two\r\n" +
	".\r\n" +
	"\r\n" +
	"8-bit: h\xc3\xa9llo w\xc3\xb6rld\r\n" +
	strings.Repeat("0123456789", 90) + "\r\n" +
	"trailing space \r\n" +
	"end\r\n"

func testMessage(from, to, subject string) []byte {
	return []byte("From: <" + from + ">\r\n" +
		"To: <" + to + ">\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
		"Message-ID: <" + subject + "@example.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" + testBody)
}

// checkMessage checks that m is what testMessage made, relayed by Postfix.
func checkMessage(t *testing.T, m Message, from string, to []string, subject string) {
	t.Helper()
	if m.From != from {
		t.Errorf("envelope sender = %q, want %q", m.From, from)
	}
	got := slices.Sorted(slices.Values(m.To))
	if !slices.Equal(got, to) {
		t.Errorf("envelope recipients = %q, want %q", got, to)
	}
	if !bytes.Equal(m.Body(), []byte(testBody)) {
		t.Errorf("body changed in transit:\ngot  %q\nwant %q", m.Body(), testBody)
	}
	h := string(m.Header())
	if !strings.HasPrefix(h, "Received: ") {
		t.Errorf("header does not start with Received:\n%s", h)
	}
	if !strings.Contains(h, "\r\nSubject: "+subject+"\r\n") {
		t.Errorf("header lost Subject: %s:\n%s", subject, h)
	}
}

func TestSMTPReachesSink(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	to := []string{"bob@dest.example.test", "carol@other.example.test"}
	if err := l.Send("alice@example.test", to, testMessage("alice@example.test", to[0], "smtp")); err != nil {
		t.Fatal(err)
	}
	ms := l.Sink.Wait(t, 1, wait)
	if len(ms) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(ms))
	}
	checkMessage(t, ms[0], "alice@example.test", to, "smtp")
	if ms[0].BodyType != smtp.Body8BitMIME {
		t.Errorf("BODY= %q, want %q", ms[0].BodyType, smtp.Body8BitMIME)
	}
	if ms[0].Helo != Hostname {
		t.Errorf("EHLO %q, want %q", ms[0].Helo, Hostname)
	}
	l.WaitLog(t, `status=sent .*250`, wait)
	l.WaitQueueEmpty(t, wait)
}

func TestSendmailReachesSink(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	to := []string{"dave@dest.example.test"}
	start := time.Now()
	if err := l.Sendmail("alice@example.test", to, testMessage("alice@example.test", to[0], "sendmail")); err != nil {
		t.Fatal(err)
	}
	ms := l.Sink.Wait(t, 1, wait)
	t.Logf("sendmail to sink: %v", time.Since(start).Round(time.Millisecond))
	checkMessage(t, ms[0], "alice@example.test", to, "sendmail")
	if !l.LogContains(`postfix/pickup\[\d+\]: \w+: uid=0 from=<alice@example.test>`) {
		t.Errorf("no pickup line in the log:\n%s", l.Log())
	}
}

func TestRejectedRecipientBounces(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{
		SinkHandler: func(from, rcpt string) *smtp.SMTPError {
			if strings.HasSuffix(rcpt, "@bad.example.test") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	})
	from := "alice@example.test"
	to := []string{"bad@bad.example.test", "good@ok.example.test"}
	if err := l.Send(from, to, testMessage(from, to[0], "bounce")); err != nil {
		t.Fatal(err)
	}
	lines := l.WaitLog(t, `to=<bad@bad.example.test>.* dsn=5\.1\.1, status=bounced `, wait)
	if !strings.Contains(lines[0], "550 5.1.1 no such user") {
		t.Errorf("bounce line does not quote the sink's reply: %s", lines[0])
	}
	l.WaitLog(t, `to=<good@ok.example.test>.* status=sent `, wait)

	ms := l.Sink.Wait(t, 2, wait)
	if len(ms) != 2 {
		t.Fatalf("sink got %d messages, want 2", len(ms))
	}
	var orig, dsn Message
	for _, m := range ms {
		if m.From == "" {
			dsn = m
		} else {
			orig = m
		}
	}
	checkMessage(t, orig, from, []string{"good@ok.example.test"}, "bounce")
	if dsn.From != "" || !slices.Equal(dsn.To, []string{from}) {
		t.Fatalf("no DSN from <> to <%s>; got from=<%s> to=%v", from, dsn.From, dsn.To)
	}
	d := string(dsn.Data)
	for _, want := range []string{
		"From: Mail Delivery System <MAILER-DAEMON@" + Hostname + ">",
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Final-Recipient: rfc822; bad@bad.example.test",
		"Status: 5.1.1",
		"Subject: bounce",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("DSN lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "good@ok.example.test>: ") {
		t.Errorf("DSN mentions the delivered recipient:\n%s", d)
	}
	l.WaitQueueEmpty(t, wait)
}

const pipeScript = `#!/bin/sh
# pipe test: OUTDIR SENDER RECIPIENT GREETING BRACES; message on stdin.
out="$1/msg.$$"
{
	printf 'sender=%s\n' "$2"
	printf 'recipient=%s\n' "$3"
	printf 'greeting=%s\n' "$4"
	printf 'braces=%s\n' "$5"
	printf 'env=%s\n' "$PIPETEST"
	printf 'uid=%s\n' "$(id -u)"
	cat
} >"$out.tmp" && mv "$out.tmp" "$out"
`

func TestPipeTransport(t *testing.T) {
	t.Parallel()
	// The script and its output directory must be reachable by nobody:
	// t.TempDir() is not (mode 0700).
	dir, err := os.MkdirTemp("", "pflabtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "pipe.sh")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil { // umask
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(pipeScript), 0o755); err != nil {
		t.Fatal(err)
	}

	l := Start(t, Options{Pipes: []Pipe{{
		Service: "bouncepipe",
		Domain:  "bounces.example.test",
		Argv:    []string{"/bin/sh", script, out, "${sender}", "${recipient}", "hello ${nexthop} world", "{x}"},
		Env:     map[string]string{"PIPETEST": "yes"},
	}}})
	from, rcpt := "news@example.test", "b+abc123@bounces.example.test"
	if err := l.Send(from, []string{rcpt}, testMessage(from, rcpt, "pipe")); err != nil {
		t.Fatal(err)
	}
	l.WaitLog(t, `to=<`+regexp.QuoteMeta(rcpt)+`>, relay=bouncepipe, .* status=sent `, wait)

	files, _ := filepath.Glob(filepath.Join(out, "msg.*"))
	if len(files) != 1 || strings.HasSuffix(files[0], ".tmp") {
		t.Fatalf("pipe output files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"sender=" + from + "\n",
		"recipient=" + rcpt + "\n",
		"greeting=hello bounces.example.test world\n",
		"braces={x}\n",
		"env=yes\n",
		"uid=65534\n",
		"Return-Path: <" + from + ">\n",
		"Subject: pipe\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("pipe output lacks %q:\n%s", want, got)
		}
	}
	// pipe(8) gives the command LF line ends.
	if body := strings.ReplaceAll(testBody, "\r\n", "\n"); !strings.HasSuffix(got, "\n\n"+body) {
		t.Errorf("pipe output does not end with the body:\ngot  %q\nwant %q", got, body)
	}
	l.WaitQueueEmpty(t, wait)
	if ms := l.Sink.Messages(); len(ms) != 0 {
		t.Errorf("sink got %d messages, want none (the pipe took it)", len(ms))
	}
}

func TestDeferredThenSent(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	l := Start(t, Options{
		SinkHandler: func(from, rcpt string) *smtp.SMTPError {
			if !healthy.Load() {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "slow down"}
			}
			return nil
		},
	})
	from, rcpt := "alice@example.test", "x@slow.example.test"
	if err := l.Send(from, []string{rcpt}, testMessage(from, rcpt, "retry")); err != nil {
		t.Fatal(err)
	}
	lines := l.WaitLog(t, `to=<x@slow.example.test>.* dsn=4\.7\.1, status=deferred `, wait)
	if !strings.Contains(lines[0], "451 4.7.1 slow down") {
		t.Errorf("deferral does not quote the sink's reply: %s", lines[0])
	}
	deferred := time.Now()
	// The message is in the queue. A listing made while a retry is under
	// way skips it ("still being delivered"): look again.
	var q []QueueEntry
	for range 50 {
		var err error
		if q, err = l.Queue(); err != nil {
			t.Fatal(err)
		}
		if len(q) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(q) != 1 || q[0].Queue != "deferred" && q[0].Queue != "active" {
		t.Errorf("queue = %+v, want the message in deferred (or active)", q)
	}

	healthy.Store(true)
	// The fast retry timers bring it out within seconds; how long it took
	// is logged, not judged (a loaded machine is slower).
	l.WaitLog(t, `to=<x@slow.example.test>.* status=sent `, wait)
	t.Logf("retry after %v", time.Since(deferred).Round(time.Millisecond))
	ms := l.Sink.Wait(t, 1, wait)
	checkMessage(t, ms[0], from, []string{rcpt}, "retry")
	l.WaitQueueEmpty(t, wait)
}

func TestPostconfReload(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	l.Postconf("smtpd_recipient_restrictions=check_recipient_access inline:{blocked.example.test=REJECT}")
	l.Reload()
	err := l.Send("alice@example.test", []string{"x@blocked.example.test"}, testMessage("alice@example.test", "x@blocked.example.test", "reload"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("Send to a blocked domain: %v, want a 554 5.7.1 *smtp.SMTPError", err)
	}
	if !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "x@blocked.example.test") {
		t.Errorf("error %q lacks the code or the recipient", err)
	}
	if err := l.Send("alice@example.test", []string{"y@ok.example.test"}, testMessage("alice@example.test", "y@ok.example.test", "ok")); err != nil {
		t.Fatal(err)
	}
	l.Sink.Wait(t, 1, wait)
}

func TestStopIsIdempotent(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	pid := masterPID(l.Dir)
	if pid == 0 || !alive(pid) {
		t.Fatalf("no running master after Start (pid %d)", pid)
	}
	l.Stop()
	l.Stop()
	if alive(pid) {
		t.Errorf("master %d still running after Stop", pid)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("lab directory %s still there after Stop: %v", l.Dir, err)
	}
}

// policyServer answers Postfix policy delegation requests: REJECT for
// recipients in deny.example.test, DUNNO otherwise. It returns its
// address and counts requests in *n.
func policyServer(t *testing.T, n *atomic.Int32) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				var rcpt string
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\n")
					if v, ok := strings.CutPrefix(line, "recipient="); ok {
						rcpt = v
					}
					if line != "" {
						continue
					}
					n.Add(1)
					action := "DUNNO"
					if strings.HasSuffix(rcpt, "@deny.example.test") {
						action = "REJECT policy says no"
					}
					fmt.Fprintf(c, "action=%s\n\n", action)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestPolicyService(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	l := Start(t, Options{PolicyService: policyServer(t, &n)})
	from := "alice@example.test"
	err := l.Send(from, []string{"x@deny.example.test"}, testMessage(from, "x@deny.example.test", "policy"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "policy says no") {
		t.Fatalf("Send to a denied recipient: %v, want the policy's 554 REJECT", err)
	}
	if err := l.Send(from, []string{"y@ok.example.test"}, testMessage(from, "y@ok.example.test", "policy")); err != nil {
		t.Fatal(err)
	}
	l.Sink.Wait(t, 1, wait)
	if got := n.Load(); got != 2 {
		t.Errorf("policy service got %d requests, want 2 (one per RCPT, local client included)", got)
	}
}

func TestDeadMilterTempfails(t *testing.T) {
	t.Parallel()
	dead, err := freePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	l := Start(t, Options{Milters: []string{"inet:" + dead}})
	from := "alice@example.test"
	err = l.Send(from, []string{"y@ok.example.test"}, testMessage(from, "y@ok.example.test", "milter"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("Send with a dead milter: %v, want a 451 (milter_default_action=tempfail)", err)
	}
	l.WaitLog(t, `warning: connect to Milter service inet:`+regexp.QuoteMeta(dead)+`: Connection refused`, wait)
}
