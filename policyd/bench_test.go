package policyd

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// Speed, reported as figures (never pass/fail), each against a baseline
// measured in the same run: a do-nothing Go policy server that answers
// DUNNO to everything.
//
//	go test -run '^$' -bench 'PolicyServer|PolicyPostfix' -benchtime 1x -timeout 60m ./policyd
//
// SENDERKIT_BENCH_DB names a store to keep between runs (filling 10
// million suppressions takes about two minutes); SENDERKIT_BENCH_CONNS
// the client connections (default 16, as many smtpd processes);
// SENDERKIT_BENCH_SECONDS the length of each measurement (default 3);
// SENDERKIT_BENCH_ROUNDS how many (default 5); SENDERKIT_BENCH_MESSAGES
// the messages of each end-to-end run (default 3000).

const benchRows = 10_000_000

func benchAddr(i int) string { return fmt.Sprintf("u%d@d%d.example", i, i%1000) }

var benchStore struct {
	once sync.Once
	st   *sqlitestore.DB
	err  error
}

// openBenchStore opens (and fills, the first time) a store holding
// benchRows suppressions in scope "bench".
func openBenchStore(b *testing.B) *sqlitestore.DB {
	b.Helper()
	benchStore.once.Do(func() {
		path := os.Getenv("SENDERKIT_BENCH_DB")
		if path == "" {
			dir, err := os.MkdirTemp("", "senderkit-bench-")
			if err != nil {
				benchStore.err = err
				return
			}
			path = filepath.Join(dir, "bench.db")
		}
		ctx := context.Background()
		st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Synchronous: "normal"})
		if err != nil {
			benchStore.err = err
			return
		}
		n := 0
		st.Suppressions(ctx, store.Filter{Scope: "bench", Address: benchAddr(benchRows - 1), At: time.Now()}, func(store.Suppression) error { n++; return nil })
		if n == 0 {
			start := time.Now()
			const batch = 250_000
			for i := 0; i < benchRows; i += batch {
				es := make([]store.Suppression, 0, batch)
				for j := i; j < i+batch; j++ {
					es = append(es, store.Suppression{Scope: "bench", Address: benchAddr(j), Reason: store.HardBounce, Created: time.Unix(1790000000, 0)})
				}
				if _, err := st.Import(ctx, es, time.Unix(1790000000, 0)); err != nil {
					benchStore.err = err
					return
				}
			}
			b.Logf("filled %d suppressions in %v (%s)", benchRows, time.Since(start).Round(time.Second), path)
		}
		benchStore.st = st
	})
	if benchStore.err != nil {
		b.Fatal(benchStore.err)
	}
	return benchStore.st
}

// benchService starts senderkit's policy server on the bench store, with
// its filter built, and returns its address.
func benchService(b *testing.B) string {
	b.Helper()
	st := openBenchStore(b)
	cfg, err := conf.Parse([]byte("[[scope]]\nname = \"bench\"\nsender_domains = [\"bench.example\"]\n"), "bench.toml")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	filter := &Filter{}
	svc := &Service{Store: st, Config: func() *conf.Config { return cfg }, Log: slog.New(slog.DiscardHandler), Listener: ln, Filter: filter}
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	// Wait for the filter: until it is built every lookup goes to SQLite.
	start := time.Now()
	for !filter.Ready() {
		time.Sleep(50 * time.Millisecond)
	}
	b.Logf("suppression filter of %d entries built in %v", benchRows, time.Since(start).Round(time.Millisecond))
	return ln.Addr().String()
}

// nullServer is the baseline: a Go policy server that reads each request
// and answers DUNNO, with nothing else.
func nullServer(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 1 {
						w.WriteString("action=DUNNO\n\n")
						if w.Flush() != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

// load sends requests on conns persistent connections for d and measures
// each answer's latency. hits is the share of recipients on the list.
func load(b *testing.B, addr string, conns int, d time.Duration, hits float64) loadResult {
	b.Helper()
	reqFor := func(rcpt string) []byte {
		r := strings.Replace(postfixRequest, "recipient=Bob@Dest.Example", "recipient="+rcpt, 1)
		return []byte(strings.Replace(r, "sender=news@acme.example", "sender=news@bench.example", 1))
	}
	var wg sync.WaitGroup
	lats := make([][]time.Duration, conns)
	stop := time.Now().Add(d)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			// A pool of requests: listed recipients and others.
			var pool [][]byte
			for j := range 1000 {
				n := rng.IntN(benchRows)
				if float64(j) >= hits*1000 {
					n += benchRows // not listed, on a known domain
				}
				pool = append(pool, reqFor(benchAddr(n)))
			}
			lat := make([]time.Duration, 0, 1<<20)
			for j := 0; ; j++ {
				t := time.Now()
				if !t.Before(stop) {
					break
				}
				if _, err := c.Write(pool[j%len(pool)]); err != nil {
					b.Error(err)
					return
				}
				if _, err := r.ReadSlice('\n'); err != nil {
					b.Error(err)
					return
				}
				if _, err := r.ReadSlice('\n'); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t))
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatal("no answers")
	}
	return loadResult{rps: float64(len(all)) / d.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}
}

// BenchmarkPolicyServer: raw requests a second and latency, senderkit
// against the do-nothing server, on the same machine in the same run,
// with 10 million suppressions in the store. The two are measured in
// alternation, rounds times; each figure is the median over the rounds,
// and the ratio is the median of each round's ratio (the two runs of a
// round are seconds apart, so other load on the machine weighs on both).
func BenchmarkPolicyServer(b *testing.B) {
	conns := envInt("SENDERKIT_BENCH_CONNS", 16)
	d := time.Duration(envInt("SENDERKIT_BENCH_SECONDS", 3)) * time.Second
	rounds := envInt("SENDERKIT_BENCH_ROUNDS", 5)
	sk := benchService(b)
	null := nullServer(b)
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	b.ResetTimer()
	for b.Loop() {
		for _, hits := range []float64{0.02, 0.5} {
			var base, ours, ratio, bp99, p50, p99 []float64
			for range rounds {
				runtime.GC()
				n := load(b, null, conns, d, hits)
				runtime.GC()
				r := load(b, sk, conns, d, hits)
				base, ours, ratio = append(base, n.rps), append(ours, r.rps), append(ratio, r.rps/n.rps)
				bp99, p50, p99 = append(bp99, float64(n.p99.Microseconds())), append(p50, float64(r.p50.Microseconds())), append(p99, float64(r.p99.Microseconds()))
			}
			tag := fmt.Sprintf("hits%d%%-", int(hits*100))
			b.ReportMetric(median(base), tag+"null-req/s")
			b.ReportMetric(median(bp99), tag+"null-p99-µs")
			b.ReportMetric(median(ours), tag+"req/s")
			b.ReportMetric(median(p50), tag+"p50-µs")
			b.ReportMetric(median(p99), tag+"p99-µs")
			b.ReportMetric(median(ratio), tag+"ratio")
			b.Logf("%s %d conns, %v rounds of %v: null %v req/s, senderkit %v req/s, ratios %.3v", tag, conns, rounds, d, base, ours, ratio)
		}
	}
}

// BenchmarkPolicyPostfix: end-to-end throughput of a private Postfix
// (smtp-source -> smtpd with check_policy_service -> the lab's sink),
// with senderkit's policy server as a ratio to the do-nothing one, the
// two measured in alternation, three times each (the best of each).
func BenchmarkPolicyPostfix(b *testing.B) {
	n := envInt("SENDERKIT_BENCH_MESSAGES", 3000)
	sk := benchService(b)
	null := nullServer(b)
	postfixlab.EnsurePackages(b, map[string]string{"smtp-source": "postfix"})
	msgFile := filepath.Join(b.TempDir(), "msg.eml")
	os.WriteFile(msgFile, []byte("From: news@bench.example\r\nTo: you@dest.example\r\nSubject: bench\r\n\r\n"+strings.Repeat("Some text of a newsletter.\r\n", 40)), 0o644)
	run := func(policy string) float64 {
		lab := postfixlab.Start(b, postfixlab.Options{PolicyService: "inet:" + policy,
			Main: map[string]string{"smtpd_client_connection_count_limit": "0", "default_process_limit": "200"}})
		defer lab.Stop()
		start := time.Now()
		cmd := exec.Command("smtp-source", "-s", "20", "-m", strconv.Itoa(n), "-F", msgFile, "-f", "news@bench.example",
			"-t", "someone@dest.example", lab.SMTPAddr)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("smtp-source: %v: %s", err, out)
		}
		lab.Sink.Wait(b, n, 10*time.Minute)
		return float64(n) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	for b.Loop() {
		var base, ours float64
		for range 3 {
			base = max(base, run(null))
			ours = max(ours, run(sk))
		}
		b.ReportMetric(base, "null-msg/s")
		b.ReportMetric(ours, "senderkit-msg/s")
		b.ReportMetric(ours/base, "ratio")
	}
}
