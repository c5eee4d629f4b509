package postfixlab

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStartRetriesOnBusyPort(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	calls := 0
	pick := func() (string, error) {
		calls++
		if calls == 1 {
			return busy.Addr().String(), nil
		}
		return freePort()
	}
	l := Start(t, Options{pickPort: pick})
	if calls != 2 || l.SMTPAddr == busy.Addr().String() {
		t.Fatalf("Start picked %d ports, now on %s (busy: %s); want a retry on a new port", calls, l.SMTPAddr, busy.Addr())
	}
	if !l.LogContains(`Address already in use`) {
		t.Errorf("no bind failure in the log:\n%s", l.Log())
	}
	if err := l.Send("a@example.test", []string{"b@dest.example.test"}, []byte("Subject: retry\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	l.Sink.Wait(t, 1, wait)
}

func TestSweepRemovesOrphanedLab(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	pid := masterPID(l.Dir)
	// Play a test binary that died: its lock goes, and time passes.
	l.lock.Close()
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(l.Dir, lockName), old, old); err != nil {
		t.Fatal(err)
	}
	sweep(t)
	if alive(pid) {
		t.Errorf("master %d of the orphaned lab still runs after sweep", pid)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("orphaned lab directory %s still there: %v", l.Dir, err)
	}
}

func TestSweepKeepsLiveLab(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{})
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(l.Dir, lockName), old, old); err != nil {
		t.Fatal(err)
	}
	sweep(t)
	if pid := masterPID(l.Dir); !alive(pid) {
		t.Fatalf("sweep stopped the master of a live lab")
	}
}

// fakeTB records how a helper ended the test.
type fakeTB struct {
	testing.TB
	how, msg string
}

func (f *fakeTB) Helper()                         {}
func (f *fakeTB) Logf(format string, args ...any) {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.how, f.msg = "fatal", format
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.how, f.msg = "skip", format
	runtime.Goexit()
}

func endOf(fn func(t testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan bool)
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

// Not parallel: it sets $CI.
func TestUnavailableFailsInCI(t *testing.T) {
	for _, tc := range []struct{ ci, want string }{
		{"true", "fatal"},
		{"", "skip"},
		{"false", "skip"},
	} {
		t.Setenv("CI", tc.ci)
		f := endOf(func(tb testing.TB) { Unavailable(tb, "postfixlab: no %s", "postfix") })
		if f.how != tc.want || !strings.Contains(f.msg, "postfixlab: ") {
			t.Errorf("CI=%q: %s %q, want %s", tc.ci, f.how, f.msg, tc.want)
		}
	}
	t.Setenv("CI", "true")
	if f := endOf(func(tb testing.TB) { EnsurePackages(tb, map[string]string{"sh": "dash"}) }); f.how != "" {
		t.Errorf("EnsurePackages of an existing command: %s %q", f.how, f.msg)
	}
}

func TestMissing(t *testing.T) {
	t.Parallel()
	got := missing(map[string]string{"sh": "dash", "postfixlab-no-such-command": "x", "postconf": "postfix"})
	if want := []string{"postfixlab-no-such-command"}; !slices.Equal(got, want) {
		t.Errorf("missing = %q, want %q", got, want)
	}
}

func TestMasterQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/bin/sh":     "/bin/sh",
		"${sender}":   "${sender}",
		"hello world": "{ hello world }",
		"a}b":         "a}b",
		"{x}":         "{ {x} }",
		"${a} ${b}":   "{ ${a} ${b} }",
	} {
		if got, err := masterQuote(in); err != nil || got != want {
			t.Errorf("masterQuote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "{x", "a }", " lead", "two\nlines"} {
		if got, err := masterQuote(in); err == nil {
			t.Errorf("masterQuote(%q) = %q, want an error", in, got)
		}
	}
}

func TestConfigFromOptions(t *testing.T) {
	t.Parallel()
	c := config{dir: "/tmp/lab", smtpAddr: "127.0.0.1:2525", sinkAddr: "127.0.0.1:2626", opts: Options{
		Milters:             []string{"inet:127.0.0.1:1", "inet:127.0.0.1:2"},
		NonSMTPDMilters:     []string{"inet:127.0.0.1:3"},
		MilterDefaultAction: "accept",
		PolicyService:       "127.0.0.1:4",
		Pipes: []Pipe{
			{Service: "p1", Domain: "a.example.test", Argv: []string{"/bin/cat"}},
			{Service: "p2", Domain: "b.example.test", User: "postfix", Flags: "FR", Argv: []string{"/bin/echo", "${sender} x"}, Env: map[string]string{"B": "2", "A": "1"}},
		},
		Main:        map[string]string{"relayhost": "[127.0.0.1]:9", "maximal_queue_lifetime": "10s"},
		MasterLines: []string{"extra unix - - n - - error"},
	}}
	main, err := c.mainCF()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nqueue_directory = /tmp/lab/spool\n",
		"\nmaillog_file_prefixes = /tmp/lab\n",
		"\nsmtpd_milters = inet:127.0.0.1:1, inet:127.0.0.1:2\n",
		"\nnon_smtpd_milters = inet:127.0.0.1:3\n",
		"\nmilter_default_action = accept\n",
		"\nsmtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:4\n",
		"\ntransport_maps = inline:{a.example.test=p1:,b.example.test=p2:}\n",
		"\nrelay_domains = a.example.test, b.example.test\n",
		"\np1_destination_recipient_limit = 1\n",
		"\nrelayhost = [127.0.0.1]:9\n",
		"\nmaximal_queue_lifetime = 10s\n",
	} {
		if !strings.Contains(main, want) {
			t.Errorf("main.cf lacks %q:\n%s", want, main)
		}
	}
	if strings.Count(main, "\nrelayhost = ") != 1 {
		t.Errorf("relayhost set more than once:\n%s", main)
	}
	master, err := c.masterCF()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\n127.0.0.1:2525 inet n - n - - smtpd\n",
		"\np1 unix - n n - - pipe flags=Rq user=nobody argv=/bin/cat\n",
		"\np2 unix - n n - - pipe flags=FR user=postfix argv=/usr/bin/env A=1 B=2 /bin/echo { ${sender} x }\n",
		"\nextra unix - - n - - error\n",
	} {
		if !strings.Contains(master, want) {
			t.Errorf("master.cf lacks %q:\n%s", want, master)
		}
	}
	c.opts.Pipes = []Pipe{{Service: "bad name", Argv: []string{"x"}}}
	if _, err := c.mainCF(); err == nil {
		t.Errorf("pipe service %q accepted", "bad name")
	}
}
