// Package postfixlab runs a private Postfix on loopback, and a scriptable
// SMTP sink, for end-to-end tests.
//
// Start gives each test its own Postfix instance: its own directory under
// os.TempDir() (configuration, queue, data, log) and its own 127.0.0.1
// ports. That Postfix accepts mail by SMTP or sendmail(1) and relays all of
// it to a Sink, a Go SMTP server that records what it receives and can be
// told to refuse recipients. Running a Postfix master needs root; when
// Postfix is missing it is installed with apt-get (see EnsurePackages).
//
// Everything is stopped and removed when the test ends. A test binary that
// dies without running its cleanups (e.g. on a test timeout) leaves a lab
// behind; the next Start, in any test binary, stops and removes it.
package postfixlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// Packages are the commands a Lab needs and their Debian packages.
var Packages = map[string]string{
	"postfix":   "postfix",
	"postconf":  "postfix",
	"postqueue": "postfix",
	"postsuper": "postfix",
	"sendmail":  "postfix",
}

// dirPrefix starts the name of every lab directory in os.TempDir().
const dirPrefix = "postfixlab-"

// cmdTimeout bounds each Postfix command the lab runs.
const cmdTimeout = 30 * time.Second

// Lab is a running private Postfix instance.
type Lab struct {
	// Dir is the lab directory: etc/ (main.cf, master.cf), spool/ (the
	// queue), data/, maillog.
	Dir string
	// SMTPAddr is the "127.0.0.1:port" of the lab's smtpd.
	SMTPAddr string
	// Sink receives everything the lab delivers (relayhost).
	Sink *Sink

	t        TB
	lock     *os.File // flock held while the lab exists; see sweep
	stopOnce sync.Once
}

// Start starts a private Postfix configured by opts, and its Sink. It
// skips the test (fails it when CI=true) if Postfix cannot be run: not
// root, or not installable. Start fails the test on any other error.
// Everything is stopped and removed when the test ends.
func Start(t TB, opts Options) *Lab {
	t.Helper()
	NeedRoot(t, "running a private Postfix")
	EnsurePackages(t, Packages)
	sweep(t)

	sink := NewSink(t)
	sink.SetRcptHandler(opts.SinkHandler)

	dir, lock, err := makeDir()
	if err != nil {
		t.Fatalf("postfixlab: %v", err)
	}
	l := &Lab{Dir: dir, Sink: sink, t: t, lock: lock}
	t.Cleanup(l.Stop)

	// The smtpd port is picked free and then bound by the master: another
	// process may take it in between. Try again on new ports then.
	for attempt := 1; ; attempt++ {
		err = l.start(opts)
		if err == nil {
			return l
		}
		if attempt == 3 || !strings.Contains(l.tailLog(200), "Address already in use") {
			t.Fatalf("postfixlab: %v", err)
		}
		t.Logf("postfixlab: attempt %d: %v; retrying on other ports", attempt, err)
		l.stopPostfix()
	}
}

// makeDir creates the lab directory, mode 0755 (unprivileged Postfix
// daemons and pipe users traverse it), and locks it.
func makeDir() (string, *os.File, error) {
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("creating lab directory: %v", err)
	}
	lock, err := lockDir(dir)
	if err == nil {
		err = populate(dir)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, lock, nil
}

// populate makes dir usable by Postfix: mode 0755 on it and on every
// parent, subdirectories etc, spool and data (owned by postfix).
func populate(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("lab directory %s: %v", dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("lab directory %s: parent %s (mode %v) is not searchable by others; set TMPDIR elsewhere",
				dir, d, fi.Mode().Perm())
		}
		if d == "/" {
			break
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("lab directory: %v", err)
	}
	for _, sub := range []string{"etc", "spool", "data"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("lab directory: %v", err)
		}
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("looking up user postfix: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		return fmt.Errorf("lab directory: %v", err)
	}
	return nil
}

// start writes the configuration on fresh ports, starts Postfix and waits
// until its smtpd answers.
func (l *Lab) start(opts Options) error {
	pick := freePort
	if opts.pickPort != nil {
		pick = opts.pickPort
	}
	addr, err := pick()
	if err != nil {
		return err
	}
	l.SMTPAddr = addr
	c := config{dir: l.Dir, smtpAddr: addr, sinkAddr: l.Sink.Addr, opts: opts}
	if opts.Base != "" {
		if err := l.fromBase(c); err != nil {
			return err
		}
		return l.startPostfix(addr, "(from "+opts.Base+")", "")
	}
	mainCF, err := c.mainCF()
	if err != nil {
		return err
	}
	masterCF, err := c.masterCF()
	if err != nil {
		return err
	}
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := writeConfig(filepath.Join(l.Dir, "etc", name), text); err != nil {
			return err
		}
	}
	return l.startPostfix(addr, mainCF, masterCF)
}

// fromBase writes the lab's configuration from c.opts.Base: its files,
// with the lab's own locations and addresses.
func (l *Lab) fromBase(c config) error {
	etc := filepath.Join(l.Dir, "etc")
	for _, f := range []string{"main.cf", "master.cf"} {
		b, err := os.ReadFile(filepath.Join(c.opts.Base, f))
		if err != nil {
			return err
		}
		if err := writeConfig(filepath.Join(etc, f), string(b)); err != nil {
			return err
		}
	}
	if _, err := l.run("postconf", append([]string{"-c", etc, "-e"}, c.baseParams()...)...); err != nil {
		return err
	}
	// The public smtp service listens on the lab's port, nothing
	// chroots, and postlog serves maillog_file.
	master, err := os.ReadFile(filepath.Join(etc, "master.cf"))
	if err != nil {
		return err
	}
	lines := strings.Split(string(master), "\n")
	found := false
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "smtp" && f[1] == "inet" {
			lines[i] = c.smtpAddr + strings.TrimPrefix(line, "smtp")
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s/master.cf has no \"smtp inet\" service to run on %s", c.opts.Base, c.smtpAddr)
	}
	if !strings.Contains(string(master), "postlogd") {
		lines = append(lines, "postlog    unix-dgram n - n - 1 postlogd")
	}
	if err := writeConfig(filepath.Join(etc, "master.cf"), strings.Join(lines, "\n")); err != nil {
		return err
	}
	if _, err := l.run("postconf", "-c", etc, "-F", "*/*/chroot = n"); err != nil {
		return err
	}
	for _, f := range []string{"main.cf", "master.cf"} {
		if err := backdate(filepath.Join(etc, f)); err != nil {
			return err
		}
	}
	return nil
}

// startPostfix checks and starts the lab's Postfix and waits until its
// smtpd answers; mainCF and masterCF are quoted in errors.
func (l *Lab) startPostfix(addr, mainCF, masterCF string) error {
	out, err := l.postfix("check")
	if err != nil {
		return fmt.Errorf("%v\nmain.cf:\n%s\nmaster.cf:\n%s", err, mainCF, masterCF)
	}
	if o := bytes.TrimSpace(out); len(o) > 0 {
		l.t.Logf("postfixlab: postfix check: %s", o)
	}
	if _, err := l.postfix("start"); err != nil {
		return fmt.Errorf("%v\nmaillog:\n%s", err, l.tailLog(30))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := probe(addr)
		if err == nil {
			return nil
		}
		if pid := masterPID(l.Dir); pid == 0 || !alive(pid) {
			return fmt.Errorf("postfix master in %s exited after start (probing %s: %v)\nmaillog:\n%s",
				l.Dir, addr, err, l.tailLog(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("smtpd %s not ready after 15s: %v\nmaillog:\n%s", addr, err, l.tailLog(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeConfig writes a Postfix configuration file and backdates it.
func writeConfig(path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("writing %s: %v", path, err)
	}
	return backdate(path)
}

// backdate sets the modification time of a configuration file 10s in the
// past. Postfix programs reread a table file (main.cf included) every
// 300ms until its mtime is more than a second old, so as not to read it
// half-written: a fresh main.cf costs each command up to 2s.
func backdate(path string) error {
	old := time.Now().Add(-10 * time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		return fmt.Errorf("backdating %s: %v", path, err)
	}
	return nil
}

// probe checks that an SMTP server greets on addr, then says QUIT (a bare
// connect would be logged as "lost connection after CONNECT").
func probe(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("reading greeting: %v", err)
	}
	if !bytes.HasPrefix(buf[:n], []byte("220")) {
		return fmt.Errorf("greeting %q", buf[:n])
	}
	conn.Write([]byte("QUIT\r\n"))
	conn.Read(buf)
	return nil
}

// freePort returns a 127.0.0.1 address with a port that was free.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Stop stops Postfix, waiting until its master has exited, stops the
// Sink and removes the lab directory. It is idempotent, and called when
// the test ends. If the test failed, the end of the maillog is logged
// first.
func (l *Lab) Stop() {
	l.stopOnce.Do(func() {
		if l.t.Failed() {
			l.t.Logf("postfixlab: %s/maillog ends with:\n%s", l.Dir, l.tailLog(60))
		}
		if err := l.stopPostfix(); err != nil {
			l.t.Errorf("postfixlab: %v", err)
		}
		l.Sink.Close()
		if err := os.RemoveAll(l.Dir); err != nil {
			l.t.Errorf("postfixlab: removing lab directory: %v", err)
		}
		l.lock.Close()
	})
}

// stopPostfix stops the lab's Postfix and waits until its master and
// every process working in its queue directory have exited.
func (l *Lab) stopPostfix() error {
	return stopPostfix(l.Dir)
}

func stopPostfix(dir string) error {
	pid := masterPID(dir)
	if pid == 0 || !alive(pid) {
		return waitDaemons(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, mustLook("postfix"), "-c", filepath.Join(dir, "etc"), "stop").CombinedOutput()
	if err != nil && alive(pid) {
		// Keep going: the master is killed below.
		err = fmt.Errorf("postfix -c %s/etc stop: %v: %s", dir, err, bytes.TrimSpace(out))
	} else {
		err = nil
	}
	if !waitGone(pid, 10*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		if !waitGone(pid, 5*time.Second) {
			return fmt.Errorf("postfix master %d of %s survives SIGKILL", pid, dir)
		}
		err = errors.Join(err, fmt.Errorf("postfix master %d of %s did not stop in 10s; killed", pid, dir))
	}
	return errors.Join(err, waitDaemons(dir))
}

// waitDaemons waits until no process works in dir/spool (Postfix daemons
// chdir to the queue directory), killing them after a grace period.
func waitDaemons(dir string) error {
	spool := filepath.Join(dir, "spool")
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := pidsIn(spool)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
			return fmt.Errorf("processes %v still in %s 5s after the master exited; killed", pids, spool)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidsIn returns the processes whose working directory is dir or below.
func pidsIn(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// masterPID returns the PID in the lab's master.pid, or 0.
func masterPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "spool", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// alive reports whether pid is a running (not zombie) Postfix master.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || !strings.Contains(s[:i], "(master") {
		return false
	}
	return !strings.HasPrefix(s[i+1:], " Z")
}

// waitGone waits until pid is no longer a running master.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// ConfigDir returns the directory of main.cf and master.cf, for the -c
// option of the Postfix commands.
func (l *Lab) ConfigDir() string {
	return filepath.Join(l.Dir, "etc")
}

// postfix runs a Postfix administrative command with -c ConfigDir(), e.g.
// l.postfix("reload"), and returns its output.
func (l *Lab) postfix(args ...string) ([]byte, error) {
	return l.run("postfix", args...)
}

// run runs a Postfix command with -c ConfigDir() and returns its output.
func (l *Lab) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args = append([]string{"-c", l.ConfigDir()}, args...)
	out, err := exec.CommandContext(ctx, mustLook(name), args...).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
		if o := bytes.TrimSpace(out); len(o) > 0 {
			err = fmt.Errorf("%v: %s", err, o)
		}
		return out, err
	}
	return out, nil
}

// Release takes a message out of the hold queue (postsuper -H) so that it
// is delivered.
func (l *Lab) Release(queueID string) error {
	_, err := l.run("postsuper", "-H", queueID)
	return err
}

// mustLook returns the path of a Postfix command, or its bare name.
func mustLook(name string) string {
	if p, err := lookCmd(name); err == nil {
		return p
	}
	return name
}

// Postconf sets main.cf parameters, each given as "name=value", with
// postconf -e. Call Reload for a running Postfix to use them. It fails the
// test on error and must be called from the test's goroutine.
func (l *Lab) Postconf(kv ...string) {
	l.t.Helper()
	for _, p := range kv {
		if !strings.Contains(p, "=") {
			l.t.Fatalf("postfixlab: Postconf(%q): want name=value", p)
		}
	}
	if _, err := l.run("postconf", append([]string{"-e"}, kv...)...); err != nil {
		l.t.Fatalf("postfixlab: %v", err)
	}
	if err := backdate(filepath.Join(l.ConfigDir(), "main.cf")); err != nil {
		l.t.Fatalf("postfixlab: %v", err)
	}
}

// Reload makes Postfix reread its configuration and waits until the
// master has done so. It fails the test on error and must be called from
// the test's goroutine.
func (l *Lab) Reload() {
	l.t.Helper()
	re := regexp.MustCompile(`postfix/master\[\d+\]: reload -- `)
	before := len(re.FindAllString(l.Log(), -1))
	if _, err := l.postfix("reload"); err != nil {
		l.t.Fatalf("postfixlab: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(re.FindAllString(l.Log(), -1)) <= before {
		if time.Now().After(deadline) {
			l.t.Fatalf("postfixlab: no reload in %s/maillog 10s after postfix reload:\n%s", l.Dir, l.tailLog(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Dial opens an SMTP connection to the lab's smtpd and says EHLO.
func (l *Lab) Dial() (*smtp.Client, error) {
	c, err := smtp.Dial(l.SMTPAddr)
	if err != nil {
		return nil, fmt.Errorf("postfixlab: connecting to %s: %w", l.SMTPAddr, err)
	}
	if err := c.Hello("client.example.test"); err != nil {
		c.Close()
		return nil, fmt.Errorf("postfixlab: EHLO to %s: %w", l.SMTPAddr, err)
	}
	return c, nil
}

// Send submits msg over SMTP to the lab's smtpd, from the envelope sender
// from ("" for the null sender) to the recipients to. A refused command
// gives an error wrapping the server's *smtp.SMTPError, whose code and
// text are in the message too.
func (l *Lab) Send(from string, to []string, msg []byte) error {
	return send(l.SMTPAddr, from, to, msg)
}

// send submits msg to the SMTP server at addr in one transaction, without
// TLS or AUTH. It fails on the first refused command.
func send(addr, from string, to []string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return fmt.Errorf("postfixlab: connecting to %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return fmt.Errorf("postfixlab: EHLO to %s: %w", addr, err)
	}
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("postfixlab: MAIL FROM:<%s> to %s: %w", from, addr, err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return fmt.Errorf("postfixlab: RCPT TO:<%s> to %s: %w", r, addr, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("postfixlab: DATA to %s: %w", addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("postfixlab: writing message to %s: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("postfixlab: end of DATA to %s: %w", addr, err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("postfixlab: QUIT to %s: %w", addr, err)
	}
	return nil
}

// Sendmail submits msg with the lab's sendmail(1) (postdrop, then pickup),
// as "sendmail -C ConfigDir() -i -f from -- to...". Only root may point
// sendmail at a configuration directory that the default main.cf does not
// list in alternate_config_directories.
func (l *Lab) Sendmail(from string, to []string, msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args := append([]string{"-C", l.ConfigDir(), "-i", "-f", from, "--"}, to...)
	cmd := exec.CommandContext(ctx, mustLook("sendmail"), args...)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postfixlab: sendmail %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Log returns the lab's maillog.
func (l *Lab) Log() string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "maillog"))
	return string(b)
}

// tailLog returns the last n lines of the maillog.
func (l *Lab) tailLog(n int) string {
	return tail(l.Log(), n)
}

// LogLines returns the lines of the maillog matching the regular
// expression pattern.
func (l *Lab) LogLines(pattern string) []string {
	re := regexp.MustCompile(pattern)
	var lines []string
	for _, line := range strings.Split(l.Log(), "\n") {
		if re.MatchString(line) {
			lines = append(lines, line)
		}
	}
	return lines
}

// LogContains reports whether a line of the maillog matches the regular
// expression pattern.
func (l *Lab) LogContains(pattern string) bool {
	return len(l.LogLines(pattern)) > 0
}

// WaitLog waits until a line of the maillog matches the regular
// expression pattern, and returns the matching lines. It fails the test
// after timeout.
func (l *Lab) WaitLog(t TB, pattern string, timeout time.Duration) []string {
	t.Helper()
	return l.WaitLogN(t, pattern, 1, timeout)
}

// WaitLogN waits until n lines of the maillog match the regular
// expression pattern, and returns the matching lines. It fails the test
// after timeout.
func (l *Lab) WaitLogN(t TB, pattern string, n int, timeout time.Duration) []string {
	t.Helper()
	if _, err := regexp.Compile(pattern); err != nil {
		t.Fatalf("postfixlab: WaitLog: %v", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		lines := l.LogLines(pattern)
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixlab: %d lines matching %q in %s/maillog after %v, want %d; it ends with:\n%s",
				len(lines), pattern, l.Dir, timeout, n, l.tailLog(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// QueueEntry is one message in the Postfix queue, as postqueue -j shows it.
type QueueEntry struct {
	Queue      string `json:"queue_name"` // maildrop, incoming, active, deferred, hold
	ID         string `json:"queue_id"`
	ArrivalAt  int64  `json:"arrival_time"`
	Size       int64  `json:"message_size"`
	Sender     string `json:"sender"`
	Recipients []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// Queue returns the messages in the lab's queue.
func (l *Lab) Queue() ([]QueueEntry, error) {
	out, err := l.run("postqueue", "-j")
	if err != nil {
		return nil, err
	}
	var q []QueueEntry
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e QueueEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("postqueue -j: parsing %q: %v", line, err)
		}
		q = append(q, e)
	}
	return q, nil
}

// WaitQueueEmpty waits until the lab's queue is empty. It fails the test
// after timeout, listing what is left.
func (l *Lab) WaitQueueEmpty(t TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q, err := l.Queue()
		if err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
		if len(q) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, e := range q {
				fmt.Fprintf(&b, "  %s %s from=<%s>", e.Queue, e.ID, e.Sender)
				for _, r := range e.Recipients {
					fmt.Fprintf(&b, " to=<%s> (%s)", r.Address, r.DelayReason)
				}
				b.WriteString("\n")
			}
			t.Fatalf("postfixlab: queue of %s not empty after %v:\n%s", l.Dir, timeout, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Flush asks Postfix to attempt delivery of all queued mail now
// (postqueue -f).
func (l *Lab) Flush() error {
	_, err := l.run("postqueue", "-f")
	return err
}
