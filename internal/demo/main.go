// Command demo is `make demo`: it starts a private Postfix on loopback
// with senderkit wired in, sends a bulk mail through it and shows what
// senderkit did, using the real senderkit binary as an administrator
// would: one signed VERP copy, a remote rejection bouncing back through
// the bounce pipe, a complaint report, a one-click unsubscribe, the
// suppression list and the report. It installs what is missing (Postfix)
// and stops and removes everything it started.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

func main() {
	bin := flag.String("bin", "bin/senderkit", "the senderkit `binary` to demonstrate")
	verbose := flag.Bool("v", false, "show the lab's own log lines")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fatal(err)
	}
	if os.Geteuid() != 0 {
		fatal(fmt.Errorf("the demo runs a private Postfix, which needs root; run it as root (sudo make demo)"))
	}
	logw := &bytes.Buffer{}
	var logTo io.Writer = logw
	if *verbose {
		logTo = os.Stderr
	}
	p := postfixlab.NewProgram(logTo)
	start := time.Now()
	d := &demo{p: p, bin: abs}
	if err := p.Run(d.story); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n%s", err, logw.String())
		if d.serveLog != nil {
			fmt.Fprintf(os.Stderr, "\nsenderkit serve said:\n%s", d.serveLog.String())
		}
		os.Exit(1)
	}
	fmt.Printf("\nDone in %v; everything the demo started is stopped and removed.\n", time.Since(start).Round(100*time.Millisecond))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

type demo struct {
	p        *postfixlab.Program
	bin      string
	dir      string // everything the demo writes
	cfg      string // senderkit.toml
	serveLog *syncBuffer
	lab      *postfixlab.Lab
	uid, gid int // nobody: runs serve and the bounce pipe, as senderkit's own user would
}

func (d *demo) fail(format string, a ...any) { d.p.Fatalf(format, a...) }

// step prints a heading.
func step(n int, format string, args ...any) {
	fmt.Printf("\n== %d. %s\n", n, fmt.Sprintf(format, args...))
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// sk runs the senderkit binary, printing the command (without the -c
// flag every command that reads the configuration gets) and its output.
func (d *demo) sk(args ...string) string {
	shown := []string{"senderkit"}
	for _, a := range args {
		if strings.ContainsAny(a, " *'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		shown = append(shown, a)
	}
	fmt.Printf("$ %s\n", strings.Join(shown, " "))
	full := args
	if !(len(args) > 1 && args[0] == "dkim" && args[1] == "keygen") { // keygen reads no configuration
		full = append(args, "-c", d.cfg)
	}
	cmd := exec.Command(d.bin, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		d.fail("senderkit %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	fmt.Print(indent(out.String()))
	return out.String()
}

func (d *demo) freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.fail("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a child's output.
type syncBuffer struct {
	b  bytes.Buffer
	mu chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

func (d *demo) story() {
	var err error
	if d.dir, err = os.MkdirTemp("", "senderkit-demo-"); err != nil {
		d.fail("%v", err)
	}
	os.Chmod(d.dir, 0o755)
	d.p.Cleanup(func() { os.RemoveAll(d.dir) })
	u, err := user.Lookup("nobody")
	if err != nil {
		d.fail("%v", err)
	}
	d.uid, _ = strconv.Atoi(u.Uid)
	d.gid, _ = strconv.Atoi(u.Gid)
	state := filepath.Join(d.dir, "state")
	os.MkdirAll(state, 0o750)
	milterAddr, copyAddr, policyAddr, httpAddr := d.freeAddr(), d.freeAddr(), d.freeAddr(), d.freeAddr()

	step(1, "A private Postfix on loopback, wired to senderkit with the lines in contrib/postfix")
	main, master := contribMilter(d, milterAddr, copyAddr)
	d.lab = postfixlab.Start(d.p, postfixlab.Options{
		Milters:         []string{"inet:" + milterAddr},
		NonSMTPDMilters: []string{"inet:" + milterAddr},
		PolicyService:   "inet:" + policyAddr,
		Main:            main,
		MasterLines:     master,
		Pipes: []postfixlab.Pipe{{
			Service: "senderkit-bounce", Domain: "bounces.example.test", User: "nobody", Flags: "Rq",
			Argv: []string{d.bin, "bouncepipe", "-c", filepath.Join(d.dir, "senderkit.toml"), "${sender}", "${recipient}"},
		}},
		// The Internet, played by a sink: it refuses one mailbox.
		SinkHandler: func(from, rcpt string) *smtp.SMTPError {
			if rcpt == "gone@dest.example.test" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@dest.example.test>: Recipient address rejected: User unknown in virtual mailbox table"}
			}
			return nil
		},
	})
	fmt.Printf("  Postfix smtpd on %s relays to the sink on %s (\"the Internet\"); bounces.example.test goes to the bounce pipe\n", d.lab.SMTPAddr, d.lab.Sink.Addr)

	step(2, "A DKIM key for example.test, and senderkit's configuration")
	d.cfg = filepath.Join(d.dir, "senderkit.toml")
	os.WriteFile(d.cfg, []byte(fmt.Sprintf("state_dir = %q\n", state)), 0o644) // for the keygen command
	keyFile := filepath.Join(d.dir, "example.test.demo.pem")
	txt := d.sk("dkim", "keygen", "-d", "example.test", "-s", "demo", "-o", keyFile)
	os.Chown(keyFile, d.uid, d.gid)
	os.WriteFile(filepath.Join(d.dir, "KeyTable"), []byte("demo example.test:demo:"+keyFile+"\n"), 0o644)
	os.WriteFile(filepath.Join(d.dir, "SigningTable"), []byte("*@example.test demo\n"), 0o644)
	config := fmt.Sprintf(`state_dir = %q

[bounce]
domain = "bounces.example.test"
forward_to = "postmaster@example.test"
forward_relay = %q
  [[bounce.feedback_loop]]
  address = "fbl-yahoo"
  provider = "Yahoo"

[milter]
listen = "inet:%s"
copy_service = %q
key_table = %q
signing_table = "refile:%s"

[policy]
listen = "inet:%s"
maillog = %q

[http]
listen = %q
base_url = "http://%s/u/"

[metrics]
listen = ""

[[scope]]
name = "example"
display_name = "Example News"
sender_domains = ["example.test"]
`, state, d.lab.SMTPAddr, milterAddr, copyAddr, filepath.Join(d.dir, "KeyTable"), filepath.Join(d.dir, "SigningTable"),
		policyAddr, filepath.Join(d.lab.Dir, "maillog"), httpAddr, httpAddr)
	os.WriteFile(d.cfg, []byte(config), 0o644)
	fmt.Print(indent("(" + d.cfg + ")\n" + config))
	d.sk("check")

	step(3, "senderkit serve: the milter, the policy server with its log follower, the unsubscribe endpoint")
	d.serve()

	step(4, "An application sends a bulk message to three recipients through Postfix")
	msg := "From: Example News <news@example.test>\r\nTo: undisclosed-recipients:;\r\nSubject: November news\r\nX-Senderkit-Stream: bulk\r\n\r\nHello from the demo.\r\n"
	rcpts := []string{"alice@dest.example.test", "bob@dest.example.test", "gone@dest.example.test"}
	if err := d.lab.Send("news@example.test", rcpts, []byte(msg)); err != nil {
		d.fail("send: %v", err)
	}
	copies := d.lab.Sink.Wait(d.p, 2, 60*time.Second)
	fmt.Printf("  the Internet received %d copies, one per recipient (gone@ was refused):\n", len(copies))
	byRcpt := map[string]postfixlab.Message{}
	for _, c := range copies {
		fmt.Printf("    MAIL FROM:<%s>  RCPT TO:<%s>\n", c.From, c.To[0])
		byRcpt[c.To[0]] = c
	}
	alice, ok := byRcpt["alice@dest.example.test"]
	bob, ok2 := byRcpt["bob@dest.example.test"]
	if !ok || !ok2 {
		d.fail("copies for alice and bob expected, got %v", byRcpt)
	}
	fmt.Println("  alice's copy, its header as it left:")
	fmt.Print(indent(indent(string(alice.Header()))))
	verifyDKIM(d, alice.Data, txt)

	step(5, "The remote rejection bounces back: Postfix's own DSN goes to the VERP address, through pipe(8) into senderkit bouncepipe")
	lines := d.lab.WaitLog(d.p, `relay=senderkit-bounce, .*status=sent`, 60*time.Second)
	fmt.Print(indent(lines[0][strings.Index(lines[0], "postfix/"):]))

	step(6, "Bob presses \"this is spam\": his provider sends an ARF report (recipient redacted) to the feedback-loop address")
	tmpl, err := os.ReadFile("testdata/arf/abuse-redacted.eml.tmpl")
	if err != nil {
		d.fail("%v", err)
	}
	bobToken := strings.TrimSuffix(strings.TrimPrefix(bob.From, "b+"), "@bounces.example.test")
	report := strings.ReplaceAll(string(tmpl), "{{TOKEN}}", bobToken)
	if err := d.lab.Send("", []string{"fbl-yahoo@bounces.example.test"}, []byte(report)); err != nil {
		d.fail("send report: %v", err)
	}
	d.lab.WaitLogN(d.p, `relay=senderkit-bounce, .*status=sent`, 2, 60*time.Second)
	fmt.Println("  the report carried bob's copy's token in the returned List-Unsubscribe header: attributed, and bob is suppressed for all of Example's mail")

	step(7, "Alice's mailbox provider makes the one-click unsubscribe (RFC 8058) from her copy's List-Unsubscribe")
	m := regexp.MustCompile(`<(http://[^>]+)>`).FindSubmatch(alice.Header())
	if m == nil {
		d.fail("no https link in alice's List-Unsubscribe")
	}
	fmt.Printf("  POST %s\n  Content-Type: application/x-www-form-urlencoded\n\n  List-Unsubscribe=One-Click\n", m[1])
	resp, err := http.Post(string(m[1]), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		d.fail("POST: %v", err)
	}
	resp.Body.Close()
	fmt.Printf("  -> %s (recorded before the answer; no redirect, no cookie)\n", resp.Status)

	step(8, "The next newsletter: the policy server refuses the suppressed recipients at RCPT")
	time.Sleep(1500 * time.Millisecond) // the policy server's filter refreshes every second
	for _, r := range []string{"gone@dest.example.test", "alice@dest.example.test", "bob@dest.example.test"} {
		err := d.lab.Send("news@example.test", []string{r}, []byte(msg))
		fmt.Printf("  RCPT TO:<%s>: %v\n", r, orAccepted(err))
	}

	step(9, "The suppression list explains itself")
	d.sk("suppress", "list")
	d.sk("suppress", "show", "bob@dest.example.test")

	step(10, "The sender report, by send day")
	d.sk("report", "-since", "1d")

	step(11, "Scope health, as vetting judges it (a scope is paused past its thresholds once it has sent vetting.min_sent copies)")
	d.sk("scope", "status")
}

func orAccepted(err error) string {
	if err == nil {
		return "accepted"
	}
	s := err.Error()
	if i := strings.Index(s, "550"); i >= 0 {
		return s[i:]
	}
	return s
}

// serve starts `senderkit serve` as nobody (the user senderkit's own
// would be) and stops it when the demo ends.
func (d *demo) serve() {
	filepath.Walk(d.dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, d.uid, d.gid) })
	d.serveLog = newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, d.bin, "serve", "-c", d.cfg)
	cmd.Stdout, cmd.Stderr = d.serveLog, d.serveLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(d.uid), Gid: uint32(d.gid)}}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		d.fail("senderkit serve: %v", err)
	}
	d.p.Cleanup(func() { cancel(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.serveLog.String(), "senderkit serve started") || !strings.Contains(d.serveLog.String(), "milter listening") {
		if time.Now().After(deadline) {
			d.fail("senderkit serve did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range strings.Split(d.serveLog.String(), "\n") {
		if strings.Contains(l, "listening") || strings.Contains(l, "created a token key") {
			fmt.Println("  " + l[strings.Index(l, "msg="):])
		}
	}
}

// verifyDKIM checks the copy's signatures with go-msgauth against the
// TXT record that keygen printed (a DNS stand-in).
func verifyDKIM(d *demo, data []byte, keygenOut string) {
	// The record is written as zone-file strings, split across lines:
	// ( "v=DKIM1; k=rsa; p=MIIB..." "...IDAQAB" ).
	var record string
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(keygenOut, -1) {
		record += q[1]
	}
	if !strings.HasPrefix(record, "v=DKIM1;") {
		d.fail("no TXT record in keygen's output:\n%s", keygenOut)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain == "demo._domainkey.example.test" {
				return []string{record}, nil
			}
			return nil, fmt.Errorf("no TXT for %s", domain)
		},
	})
	if err != nil || len(vs) == 0 {
		d.fail("DKIM verification: %v", err)
	}
	for _, v := range vs {
		if v.Err != nil {
			d.fail("DKIM signature d=%s does not verify: %v", v.Domain, v.Err)
		}
		fmt.Printf("  DKIM-Signature d=%s: verified against the TXT record keygen printed\n", v.Domain)
	}
}

// contribMilter reads contrib/postfix/milter.main.cf and milter.master.cf
// as an administrator installs them, with the demo's ports.
func contribMilter(d *demo, milterAddr, copyAddr string) (map[string]string, []string) {
	fix := strings.NewReplacer("127.0.0.1:10026", milterAddr, "127.0.0.1:10029", copyAddr)
	b, err := os.ReadFile("contrib/postfix/milter.main.cf")
	if err != nil {
		d.fail("run the demo from the repository (make demo): %v", err)
	}
	main := map[string]string{}
	for _, l := range strings.Split(fix.Replace(string(b)), "\n") {
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if ok {
			main[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	delete(main, "smtpd_milters") // given as Options.Milters, with the demo's port
	delete(main, "non_smtpd_milters")
	b, err = os.ReadFile("contrib/postfix/milter.master.cf")
	if err != nil {
		d.fail("%v", err)
	}
	return main, strings.Split(strings.TrimRight(fix.Replace(string(b)), "\n"), "\n")
}
