package policyd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// startServer serves f's policy on a loopback port until the test ends.
func startServer(t *testing.T, f *fixture, lim ServerLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Decider: f.policy, Limits: func() ServerLimits { return lim }, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

var abuseLimits = ServerLimits{
	Limits:         Limits{MaxLine: 8192, MaxAttributes: 100},
	IdleTimeout:    time.Minute,
	RequestTimeout: 2 * time.Second,
	MaxConnections: 200,
}

// client is a well-behaved smtpd: one persistent connection.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// ask sends one request and returns the action.
func (c *client) ask(sender, recipient string) (string, error) {
	req := strings.Replace(postfixRequest, "recipient=Bob@Dest.Example", "recipient="+recipient, 1)
	req = strings.Replace(req, "sender=news@acme.example", "sender="+sender, 1)
	if _, err := io.WriteString(c.c, req); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if blank, err := c.r.ReadString('\n'); err != nil || blank != "\n" {
		return "", fmt.Errorf("no empty line after %q: %q %v", line, blank, err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(line, "action="), "\n"), nil
}

// closedWithoutAnswer reads what the server sends on an abusive
// connection: it must close it, answering nothing.
func closedWithoutAnswer(t *testing.T, name string, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		t.Errorf("%s: the server answered %q", name, b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s: the server did not close the connection", name)
	}
}

// TestAbusiveClients: a client sending a 1 MB line, one sending 10,000
// attributes and one sending a byte a second are disconnected, while
// other clients on persistent connections keep getting right answers.
func TestAbusiveClients(t *testing.T) {
	f := newFixture(t, "")
	f.suppress(t, "acme", "", "bob@dest.example", store.Unsubscribe, 0)
	addr := startServer(t, f, abuseLimits)

	var abuse sync.WaitGroup
	abuse.Go(func() {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		go io.WriteString(c, "request=smtpd_access_policy\nrecipient="+strings.Repeat("a", 1<<20)+"\n\n")
		closedWithoutAnswer(t, "1 MB line", c)
	})
	abuse.Go(func() {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		go io.WriteString(c, strings.Repeat("x=y\n", 10_000)+"\n")
		closedWithoutAnswer(t, "10,000 attributes", c)
	})
	abuse.Go(func() {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		go func() {
			for i := 0; i < len(postfixRequest); i++ {
				if _, err := c.Write([]byte{postfixRequest[i]}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		closedWithoutAnswer(t, "one byte a second", c)
	})
	stop := make(chan struct{})
	go func() { abuse.Wait(); close(stop) }()

	// Twenty smtpds ask all along, until the last abuser is gone.
	var good sync.WaitGroup
	counts := make([]int, 20)
	for i := range counts {
		good.Go(func() {
			c := dial(t, addr)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				rcpt, want := "carol@dest.example", "DUNNO"
				if n%2 == 0 {
					rcpt, want = "bob@dest.example", "550 5.7.1 recipient unsubscribed on 2026-11-02"
				}
				got, err := c.ask("news@acme.example", rcpt)
				if err != nil || got != want {
					t.Errorf("client %d request %d (%s): %q, %v; want %q", i, n, rcpt, got, err, want)
					return
				}
				counts[i]++
			}
		})
	}
	good.Wait()
	for i, n := range counts {
		if n == 0 {
			t.Errorf("client %d got no answer while the abusers were connected", i)
		}
	}
	t.Logf("answers to the well-behaved clients during the abuse: %v", counts)
}

// TestIdleAndConnectionLimit: an idle connection is closed after the idle
// timeout; connections beyond the limit wait for a free slot.
func TestIdleAndConnectionLimit(t *testing.T) {
	f := newFixture(t, "")
	lim := abuseLimits
	lim.IdleTimeout, lim.MaxConnections = 500*time.Millisecond, 2
	addr := startServer(t, f, lim)
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []*client{a, b} {
		if got, err := c.ask("news@acme.example", "x@dest.example"); err != nil || got != "DUNNO" {
			t.Fatalf("%q %v", got, err)
		}
	}
	// A third connection is accepted by the kernel but served only once
	// an idle one was closed.
	c := dial(t, addr)
	if got, err := c.ask("news@acme.example", "x@dest.example"); err != nil || got != "DUNNO" {
		t.Fatalf("third connection: %q %v", got, err)
	}
	closedWithoutAnswer(t, "idle", a.c)
}

// TestMaxLineRaisedByReload: a reload that raises max_line_length
// applies to connections already open, and a request the client sent
// before the answer to the previous one (held in the old buffer) is
// still read whole.
func TestMaxLineRaisedByReload(t *testing.T) {
	f := newFixture(t, "")
	var mu sync.Mutex
	lim := abuseLimits
	lim.MaxLine = 512
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Decider: f.policy, Limits: func() ServerLimits { mu.Lock(); defer mu.Unlock(); return lim }, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	c := dial(t, ln.Addr().String())
	if got, err := c.ask("news@acme.example", "x@dest.example"); err != nil || got != "DUNNO" {
		t.Fatalf("first request: %q %v", got, err)
	}
	mu.Lock()
	lim.MaxLine = 4096
	mu.Unlock()
	// Two requests at once; the first's answer is read only after both
	// are sent, so the second may wait in the server's buffer.
	long := strings.Repeat("a", 1000) + "@dest.example"
	req := strings.Replace(postfixRequest, "recipient=Bob@Dest.Example", "recipient="+long, 1)
	if _, err := io.WriteString(c.c, postfixRequest+req); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"pipelined short request", "1 KB recipient after the raise"} {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := c.r.ReadString('\n')
		if err == nil {
			_, err = c.r.ReadString('\n')
		}
		if err != nil || !strings.HasPrefix(line, "action=") {
			t.Fatalf("request %d (%s): %q %v", i+1, name, line, err)
		}
	}
}
