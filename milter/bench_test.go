package milter

// Speed, as figures (never pass/fail):
//
//	go test -run '^$' -bench '^BenchmarkPostfix$' -benchtime 1x -timeout 30m ./milter
//	go test -run '^$' -bench '^BenchmarkSendRow' ./milter
//
// BenchmarkPostfix pushes the same messages through one private Postfix
// (postfixlab, with smtp-source from the postfix package as the client
// and the lab's sink as the Internet), reconfigured between runs:
// Postfix alone; Postfix with OpenDKIM signing RSA-2048; Postfix with a
// do-nothing go-milter in three forms: negotiating away every reply but
// the end of message's, as senderkit does; with go-milter's default
// negotiation (a reply to every event); and negotiating as senderkit
// does behind senderkit's connection handling (a read buffer, joined
// writes, TCP_QUICKACK; see quickack_linux.go). The fastest of the three
// is the floor any Go milter can reach, and senderkit is measured against
// it. Then Postfix with senderkit (RSA-2048 signature, VERP,
// List-Unsubscribe, Feedback-ID and a durable send row per message, with
// synchronous=full); and senderkit signing Ed25519, and nothing; and a
// do-nothing milter that makes senderkit's edits (editingNoop). Each
// run sends 3000 messages (or -benchtime Nx, N >= 500) from 20
// sessions. Every configuration runs once per round, in turn, for 3
// rounds (SENDERKIT_BENCH_ROUNDS). It reports end-to-end messages per
// second (from the first connection to the last message at the sink)
// and the ratios between configurations, each the median of the
// ratios within a round, then the live heap per message in progress.
// SENDERKIT_BENCH_ONLY=regexp runs only the configurations it matches,
// and reports no ratios (for profiling: add -cpuprofile), then the live
// heap.
// SENDERKIT_BENCH_SYNC=normal runs senderkit's store with
// synchronous=normal (see store.synchronous) instead of full.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
	"github.com/senderkit/senderkit/milter/dkim"
)

// benchSessions is how many SMTP sessions smtp-source runs at once.
const benchSessions = 20

// benchMessage is the message smtp-source sends (it adds the CRLFs):
// a newsletter of about 2 KB, with no Message-ID or Date, which Postfix
// adds for a local client.
func benchMessage(size int) string {
	var b strings.Builder
	b.WriteString("From: News <news@example.com>\nTo: <reader@dest.example>\nSubject: the news of the week\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %04d of the newsletter, with some text to make it a line of usual length.\n", i)
	}
	return b.String()
}

// benchRounds is how many times BenchmarkPostfix runs every
// configuration: SENDERKIT_BENCH_ROUNDS, default 3.
func benchRounds(tb testing.TB) int {
	v := os.Getenv("SENDERKIT_BENCH_ROUNDS")
	if v == "" {
		return 3
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("SENDERKIT_BENCH_ROUNDS=%q: want a positive number", v)
	}
	return n
}

// median returns the middle of xs (the mean of the two middle ones
// when there are as many above as below).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchCount is how many messages a run sends: b.N, unless it is too few
// to measure (the Makefile runs -benchtime 1x; each run reports its own
// rate, whatever b.N is).
func benchCount(b *testing.B) int {
	if b.N < 500 {
		return 3000
	}
	return b.N
}

type benchResult struct {
	rate, acceptRate float64 // messages a second: end to end; accepted by Postfix
	// CPU milliseconds per message: the whole machine's (Postfix, the
	// milter, the sink, smtp-source) and this process's (the milter under
	// test, when it runs in this process, and the sink).
	cpuMS, selfMS float64
}

// busySeconds returns the CPU time the whole machine has spent busy,
// from /proc/stat, and this process's, from getrusage.
func busySeconds(tb testing.TB) (all, self float64) {
	tb.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		tb.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var jiffies float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			tb.Fatalf("/proc/stat: %q: %v", line, err)
		}
		jiffies += v
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return jiffies / 100, tv(ru.Utime) + tv(ru.Stime) // USER_HZ is 100 on Linux
}

func BenchmarkPostfix(b *testing.B) {
	postfixlab.EnsurePackages(b, map[string]string{"opendkim": "opendkim", "smtp-source": "postfix"})
	e := newEnv(b, envOptions{logLevel: slog.LevelWarn, synchronous: os.Getenv("SENDERKIT_BENCH_SYNC")})
	dir := b.TempDir()
	msgFile := filepath.Join(dir, "msg.txt")
	odkim := startOpenDKIM(b, dir)
	noop := startNoop(b, noopLikeSenderkit)
	noopDefault := startNoop(b, noopDefaults)
	noopTransport := startNoop(b, noopSenderkitTransport)
	noopEdits := startNoop(b, noopEditing)

	sk := "inet:" + e.milterAddr
	configs := []struct{ name, milter, signingTable string }{
		{"postfix-alone", "", ""},
		{"postfix+opendkim", odkim, ""},
		{"postfix+noop-gomilter", noop, ""},
		{"postfix+noop-gomilter-default", noopDefault, ""},
		{"postfix+noop-gomilter-senderkit-transport", noopTransport, ""},
		// The floor for a milter that edits as senderkit does: the same
		// edits, with no work to make them (editingNoop).
		{"postfix+noop-gomilter-senderkit-edits", noopEdits, ""},
		{"postfix+senderkit", sk, "*@example.com rsa\n"},
		// Where senderkit's time goes: the same with an Ed25519 key, and
		// with no signature at all.
		{"postfix+senderkit-ed25519", sk, "*@example.com ed\n"},
		{"postfix+senderkit-unsigned", sk, "nobody@example.com rsa\n"},
	}
	floors := []string{"postfix+noop-gomilter", "postfix+noop-gomilter-default", "postfix+noop-gomilter-senderkit-transport"}
	only := os.Getenv("SENDERKIT_BENCH_ONLY")
	if only != "" {
		// For profiling one configuration; the ratios need them all.
		re, err := regexp.Compile(only)
		if err != nil {
			b.Fatalf("SENDERKIT_BENCH_ONLY=%q: %v", only, err)
		}
		configs = slices.DeleteFunc(configs, func(c struct{ name, milter, signingTable string }) bool { return !re.MatchString(c.name) })
	}
	rounds := benchRounds(b)
	// runs[name][round]; each round runs every configuration once, in
	// turn, so that a machine busier in one period slows all of them
	// alike and the ratios are taken within a round.
	runs := map[string][]benchResult{}
	for r := 0; r < rounds; r++ {
		for _, c := range configs {
			if c.signingTable != "" {
				e.setSigningTable(c.signingTable)
			}
			e.lab.Postconf("smtpd_milters=" + c.milter)
			e.lab.Reload()
			runSource(b, e, msgFile, 200) // warm up the new configuration
			c0, r0 := e.srv.sends.commits.Load(), e.srv.sends.rows.Load()
			res := runSource(b, e, msgFile, benchCount(b))
			runs[c.name] = append(runs[c.name], res)
			perCommit := ""
			if c := e.srv.sends.commits.Load() - c0; c > 0 {
				perCommit = fmt.Sprintf(" %5.2f send rows/commit", float64(e.srv.sends.rows.Load()-r0)/float64(c))
			}
			fmt.Printf("round %d %-45s %7.0f msgs/s %7.0f accepted/s %6.2f CPU ms/msg %6.2f ours%s\n",
				r+1, c.name, res.rate, res.acceptRate, res.cpuMS, res.selfMS, perCommit)
		}
	}
	if only == "" {
		reportRatios(b, configs, runs, floors, rounds)
	}
	b.ReportMetric(0, "ns/op")

	// Memory: the live heap (after a GC) while benchSessions messages are
	// in the milter at once, per message. Deliveries wait meanwhile (the
	// relay refuses connections): the sink, in this process too, would
	// hold what it receives.
	e.setSigningTable("*@example.com rsa\n")
	e.lab.Postconf("smtpd_milters="+sk, "relayhost=[127.0.0.1]:9")
	e.lab.Reload()
	for _, size := range []int{2000, 200 << 10} {
		newMessage(msgFile, size)
		per := liveHeapPerMessage(b, e, msgFile, 400)
		fmt.Printf("senderkit, %d-byte messages, %d at once: %.1f KB of live heap per message in progress\n", size, benchSessions, per/1024)
	}
}

// reportRatios prints each configuration's median rate and the ratios
// between them, each the median of the ratios within a round.
func reportRatios(b *testing.B, configs []struct{ name, milter, signingTable string }, runs map[string][]benchResult, floors []string, rounds int) {
	// ratio returns the median over the rounds of a's rate over b's.
	ratio := func(a, b string) float64 {
		var rs []float64
		for i := range runs[a] {
			rs = append(rs, runs[a][i].rate/runs[b][i].rate)
		}
		return median(rs)
	}
	// The floor: the do-nothing milter fastest in the most rounds' median.
	floorName := floors[0]
	for _, n := range floors[1:] {
		if ratio(n, floorName) > 1 {
			floorName = n
		}
	}
	fmt.Printf("%-45s %9s %9s %12s %12s\n", "end to end, median of "+strconv.Itoa(rounds)+" rounds", "msgs/s", "x alone", "CPU ms/msg", "of which ours")
	for _, c := range configs {
		var rate, cpu, self []float64
		for _, r := range runs[c.name] {
			rate, cpu, self = append(rate, r.rate), append(cpu, r.cpuMS), append(self, r.selfMS)
		}
		fmt.Printf("%-45s %9.0f %9.2f %12.2f %12.2f\n", c.name, median(rate), ratio(c.name, "postfix-alone"), median(cpu), median(self))
	}
	fmt.Println(`("x alone" and the ratios below are medians of the ratios within each round; "CPU ms/msg" is the whole machine's; "of which ours" is this process's: the sink, and the milter under test when it is senderkit or a do-nothing one)`)
	sync := os.Getenv("SENDERKIT_BENCH_SYNC")
	if sync == "" {
		sync = "full"
	}
	fmt.Printf("the floor is %s, the fastest do-nothing milter\n", floorName)
	vsDKIM, vsFloor := ratio("postfix+senderkit", "postfix+opendkim"), ratio("postfix+senderkit", floorName)
	fmt.Printf("senderkit (store synchronous=%s) / OpenDKIM = %.2f (goal >= 2), senderkit / do-nothing go-milter = %.2f (goal >= 0.9)\n", sync, vsDKIM, vsFloor)
	fmt.Printf("senderkit signing Ed25519 instead: %.2fx the floor; signing nothing: %.2fx\n",
		ratio("postfix+senderkit-ed25519", floorName), ratio("postfix+senderkit-unsigned", floorName))
	fmt.Printf("a do-nothing milter making senderkit's edits: %.2fx the floor; senderkit / that = %.2f\n",
		ratio("postfix+noop-gomilter-senderkit-edits", floorName), ratio("postfix+senderkit", "postfix+noop-gomilter-senderkit-edits"))
	b.ReportMetric(vsDKIM, "x-opendkim")
	b.ReportMetric(vsFloor, "x-floor")
}

// runs makes each run's message new: smtp-source numbers its recipients
// from 1 again, and the same message for the same recipient again would
// be a retry, which senderkit discards.
var runs int

// newMessage writes a message of about size bytes to file, unlike the
// ones before.
func newMessage(file string, size int) {
	runs++
	os.WriteFile(file, []byte(fmt.Sprintf("X-Run: %d\n", runs)+benchMessage(size)), 0o644)
}

// runSource sends n messages of 2 KB with smtp-source and waits for them
// at the sink.
func runSource(tb testing.TB, e *env, msgFile string, n int) benchResult {
	tb.Helper()
	newMessage(msgFile, 2000)
	e.lab.Sink.Reset()
	all0, self0 := busySeconds(tb)
	start := time.Now()
	cmd := exec.Command("/usr/sbin/smtp-source", "-s", strconv.Itoa(benchSessions), "-m", strconv.Itoa(n), "-N",
		"-F", msgFile, "-f", "news@example.com", "-t", "reader@dest.example", e.lab.SMTPAddr)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("smtp-source: %v\n%s", err, out)
	}
	accepted := time.Since(start)
	e.lab.Sink.Wait(tb, n, 10*time.Minute)
	all := time.Since(start)
	all1, self1 := busySeconds(tb)
	if got := len(e.lab.Sink.Messages()); got != n {
		tb.Fatalf("%d messages at the sink, want %d", got, n)
	}
	return benchResult{rate: float64(n) / all.Seconds(), acceptRate: float64(n) / accepted.Seconds(),
		cpuMS: (all1 - all0) * 1000 / float64(n), selfMS: (self1 - self0) * 1000 / float64(n)}
}

// liveHeapPerMessage sends n messages from msgFile and samples the live
// heap meanwhile; it returns the peak growth per concurrent session.
func liveHeapPerMessage(tb testing.TB, e *env, msgFile string, n int) float64 {
	live := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := live()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			peak = max(peak, live())
		}
	})
	cmd := exec.Command("/usr/sbin/smtp-source", "-s", strconv.Itoa(benchSessions), "-m", strconv.Itoa(n), "-N",
		"-F", msgFile, "-f", "news@example.com", "-t", "reader@dest.example", e.lab.SMTPAddr)
	out, err := cmd.CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		tb.Fatalf("smtp-source: %v\n%s", err, out)
	}
	return (float64(peak) - float64(base)) / benchSessions
}

// startOpenDKIM runs OpenDKIM signing every message from example.com with
// an RSA-2048 key, relaxed/relaxed, and returns its milter address.
func startOpenDKIM(tb testing.TB, dir string) string {
	tb.Helper()
	key := filepath.Join(dir, "odkim.pem")
	k, err := dkim.GenerateKey("rsa", 2048)
	if err != nil {
		tb.Fatal(err)
	}
	pemBytes, _ := dkim.MarshalPrivateKey(k)
	os.WriteFile(key, pemBytes, 0o600)
	exec.Command("chown", "opendkim:opendkim", key).Run()
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "opendkim.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("Syslog no\nBackground no\nMode s\nDomain example.com\nSelector s1\nKeyFile %s\n"+
		"Canonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\nSocket inet:%s@127.0.0.1\nPidFile %s\n"+
		"UserID opendkim:opendkim\nRequireSafeKeys no\n", key, port, filepath.Join(dir, "opendkim.pid"))), 0o644)
	cmd := exec.Command("opendkim", "-x", conf)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill() // the one we started
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "inet:" + addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("opendkim does not listen on %s", addr)
		}
	}
}

// noopKind is how a do-nothing milter negotiates and reads.
type noopKind int

const (
	noopLikeSenderkit      noopKind = iota // no reply but to the end of message, no event it does not use
	noopDefaults                           // go-milter's defaults: a reply to every event
	noopSenderkitTransport                 // as noopLikeSenderkit, behind bufferedListener
	noopEditing                            // as noopSenderkitTransport, making senderkit's edits with fixed values
)

// editingNoop makes, at the end of every message, the edits senderkit
// makes to a bulk message that lacks a Message-ID and Date (plan.go and
// finish.go: the VERP sender, five header fields, one DKIM-Signature at
// the top), with fixed values of the same sizes and no work to compute
// them. What it costs beyond the do-nothing milter is what applying
// senderkit's edits costs Postfix and the milter protocol, the part of
// senderkit's cost that no work of its own can remove.
type editingNoop struct{ gomilter.NoOpMilter }

// editingSignature is an RSA-2048 DKIM-Signature value's size.
var editingSignature = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; t=1795687203;\r\n\th=from:to:subject:date:message-id:list-unsubscribe:list-unsubscribe-post:feedback-id;\r\n\tbh=" +
	strings.Repeat("A", 44) + ";\r\n\tb=" + strings.Repeat("B", 344)

func (editingNoop) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	const token = "ceaqz5bzeaaaaaaaaaaah2ibai2n6xzolkewhwcy5a"
	edits := []func() error{
		func() error { return m.ChangeFrom("b+"+token+"@bounces.example.com", "") },
		func() error {
			return m.AddHeader("List-Unsubscribe", "<mailto:u+"+token+"@bounces.example.com>, <https://www.example.com/u/"+token+">")
		},
		func() error { return m.AddHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click") },
		func() error { return m.AddHeader("Feedback-ID", "news:acme:bulk:example.com") },
		func() error { return m.AddHeader("Message-ID", "<"+token+"@example.com>") },
		func() error { return m.AddHeader("Date", "Mon, 23 Nov 2026 20:00:00 +0000") },
		func() error { return m.InsertHeader(0, "DKIM-Signature", editingSignature) },
	}
	for _, edit := range edits {
		if err := edit(); err != nil {
			return nil, err
		}
	}
	return gomilter.RespAccept, nil
}

// startNoop runs a go-milter that does nothing and returns its milter
// address.
func startNoop(tb testing.TB, kind noopKind) string {
	tb.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var ln net.Listener = tcp
	addr := "inet:" + tcp.Addr().String()
	opts := []gomilter.Option{gomilter.WithMilter(func() gomilter.Milter { return gomilter.NoOpMilter{} })}
	if kind != noopDefaults {
		opts = append(opts, gomilter.WithProtocols(protocol&^gomilter.OptHeaderLeadingSpace))
	}
	if kind == noopEditing {
		opts = append(opts, gomilter.WithMilter(func() gomilter.Milter { return editingNoop{} }), gomilter.WithActions(actions))
	}
	if kind == noopSenderkitTransport || kind == noopEditing {
		ln = bufferedListener{ln}
	}
	srv := gomilter.NewServer(opts...)
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return addr
}

// BenchmarkSendRow is the cost of recording one send durably
// (synchronous=full): one transaction per message, one after another;
// 20 messages ending at once, each with its own transaction (SQLite
// serialises them); and the same through the milter's group commit,
// which shares a transaction (and its fsync) between the messages that
// wait for it.
func BenchmarkSendRow(b *testing.B) {
	open := func(b *testing.B) *sqlitestore.DB {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "s.db"), sqlitestore.Options{Synchronous: "full"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	send := func() store.Send {
		id := sendID()
		return store.Send{ID: id, Scope: "acme", Stream: "news", Recipient: "r@dest.example", QueueID: "4ABCDEF", At: time.Now(),
			MessageKey: strconv.FormatUint(id, 36)}
	}
	b.Run("serial", func(b *testing.B) {
		st := open(b)
		for b.Loop() {
			if _, err := st.AddSends(context.Background(), []store.Send{send()}, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("20-at-once-own-transaction", func(b *testing.B) {
		st := open(b)
		b.SetParallelism(10) // 10 x GOMAXPROCS goroutines
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.AddSends(context.Background(), []store.Send{send()}, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("20-at-once-group-commit", func(b *testing.B) {
		st := open(b)
		l := newSendLog(st)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go l.run(ctx)
		b.SetParallelism(10)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.add(context.Background(), send(), time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
		if c := l.commits.Load(); c > 0 {
			b.ReportMetric(float64(l.rows.Load())/float64(c), "rows/commit")
		}
	})
}
