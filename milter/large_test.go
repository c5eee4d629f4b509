package milter

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// bigBody writes a message of about size bytes without holding it.
type bigBody struct {
	head []byte
	line int
	left int
	buf  []byte
}

func newBigBody(head []byte, size int) *bigBody {
	return &bigBody{head: head, left: size - len(head)}
}

func (b *bigBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	if len(b.buf) == 0 {
		if b.left <= 0 {
			return 0, io.EOF
		}
		b.buf = fmt.Appendf(b.buf[:0], "%08d 0123456789012345678901234567890123456789012345678901234567890123456789\r\n", b.line)
		b.line++
		b.left -= len(b.buf)
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// A 50 MB bulk message for three recipients is never held in memory:
// the milter signs it as it streams and keeps it for the copies in a
// temporary file, so the live heap grows by a few megabytes, not by 50.
// All three copies then verify.
func TestLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 150 MB through Postfix and the milter; make test runs it without -race")
	}
	// Deliveries wait (the relay refuses connections) until the memory
	// is measured: the sink, in this process too, holds what it receives.
	e := newEnv(t, envOptions{lab: postfixlab.Options{Main: map[string]string{
		"message_size_limit": "60000000",
		"relayhost":          "[127.0.0.1]:9",
	}}})
	const size = 50 << 20
	to := rcpts(3)

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
	start := time.Now()
	err := send(e, "news@example.com", to, newBigBody(msg("news@example.com", "list@example.com", "fifty megabytes"), size))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(base)
	t.Logf("live heap grew by at most %.1f MB while a %d MB message for %d recipients was accepted, in %v",
		float64(grew)/1e6, size>>20, len(to), time.Since(start).Round(time.Millisecond))
	if grew > 16<<20 {
		t.Errorf("the live heap grew by %d MB for a %d MB message: the milter holds it in memory", grew>>20, size>>20)
	}

	_, port, _ := net.SplitHostPort(e.lab.Sink.Addr)
	e.lab.Postconf("relayhost=[127.0.0.1]:" + port)
	e.lab.Reload()
	if err := e.lab.Flush(); err != nil {
		t.Fatal(err)
	}
	e.lab.Sink.Wait(t, 3, 2*wait)
	e.checkCopies(e.lab.Sink.Messages(), to)
}

// send submits a message read from r over SMTP.
func send(e *env, from string, to []string, r io.Reader) error {
	c, err := e.lab.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, rc := range to {
		if err := c.Rcpt(rc, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Close()
}
