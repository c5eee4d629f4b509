package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// TestMetricsE2E: during a run through a real Postfix with senderkit
// serve (milter, policy server, endpoint, metrics) and the bounce pipe,
// the metrics endpoint shows the counters moving by exactly what the test
// sent: messages and tokens, the bounce, the policy reject.
func TestMetricsE2E(t *testing.T) {
	milterAddr, copyAddr, policyAddr, httpAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	w := newPipeWorld(t, fmt.Sprintf(`
[milter]
listen = "inet:%s"
copy_service = %q
[policy]
listen = "inet:%s"
refresh = "200ms"
[http]
listen = %q
base_url = "http://%s/u/"
[metrics]
listen = %q
`, milterAddr, copyAddr, policyAddr, httpAddr, httpAddr, metricsAddr), "127.0.0.1:1")
	main, master := contribMilterLines(t, milterAddr, copyAddr)
	lab := postfixlab.Start(t, postfixlab.Options{
		Milters:       []string{"inet:" + milterAddr},
		PolicyService: "inet:" + policyAddr,
		Main:          main,
		MasterLines:   master,
		Pipes: []postfixlab.Pipe{{Service: "bouncepipe", Domain: "bounces.example.test", User: "nobody", Flags: "Rq",
			Argv: []string{buildBinary(t), "bouncepipe", "-c", w.cfgPath, "${sender}", "${recipient}"}}},
		SinkHandler: rejectAt(map[string]*smtp.SMTPError{
			"gone@dest.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"},
		}),
	})
	// serve as the pipe's user, so that the files each creates are the
	// other's too.
	serveLog := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, buildBinary(t), "serve", "-c", w.cfgPath)
	serve.Stdout, serve.Stderr = serveLog, serveLog
	serve.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(w.uid), Gid: uint32(w.gid)}}
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); serve.Wait() }()
	waitLog(t, serveLog, "metrics listening")
	waitLog(t, serveLog, "milter listening")

	before := scrapeMetrics(t, metricsAddr)
	// Each message is a new one (its own Message-ID): the milter takes an
	// identical message to the same recipient for a retried submission.
	msg := func(n int) []byte {
		return []byte(fmt.Sprintf("From: News <news@acme.example>\r\nTo: undisclosed-recipients:;\r\nSubject: News %d\r\nMessage-ID: <n%d.%d@acme.example>\r\n\r\nHello.\r\n", n, n, time.Now().UnixNano()))
	}
	// One bulk message to two recipients: the original keeps alice, one
	// copy goes to gone@, which the sink refuses; its bounce comes back.
	if err := lab.Send("news@acme.example", []string{"alice@dest.example", "gone@dest.example"}, msg(1)); err != nil {
		t.Fatal(err)
	}
	lab.WaitLog(t, `relay=bouncepipe, .*status=sent`, 60*time.Second)
	time.Sleep(time.Second) // the policy server's filter refreshes every 200ms
	// The next message: gone@ is refused at RCPT; then bob gets his.
	if err := lab.Send("news@acme.example", []string{"gone@dest.example"}, msg(2)); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("gone@ not refused at RCPT: %v\n%s", err, serveLog.String())
	}
	if err := lab.Send("news@acme.example", []string{"bob@dest.example"}, msg(3)); err != nil {
		t.Fatal(err)
	}
	lab.Sink.Wait(t, 2, 30*time.Second) // alice and bob
	after := scrapeMetrics(t, metricsAddr)

	delta := func(name string) int {
		a, _ := strconv.ParseFloat(after[name], 64)
		b, _ := strconv.ParseFloat(before[name], 64)
		return int(a - b)
	}
	for name, want := range map[string]int{
		"senderkit_milter_messages_total":                            3, // alice's original, gone@'s copy, bob's
		"senderkit_milter_tokens_total":                              3,
		"senderkit_milter_copies_total":                              1,
		`senderkit_bounces_total{reason="userunknown",scope="acme"}`: 1, // seen in the log and by mail: counted once
		"senderkit_policy_rejects_total":                             1,
		"senderkit_milter_tempfailed_total":                          0,
	} {
		if got := delta(name); got != want {
			t.Errorf("%s moved by %d, want %d", name, got, want)
		}
	}
	if got := delta("senderkit_policy_requests_total"); got != 4 { // alice, gone@, gone@ again, bob
		t.Errorf("senderkit_policy_requests_total moved by %d, want 4", got)
	}
}

// contribMilterLines reads contrib/postfix/milter.main.cf and
// milter.master.cf as an administrator installs them, with this test's
// ports, leaving the milter lists to the lab's options.
func contribMilterLines(t *testing.T, milterAddr, copyAddr string) (map[string]string, []string) {
	t.Helper()
	fix := strings.NewReplacer("127.0.0.1:10026", milterAddr, "127.0.0.1:10029", copyAddr)
	main := map[string]string{}
	for _, l := range strings.Split(fix.Replace(string(mustRead(t, "../../contrib/postfix/milter.main.cf"))), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			main[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	delete(main, "smtpd_milters")
	delete(main, "non_smtpd_milters")
	master := strings.Split(strings.TrimRight(fix.Replace(string(mustRead(t, "../../contrib/postfix/milter.master.cf"))), "\n"), "\n")
	return main, master
}
