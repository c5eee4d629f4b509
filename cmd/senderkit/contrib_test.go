package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
)

// senderkitUser makes sure the senderkit system user exists, with the
// command INSTALL.md gives, and returns its ids.
func senderkitUser(t *testing.T) (uid, gid int) {
	t.Helper()
	if _, err := user.Lookup("senderkit"); err != nil {
		out, err := exec.Command("adduser", "--system", "--group", "--home", "/var/lib/senderkit", "--no-create-home", "senderkit").CombinedOutput()
		if err != nil {
			t.Fatalf("adduser senderkit: %v\n%s", err, out)
		}
	}
	u, err := user.Lookup("senderkit")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// TestInstallSnippets applies contrib/postfix to a pristine Debian Postfix
// configuration exactly as INSTALL.md says (contrib/postfix/install.sh),
// checks that postfix check and postconf -n have nothing to say, and then
// runs mail through that configuration with senderkit serve and the bounce
// pipe: a bulk message leaves as one VERP copy per recipient, a rejected
// copy's bounce comes back through the pipe and suppresses its recipient,
// and the policy server then refuses that recipient at RCPT.
func TestInstallSnippets(t *testing.T) {
	postfixlab.NeedRoot(t, "the snippet test")
	bin := buildBinary(t)
	base := t.TempDir()
	postfixlab.DebianConfig(t, base, "mail.acme.example")
	uid, gid := senderkitUser(t)

	state, err := os.MkdirTemp("", "senderkit-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	os.Chmod(state, 0o755)
	cfgPath := filepath.Join(state, "senderkit.toml")
	sink := "127.0.0.1:1" // forwarding is not part of this test
	cfgText := fmt.Sprintf(`state_dir = %q
[bounce]
domain = "bounces.acme.example"
forward_to = "postmaster@acme.example"
forward_relay = %q
[metrics]
listen = ""
[[scope]]
name = "acme"
clients = ["127.0.0.0/8"]
`, filepath.Join(state, "lib"), sink)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(state, "lib"), 0o750)
	os.Chown(filepath.Join(state, "lib"), uid, gid)

	// INSTALL.md: sh contrib/postfix/install.sh -b DOMAIN (with the paths
	// of this test's binary and configuration).
	out, err := exec.Command("sh", "../../contrib/postfix/install.sh", "-C", base, "-b", "bounces.acme.example", "-s", bin, "-c", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	check := exec.Command("postfix", "-c", base, "check")
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	pc := exec.Command("postconf", "-c", base, "-n")
	pc.Stderr = &stderr
	n, err := pc.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("postconf -n: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"smtpd_milters = inet:127.0.0.1:10026", "transport_maps = inline:{bounces.acme.example=senderkit-bounce:}",
		"smtpd_recipient_restrictions = check_policy_service { inet:127.0.0.1:10040, timeout=10s }"} {
		if !bytes.Contains(n, []byte(want)) {
			t.Errorf("postconf -n lacks %q", want)
		}
	}
	// install.sh again: nothing doubled; install.sh -u: back as it was.
	if out, err := exec.Command("sh", "../../contrib/postfix/install.sh", "-C", base, "-b", "bounces.acme.example", "-s", bin, "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("second install.sh: %v\n%s", err, out)
	}
	master, _ := os.ReadFile(filepath.Join(base, "master.cf"))
	if c := strings.Count(string(master), "# BEGIN senderkit"); c != 2 {
		t.Errorf("master.cf has %d senderkit blocks after a second run, want 2", c)
	}

	// senderkit serve, as the senderkit user, on the ports the snippets use.
	serveLog := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, bin, "serve", "-c", cfgPath)
	serve.Stdout, serve.Stderr = serveLog, serveLog
	serve.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); serve.Wait() }()
	waitLog(t, serveLog, "senderkit serve started")
	waitLog(t, serveLog, "milter listening")

	lab := postfixlab.Start(t, postfixlab.Options{
		Base: base,
		SinkHandler: func(from, rcpt string) *smtp.SMTPError {
			if rcpt == "gone@dest.example" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@dest.example>: Recipient address rejected: User unknown"}
			}
			return nil
		},
	})
	rcpts := []string{"alice@dest.example", "bob@dest.example", "gone@dest.example"}
	msg := "From: Acme News <news@acme.example>\r\nTo: undisclosed-recipients:;\r\nSubject: News\r\n\r\nHello.\r\n"
	if err := lab.Send("news@acme.example", rcpts, []byte(msg)); err != nil {
		t.Fatalf("send: %v\nserve log:\n%s", err, serveLog.String())
	}
	got := lab.Sink.Wait(t, 2, 60*time.Second)
	for _, m := range got {
		if !strings.HasPrefix(m.From, "b+") || !strings.HasSuffix(m.From, "@bounces.acme.example") || len(m.To) != 1 {
			t.Errorf("copy: MAIL FROM:<%s> RCPT TO:%v", m.From, m.To)
		}
		if !bytes.Contains(m.Data, []byte("List-Unsubscribe-Post: List-Unsubscribe=One-Click")) {
			t.Errorf("copy to %v lacks List-Unsubscribe-Post:\n%s", m.To, m.Header())
		}
	}
	lab.WaitLog(t, `relay=senderkit-bounce, .*status=sent`, 60*time.Second)
	cfg, err := conf.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, ok, err := st.Lookup(context.Background(), store.Query{Scope: "acme", Address: "gone@dest.example", At: time.Now()})
	st.Close()
	if err != nil || !ok || s.Reason != store.HardBounce {
		t.Fatalf("gone@ not suppressed after its bounce came back: %+v %v %v\nmaillog:\n%s", s, ok, err, lab.Log())
	}
	// The policy server (its filter refreshes every second) refuses it now.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := lab.Send("news@acme.example", []string{"gone@dest.example"}, []byte(msg))
		if err != nil && strings.Contains(err.Error(), "550") && strings.Contains(err.Error(), "bounced") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy server did not refuse the suppressed recipient: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out, err := exec.Command("sh", "../../contrib/postfix/install.sh", "-C", base, "-u").CombinedOutput(); err != nil {
		t.Fatalf("install.sh -u: %v\n%s", err, out)
	}
	if n, _ := exec.Command("postconf", "-c", base, "-n", "smtpd_milters").Output(); len(n) != 0 {
		t.Errorf("after install.sh -u, smtpd_milters is still %s", n)
	}
}
