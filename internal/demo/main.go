// Command demo is `make demo`: it starts a private Postfix on loopback
// with senderkit beside it, sends mail through it and shows what
// senderkit did, using the real senderkit binary as a user would. It
// stops and removes everything it started.
//
// It grows with senderkit: each part, once built, joins the story.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

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
	err = p.Run(func() { story(p, abs) })
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n%s", err, logw.String())
		os.Exit(1)
	}
	fmt.Printf("\nDone in %v; everything the demo started is stopped and removed.\n", time.Since(start).Round(100*time.Millisecond))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

// step prints a heading.
func step(n int, format string, args ...any) {
	fmt.Printf("\n== %d. %s\n", n, fmt.Sprintf(format, args...))
}

// sk runs the senderkit binary, printing the command and its output.
func sk(p *postfixlab.Program, bin, stateDir string, args ...string) string {
	shown := []string{"senderkit"}
	for _, a := range args {
		if strings.ContainsAny(a, " *'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		shown = append(shown, a)
	}
	fmt.Printf("$ %s\n", strings.Join(shown, " "))
	cmd := exec.Command(bin, append(args, "-state-dir", stateDir)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		p.Fatalf("senderkit %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	fmt.Print(indent(out.String()))
	return out.String()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

func freePort(p *postfixlab.Program) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve starts `senderkit serve` and stops it when the demo ends.
func serve(p *postfixlab.Program, bin, dir string) (cfg string, logf *bytes.Buffer) {
	state := filepath.Join(dir, "state")
	cfg = filepath.Join(dir, "senderkit.toml")
	text := fmt.Sprintf(`state_dir = %q
[milter]
listen = "inet:%s"
[policy]
listen = ""
[http]
listen = %q
base_url = "http://%s/u/"
`, state, freePort(p), freePort(p), "127.0.0.1:8025")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	logf = &bytes.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		p.Fatalf("senderkit serve: %v", err)
	}
	p.Cleanup(func() { cancel(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logf.String(), "senderkit serve started") {
		if time.Now().After(deadline) {
			p.Fatalf("senderkit serve did not start:\n%s", logf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cfg, logf
}

func story(p *postfixlab.Program, bin string) {
	dir, err := os.MkdirTemp("", "senderkit-demo-")
	if err != nil {
		p.Fatalf("%v", err)
	}
	os.Chmod(dir, 0o755)
	p.Cleanup(func() { os.RemoveAll(dir) })
	state := filepath.Join(dir, "state")

	step(1, "senderkit serve, with the built-in defaults and a state directory of its own")
	cfg, _ := serve(p, bin, dir)
	fmt.Printf("  config %s, state %s\n", cfg, state)
	sk(p, bin, state, "check", "-c", cfg)

	step(2, "A private Postfix on loopback, relaying everything to a sink that plays the Internet")
	lab := postfixlab.Start(p, postfixlab.Options{})
	fmt.Printf("  Postfix smtpd on %s, sink on %s\n", lab.SMTPAddr, lab.Sink.Addr)

	step(3, "An application sends a newsletter through Postfix")
	msg := "From: News <news@example.test>\r\nTo: undisclosed-recipients:;\r\nSubject: November news\r\n\r\nHello from the demo.\r\n"
	rcpts := []string{"alice@dest.example.test", "bob@dest.example.test"}
	if err := lab.Send("news@example.test", rcpts, []byte(msg)); err != nil {
		p.Fatalf("send: %v", err)
	}
	msgs := lab.Sink.Wait(p, 1, 30*time.Second)
	fmt.Printf("  the sink received it: MAIL FROM:<%s> RCPT TO:%v\n", msgs[0].From, msgs[0].To)
	fmt.Print(indent(string(msgs[0].Header())))

	step(4, "An administrator suppresses a recipient by hand, and for a whole domain")
	sk(p, bin, state, "suppress", "add", "bob@dest.example.test", "-scope", "default", "-note", "asked us by phone", "-c", cfg)
	sk(p, bin, state, "suppress", "add", "*@spamtrap.example.test", "-scope", "*", "-c", cfg)
	sk(p, bin, state, "suppress", "list", "-c", cfg)
	sk(p, bin, state, "suppress", "show", "bob@dest.example.test", "-c", cfg)
	sk(p, bin, state, "suppress", "export", "-c", cfg)
}
