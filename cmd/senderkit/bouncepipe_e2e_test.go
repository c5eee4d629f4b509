package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
)

// binary builds senderkit once per test binary into a directory that
// the pipe(8) user can traverse.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "senderkit-bin-")
	if err != nil {
		return "", err
	}
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "senderkit")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func buildBinary(t testing.TB) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// pipeWorld is a state directory, configuration and key owned by the
// pipe(8) user, as INSTALL.md sets them up for the senderkit user.
type pipeWorld struct {
	t        *testing.T
	dir      string // state directory
	cfgPath  string
	cfg      *conf.Config
	keys     *token.Keyring
	uid, gid int
	nextSend uint64
}

func newPipeWorld(t *testing.T, extraConf string, forwardRelay string) *pipeWorld {
	t.Helper()
	postfixlab.NeedRoot(t, "the bounce pipe end-to-end test")
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "senderkit-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	w := &pipeWorld{t: t, dir: dir, uid: uid, gid: gid, nextSend: 5000}
	w.cfgPath = filepath.Join(dir, "senderkit.toml")
	text := fmt.Sprintf(`state_dir = %q
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
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
%s`, dir, forwardRelay, extraConf)
	if err := os.WriteFile(w.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if w.cfg, err = conf.Load(w.cfgPath); err != nil {
		t.Fatal(err)
	}
	if _, err := token.EnsureKey(w.cfg.KeyDir()); err != nil {
		t.Fatal(err)
	}
	if w.keys, err = token.LoadKeyring(w.cfg.KeyDir()); err != nil {
		t.Fatal(err)
	}
	w.withStore(func(store.Store) {}) // create it
	return w
}

// withStore opens the store as this (root) process, then gives every
// file back to the pipe user.
func (w *pipeWorld) withStore(f func(st store.Store)) {
	w.t.Helper()
	st, err := openStore(context.Background(), w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	f(st)
	st.Close()
	filepath.Walk(w.dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, w.uid, w.gid) })
}

// send records a copy as the milter does and returns its VERP address.
func (w *pipeWorld) send(scope, stream, rcpt string) (verp, tok string) {
	w.t.Helper()
	w.nextSend++
	id := w.nextSend
	w.withStore(func(st store.Store) {
		ctx := context.Background()
		sc, _ := st.ID(ctx, store.ScopeName, scope)
		stID, _ := st.ID(ctx, store.StreamName, stream)
		if err := st.AddSend(ctx, store.Send{ID: id, Scope: scope, Stream: stream, Recipient: rcpt, At: time.Now()}); err != nil {
			w.t.Fatal(err)
		}
		var err error
		tok, err = w.keys.Encode(token.Token{Kind: token.Copy, Time: time.Now(), SendID: id, Scope: sc, Stream: stID})
		if err != nil {
			w.t.Fatal(err)
		}
	})
	return token.Address(w.cfg.Bounce.VERPPrefix, tok, w.cfg.Bounce.Domain), tok
}

func (w *pipeWorld) lookup(scope, a string) (store.Suppression, bool) {
	w.t.Helper()
	var s store.Suppression
	var ok bool
	w.withStore(func(st store.Store) {
		var err error
		s, ok, err = st.Lookup(context.Background(), store.Query{Scope: scope, Address: a, At: time.Now()})
		if err != nil {
			w.t.Fatal(err)
		}
	})
	return s, ok
}

func (w *pipeWorld) events(f store.EventFilter) []store.Event {
	w.t.Helper()
	var out []store.Event
	w.withStore(func(st store.Store) {
		st.Events(context.Background(), f, func(e store.Event) error { out = append(out, e); return nil })
	})
	return out
}

// lab starts a private Postfix whose bounce domain goes to the bounce
// pipe, run as nobody exactly as contrib/postfix/bouncepipe.master.cf
// does. Unless keepQueue, a temporary failure bounces at once (as it does
// in life after maximal_queue_lifetime), so that soft bounces come back
// within a test.
func (w *pipeWorld) lab(handler postfixlab.RcptHandler, keepQueue ...bool) *postfixlab.Lab {
	w.t.Helper()
	main := map[string]string{"maximal_queue_lifetime": "0", "bounce_queue_lifetime": "0"}
	if len(keepQueue) > 0 && keepQueue[0] {
		main = nil
	}
	return postfixlab.Start(w.t, postfixlab.Options{
		SinkHandler: handler,
		Pipes: []postfixlab.Pipe{{
			Service: "bouncepipe",
			Domain:  "bounces.example.test",
			User:    "nobody",
			Flags:   "Rq",
			Argv:    []string{buildBinary(w.t), "bouncepipe", "-c", w.cfgPath, "-queue-id", "${queue_id}", "${sender}", "${recipient}"},
		}},
		Main: main,
	})
}

func rejectAt(addrs map[string]*smtp.SMTPError) postfixlab.RcptHandler {
	return func(from, rcpt string) *smtp.SMTPError { return addrs[strings.ToLower(rcpt)] }
}

func newsletter(from, to string) []byte {
	return []byte("From: Acme News <" + from + ">\r\nTo: " + to + "\r\nSubject: November news\r\nMessage-ID: <" +
		strconv.FormatInt(time.Now().UnixNano(), 36) + "@acme.example>\r\n\r\nHello.\r\n")
}

// TestE2EHardBounceThroughPostfix: a copy sent with its VERP sender is
// refused with 550 5.1.1; Postfix's own bounce goes to the VERP address,
// through pipe(8) into senderkit bouncepipe, and the recipient is
// suppressed in the copy's scope only.
func TestE2EHardBounceThroughPostfix(t *testing.T) {
	w := newPipeWorld(t, "", "127.0.0.1:1")
	lab := w.lab(rejectAt(map[string]*smtp.SMTPError{
		"gone@dest.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@dest.example>: Recipient address rejected: User unknown in virtual mailbox table"},
	}))
	verp, _ := w.send("acme", "bulk", "gone@dest.example")
	if err := lab.Send(verp, []string{"gone@dest.example"}, newsletter("news@acme.example", "gone@dest.example")); err != nil {
		t.Fatal(err)
	}
	lab.WaitLog(t, `to=<gone@dest\.example>.*dsn=5\.1\.1, status=bounced`, 30*time.Second)
	lab.WaitLog(t, `to=<`+regexp.QuoteMeta(verp)+`>.*relay=bouncepipe, .*status=sent`, 30*time.Second)
	s, ok := w.lookup("acme", "gone@dest.example")
	if !ok || s.Reason != store.HardBounce {
		t.Fatalf("not suppressed after the bounce: %+v\nlog:\n%s", s, lab.Log())
	}
	if _, ok := w.lookup("globex", "gone@dest.example"); ok {
		t.Error("suppressed in another scope")
	}
	evs := w.events(store.EventFilter{Address: "gone@dest.example"})
	if len(evs) != 1 || evs[0].Status != "5.1.1" || evs[0].ReportingMTA != postfixlab.Hostname || !strings.Contains(evs[0].Diagnostic, "User unknown") {
		t.Errorf("evidence: %+v", evs)
	}
}

// TestE2EComplaintToFeedbackLoop: an ARF report with the recipient
// redacted, sent to the feedback-loop address, suppresses the copy's
// recipient in that scope only and records the loop's name.
func TestE2EComplaintToFeedbackLoop(t *testing.T) {
	w := newPipeWorld(t, "", "127.0.0.1:1")
	lab := w.lab(nil)
	_, tok := w.send("acme", "bulk", "angry@yahoo.example")
	w.send("globex", "bulk", "angry@yahoo.example")
	tmpl, err := os.ReadFile("../../testdata/arf/abuse-redacted.eml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.ReplaceAll(string(tmpl), "{{TOKEN}}", tok)
	if err := lab.Send("", []string{"fbl-yahoo@bounces.example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	lab.WaitLog(t, `to=<fbl-yahoo@bounces\.example\.test>.*relay=bouncepipe, .*status=sent`, 30*time.Second)
	s, ok := w.lookup("acme", "angry@yahoo.example")
	if !ok || s.Reason != store.Complained {
		t.Fatalf("complaint did not suppress: %+v", s)
	}
	if _, ok := w.lookup("globex", "angry@yahoo.example"); ok {
		t.Error("the complaint crossed into scope globex")
	}
	evs := w.events(store.EventFilter{Address: "angry@yahoo.example", Types: []store.EventType{store.Complaint}})
	if len(evs) != 1 || evs[0].Source != "fbl:Yahoo" || evs[0].FeedbackType != "abuse" || evs[0].Scope != "acme" {
		t.Errorf("complaint event: %+v", evs)
	}
}

// TestE2ESoftBounceThresholds: soft bounces suppress only once both
// thresholds are met: here 2 sends spanning 3 seconds (14 days in life).
func TestE2ESoftBounceThresholds(t *testing.T) {
	w := newPipeWorld(t, "[suppression]\nsoft_bounces = 2\nsoft_span = \"3s\"\n", "127.0.0.1:1")
	full := &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "<full@dest.example>: mailbox full, quota exceeded"}
	lab := w.lab(rejectAt(map[string]*smtp.SMTPError{"full@dest.example": full}))
	bounce := func(n int) {
		t.Helper()
		verp, _ := w.send("acme", "bulk", "full@dest.example")
		if err := lab.Send(verp, []string{"full@dest.example"}, newsletter("news@acme.example", "full@dest.example")); err != nil {
			t.Fatal(err)
		}
		lab.WaitLogN(t, `relay=bouncepipe, .*status=sent`, n, 30*time.Second)
	}
	start := time.Now()
	bounce(1)
	if _, ok := w.lookup("acme", "full@dest.example"); ok {
		t.Fatal("suppressed after one soft bounce")
	}
	bounce(2)
	if time.Since(start) < 3*time.Second {
		if _, ok := w.lookup("acme", "full@dest.example"); ok {
			t.Fatal("suppressed after two sends within the span")
		}
	}
	time.Sleep(time.Until(start.Add(3500 * time.Millisecond)))
	bounce(3)
	s, ok := w.lookup("acme", "full@dest.example")
	if !ok || s.Reason != store.SoftBounce || s.Expires.IsZero() {
		t.Fatalf("not suppressed once both thresholds were met: %+v", s)
	}
	if n := len(w.events(store.EventFilter{Address: "full@dest.example", Types: []store.EventType{store.Bounced}})); n != 3 {
		t.Errorf("%d bounce events, want 3", n)
	}
}

// TestE2ELockedStoreDefers: with the store held locked past its timeout
// the bounce pipe exits 75; Postfix defers the message and delivers it
// once the lock is gone, and the complaint is recorded once.
func TestE2ELockedStoreDefers(t *testing.T) {
	w := newPipeWorld(t, "[store]\nbusy_timeout = \"1s\"\n", "127.0.0.1:1")
	lab := w.lab(nil, true)
	_, tok := w.send("acme", "bulk", "angry@yahoo.example")
	tmpl, _ := os.ReadFile("../../testdata/arf/abuse-redacted.eml.tmpl")
	msg := strings.ReplaceAll(string(tmpl), "{{TOKEN}}", tok)

	raw, err := sql.Open("sqlite3", "file:"+w.cfg.StorePath()+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	if _, err := raw.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Send("", []string{"fbl-yahoo@bounces.example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	lines := lab.WaitLog(t, `relay=bouncepipe, .*status=deferred`, 30*time.Second)
	if !strings.Contains(lines[0], "dsn=4.3.0") || !strings.Contains(lines[0], "Postfix will try again") {
		t.Errorf("deferral: %s", lines[0])
	}
	if _, ok := w.lookup("acme", "angry@yahoo.example"); ok {
		t.Fatal("recorded while the store was locked")
	}
	raw.Exec("ROLLBACK")
	if err := lab.Flush(); err != nil {
		t.Fatal(err)
	}
	lab.WaitLog(t, `relay=bouncepipe, .*status=sent`, 30*time.Second)
	if _, ok := w.lookup("acme", "angry@yahoo.example"); !ok {
		t.Fatal("not recorded after the retry")
	}
	if n := len(w.events(store.EventFilter{Types: []store.EventType{store.Complaint}})); n != 1 {
		t.Errorf("%d complaint events, want 1", n)
	}
}

// TestE2EHumanReplyForwarded: a person's reply to the envelope sender is
// passed, intact, to the role address through Postfix.
func TestE2EHumanReplyForwarded(t *testing.T) {
	// The pipe forwards through the lab's own smtpd, which relays the
	// role address to the sink.
	w := newPipeWorld(t, "", "127.0.0.1:1")
	lab := w.lab(nil)
	os.WriteFile(w.cfgPath, bytes.Replace(mustRead(t, w.cfgPath), []byte(`forward_relay = "127.0.0.1:1"`), []byte(`forward_relay = "`+lab.SMTPAddr+`"`), 1), 0o644)
	verp, _ := w.send("acme", "bulk", "carol@dest.example")
	reply := "From: Carol <carol@dest.example>\r\nTo: news@acme.example\r\nSubject: Re: November news\r\nMessage-ID: <r1@dest.example>\r\n\r\nPaper, please.\r\n"
	if err := lab.Send("carol@dest.example", []string{verp}, []byte(reply)); err != nil {
		t.Fatal(err)
	}
	msgs := lab.Sink.Wait(t, 1, 30*time.Second)
	if len(msgs[0].To) != 1 || msgs[0].To[0] != "postmaster@example.test" || msgs[0].From != "" {
		t.Fatalf("forwarded envelope: from %q to %v", msgs[0].From, msgs[0].To)
	}
	if !bytes.Contains(msgs[0].Data, []byte("X-Senderkit-Forwarded-For: <"+verp+">")) || !bytes.HasSuffix(msgs[0].Data, []byte("\r\n\r\nPaper, please.\r\n")) {
		t.Errorf("forwarded message:\n%s", msgs[0].Data)
	}
	if evs := w.events(store.EventFilter{Types: []store.EventType{store.Forwarded}}); len(evs) != 1 {
		t.Errorf("forwarded events: %+v", evs)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConcurrentBouncepipes: 200 bounce pipes at once on one store, a
// tenth killed with SIGKILL mid-run and, as Postfix would, run again;
// then every message once more. Every bounce is recorded exactly once.
func TestConcurrentBouncepipes(t *testing.T) {
	const n = 200
	w := newPipeWorld(t, "", "127.0.0.1:1")
	bin := buildBinary(t)
	type job struct{ verp, rcpt, msg string }
	jobs := make([]job, n)
	w.withStore(func(st store.Store) {
		ctx := context.Background()
		sc, _ := st.ID(ctx, store.ScopeName, "acme")
		stID, _ := st.ID(ctx, store.StreamName, "bulk")
		for i := range jobs {
			rcpt := fmt.Sprintf("user%03d@dest.example", i)
			id := uint64(100000 + i)
			if err := st.AddSend(ctx, store.Send{ID: id, Scope: "acme", Stream: "bulk", Recipient: rcpt, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			tok, _ := w.keys.Encode(token.Token{Kind: token.Copy, Time: time.Now(), SendID: id, Scope: sc, Stream: stID})
			verp := token.Address("b", tok, "bounces.example.test")
			jobs[i] = job{verp, rcpt, dsnFor(verp, rcpt)}
		}
	})
	// deliver runs the bounce pipe as Postfix does: again and again until
	// it exits 0 (75 means "try again"). kill sends SIGKILL to the first
	// attempt a few milliseconds in.
	var retries, kills atomic.Int64
	deliver := func(j job, kill bool) error {
		for attempt := 0; attempt < 50; attempt++ {
			cmd := exec.Command(bin, "bouncepipe", "-c", w.cfgPath, "MAILER-DAEMON", j.verp)
			cmd.Stdin = strings.NewReader(j.msg)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(w.uid), Gid: uint32(w.gid)}}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				return err
			}
			if kill && attempt == 0 {
				time.Sleep(time.Duration(2+len(j.rcpt)%20) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				kills.Add(1)
			}
			err := cmd.Wait()
			if err == nil {
				return nil
			}
			if ee, ok := err.(*exec.ExitError); ok && (ee.ExitCode() == exitTempFail || ee.ExitCode() == -1) {
				retries.Add(1)
				time.Sleep(100 * time.Millisecond) // Postfix would wait minutes
				continue
			}
			return fmt.Errorf("%s: %v: %s", j.rcpt, err, out.String())
		}
		return fmt.Errorf("%s: still not accepted after 50 attempts", j.rcpt)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, j := range jobs {
		wg.Go(func() {
			if err := deliver(j, i%10 == 0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	// Every message handed over once more, as after a lost acknowledgement.
	for _, j := range jobs {
		wg.Go(func() {
			if err := deliver(j, false); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	evs := w.events(store.EventFilter{Types: []store.EventType{store.Bounced}})
	seen := map[string]int{}
	for _, e := range evs {
		seen[e.Address]++
	}
	for _, j := range jobs {
		if seen[j.rcpt] != 1 {
			t.Errorf("%s: %d bounce events, want exactly 1", j.rcpt, seen[j.rcpt])
		}
		if _, ok := w.lookup("acme", j.rcpt); !ok {
			t.Errorf("%s not suppressed", j.rcpt)
		}
	}
	t.Logf("%d bounce pipes at once, %d killed with SIGKILL, %d runs retried after exit 75 or a kill, then all %d again: %d events, %d addresses each recorded once",
		n, kills.Load(), retries.Load(), n, len(evs), len(seen))
}

func dsnFor(verp, rcpt string) string {
	return "From: MAILER-DAEMON@lab.example.test (Mail Delivery System)\nTo: " + verp + "\nSubject: Undelivered Mail Returned to Sender\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\n<" + rcpt +
		">: host mx.dest.example said: 550 5.1.1 User unknown\n\n--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; lab.example.test\n\n" +
		"Final-Recipient: rfc822; " + rcpt + "\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--B--\n"
}

// TestBouncepipeMemoryBounded: a 50 MB message is handled with memory
// far below its size: it is spooled to disk and parsed with caps. The
// command runs in this process so that its Go allocations can be counted
// (a child's ru_maxrss is useless here: Go starts children with vfork,
// and Linux carries the parent's peak over exec).
func TestBouncepipeMemoryBounded(t *testing.T) {
	w := newPipeWorld(t, "", "127.0.0.1:1")
	verp, _ := w.send("acme", "bulk", "big@dest.example")
	var b bytes.Buffer
	b.WriteString(dsnFor(verp, "big@dest.example"))
	b.WriteString("\n")
	line := strings.Repeat("x", 76) + "\n"
	for b.Len() < 50<<20 {
		b.WriteString(line)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"bouncepipe", "-c", w.cfgPath, "MAILER-DAEMON", verp}, &b, &out, &errb)
	runtime.ReadMemStats(&after)
	if code != exitOK {
		t.Fatalf("bouncepipe: exit %d\n%s", code, errb.String())
	}
	alloc := (after.TotalAlloc - before.TotalAlloc) >> 10
	t.Logf("50 MB message: %d KiB allocated in all while handling it; %s", alloc, bytes.TrimSpace(out.Bytes()))
	if alloc > 16<<10 {
		t.Errorf("%d KiB allocated for a 50 MB message: not bounded", alloc)
	}
	if _, ok := w.lookup("acme", "big@dest.example"); !ok {
		t.Error("the large bounce was not recorded")
	}
}

// The bounce pipe's log lines carry the queue ID pipe(8) passes
// (-queue-id ${queue_id}), so that they can be matched to Postfix's.
func TestBouncepipeLogsQueueID(t *testing.T) {
	w := newPipeWorld(t, "", "127.0.0.1:1")
	verp := "b+" + strings.Repeat("a", 42) + "@bounces.example.test" // no token of ours: a warning
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"bouncepipe", "-c", w.cfgPath, "-queue-id", "4QUEUEID77", "MAILER-DAEMON", verp},
		strings.NewReader(dsnFor(verp, "x@dest.example")), &out, &errb)
	if code != exitOK {
		t.Fatalf("bouncepipe: exit %d\n%s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "level=WARN") || !strings.Contains(errb.String(), "queue_id=4QUEUEID77") {
		t.Errorf("the warning does not carry the queue ID:\n%s", errb.String())
	}
}
