package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
)

// BenchmarkBouncepipeRun is what one returned message costs when
// Postfix's pipe(8) hands it over: a process of its own that reads the
// configuration and the key ring, opens the store, parses the message,
// verifies its token and records a hard bounce (a DSN from testdata,
// each run for a copy and recipient of its own). The store stays open
// in this process meanwhile, as `senderkit serve` keeps it. Baselines
// measured in the same run: the same binary doing nothing (`senderkit
// version`: what starting the process costs), and Sisimai (Debian
// libsisimai-perl) reading the same messages, a process each, when it
// is installed. It reports milliseconds of wall clock and of CPU per
// message.
//
//	go test -run '^$' -bench BouncepipeRun -benchtime 1x ./cmd/senderkit
func BenchmarkBouncepipeRun(b *testing.B) {
	const n = 300
	bin := buildBinary(b)
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "senderkit.toml")
	text := fmt.Sprintf("state_dir = %q\n[bounce]\ndomain = \"bounces.example.test\"\n[[scope]]\nname = \"acme\"\nsender_domains = [\"acme.example\"]\n", dir)
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := conf.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := token.EnsureKey(cfg.KeyDir()); err != nil {
		b.Fatal(err)
	}
	keys, err := token.LoadKeyring(cfg.KeyDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := openStore(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dsn, err := os.ReadFile("../../bouncepipe/testdata/01-postfix-dsn-failed.eml")
	if err != nil {
		b.Fatal(err)
	}
	sc, _ := st.ID(ctx, store.ScopeName, "acme")
	stream, _ := st.ID(ctx, store.StreamName, "bulk")
	msgs := make([]string, n)
	verps := make([]string, n)
	for i := range n {
		rcpt := fmt.Sprintf("rcpt%d@dest.example.test", i)
		id := uint64(1000 + i)
		if err := st.AddSend(ctx, store.Send{ID: id, Scope: "acme", Stream: "bulk", Recipient: rcpt, At: time.Now()}); err != nil {
			b.Fatal(err)
		}
		tok, err := keys.Encode(token.Token{Kind: token.Copy, Time: time.Now(), SendID: id, Scope: sc, Stream: stream})
		if err != nil {
			b.Fatal(err)
		}
		verps[i] = token.Address(cfg.Bounce.VERPPrefix, tok, cfg.Bounce.Domain)
		msgs[i] = filepath.Join(dir, fmt.Sprintf("dsn%d.eml", i))
		if err := os.WriteFile(msgs[i], bytes.ReplaceAll(dsn, []byte("rcpt@dest.example.test"), []byte(rcpt)), 0o644); err != nil {
			b.Fatal(err)
		}
	}

	// run starts one process per message and returns the milliseconds
	// of wall clock and of CPU (its own) per process.
	run := func(name string, cmdFor func(i int) *exec.Cmd) (wall, cpu float64) {
		var used time.Duration
		start := time.Now()
		for i := range n {
			cmd := cmdFor(i)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s, message %d: %v\n%s", name, i, err, stderr.Bytes())
			}
			used += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
		return ms(time.Since(start)), ms(used)
	}
	pipeWall, pipeCPU := run("senderkit bouncepipe", func(i int) *exec.Cmd {
		cmd := exec.Command(bin, "bouncepipe", "-c", cfgPath, "", verps[i])
		f, err := os.Open(msgs[i])
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		cmd.Stdin = f
		return cmd
	})
	// Every run must have done the whole work: a suppression each.
	for i := range n {
		if _, ok, err := st.Lookup(ctx, store.Query{Scope: "acme", Address: fmt.Sprintf("rcpt%d@dest.example.test", i), At: time.Now()}); err != nil || !ok {
			b.Fatalf("message %d: the recipient is not suppressed (%v)", i, err)
		}
	}
	startWall, startCPU := run("senderkit version", func(int) *exec.Cmd { return exec.Command(bin, "version") })
	fmt.Printf("%-44s %9s %9s\n", "one process per returned message", "wall ms", "CPU ms")
	fmt.Printf("%-44s %9.2f %9.2f\n", "senderkit bouncepipe (parse, verify, record)", pipeWall, pipeCPU)
	fmt.Printf("%-44s %9.2f %9.2f\n", "senderkit version (starting the process)", startWall, startCPU)
	b.ReportMetric(pipeWall, "bouncepipe-ms")
	b.ReportMetric(startWall, "start-ms")
	if exec.Command("perl", "-MSisimai", "-e", "1").Run() != nil {
		fmt.Println("Sisimai is not installed (apt-get install libsisimai-perl): no comparison")
		return
	}
	sisWall, sisCPU := run("sisimai", func(i int) *exec.Cmd {
		return exec.Command("perl", "-MSisimai", "-e", "Sisimai->make($ARGV[0], delivered => 1, vacation => 1) or exit 1", msgs[i])
	})
	fmt.Printf("%-44s %9.2f %9.2f\n", "Sisimai->make (perl, parse only)", sisWall, sisCPU)
	fmt.Printf("Sisimai / senderkit per returned message = %.1fx (wall clock); starting the process is %.0f%% of senderkit's\n",
		sisWall/pipeWall, 100*startWall/pipeWall)
	b.ReportMetric(sisWall, "sisimai-ms")
}
