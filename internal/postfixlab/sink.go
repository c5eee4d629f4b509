package postfixlab

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// SinkHostname is the name the sink announces in its greeting. It must
// differ from the lab's myhostname, or Postfix reports a mail loop.
const SinkHostname = "sink.example.test"

// RcptHandler decides on one recipient at RCPT time: nil accepts it, an
// error is sent to the client as is (e.g. 451 4.7.1 or 550 5.1.1).
// from is the envelope sender ("" for the null sender).
type RcptHandler func(from, rcpt string) *smtp.SMTPError

// DataHandler decides on a whole message after DATA: nil accepts it (and
// the sink records it), an error rejects it (and the sink does not).
type DataHandler func(m Message) *smtp.SMTPError

// Message is one message received by a Sink.
type Message struct {
	From string    // envelope sender, "" for the null sender
	To   []string  // accepted recipients, in RCPT order
	Data []byte    // DATA exactly as received, dot-unstuffed, CRLF line ends kept
	Time time.Time // when the final dot arrived

	Helo     string        // EHLO/HELO name of the client
	BodyType smtp.BodyType // BODY= parameter of MAIL FROM, "" if absent
	UTF8     bool          // SMTPUTF8 parameter of MAIL FROM
	Addr     net.Addr      // the client's address
}

// Header returns the header section of m.Data (up to and excluding the
// empty line), or all of it if there is no empty line.
func (m Message) Header() []byte {
	if i := bytes.Index(m.Data, []byte("\r\n\r\n")); i >= 0 {
		return m.Data[:i+2]
	}
	return m.Data
}

// Body returns the body of m.Data (after the first empty line), or nil.
func (m Message) Body() []byte {
	if i := bytes.Index(m.Data, []byte("\r\n\r\n")); i >= 0 {
		return m.Data[i+4:]
	}
	return nil
}

// Sink is a scriptable SMTP server on 127.0.0.1 that records every
// message it accepts. It advertises 8BITMIME and SMTPUTF8 and is safe
// for concurrent use.
type Sink struct {
	// Addr is the "127.0.0.1:port" the sink listens on.
	Addr string

	srv  *smtp.Server
	ln   net.Listener
	done chan struct{} // closed when Serve returned

	mu       sync.Mutex
	rcpt     RcptHandler
	data     DataHandler
	msgs     []Message
	changed  chan struct{} // closed and replaced when msgs grows
	logger   *sinkLogger
	stopOnce sync.Once
}

// NewSink starts a Sink on a free port of 127.0.0.1 and stops it when the
// test ends.
func NewSink(t TB) *Sink {
	t.Helper()
	s, err := startSink(t)
	if err != nil {
		t.Fatalf("postfixlab: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartSink starts a Sink on a free port of 127.0.0.1. The caller must
// Close it.
func StartSink() (*Sink, error) {
	return startSink(nil)
}

// startSink starts a Sink whose go-smtp error log goes to t, if not nil.
func startSink(t TB) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink: listening on 127.0.0.1:0: %v", err)
	}
	s := &Sink{
		Addr:    ln.Addr().String(),
		ln:      ln,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		logger:  &sinkLogger{t: t},
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, c: c}, nil
	}))
	srv.Domain = SinkHostname
	srv.EnableSMTPUTF8 = true // 8BITMIME is always on in go-smtp
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 0
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = s.logger
	s.srv = srv
	go func() {
		defer close(s.done)
		srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the sink and drops its connections. It is idempotent.
func (s *Sink) Close() {
	s.stopOnce.Do(func() {
		s.srv.Close()
		<-s.done
		s.logger.stop()
	})
}

// SetRcptHandler replaces the RCPT handler; nil accepts every recipient.
// It takes effect for the next RCPT command, also on open connections.
func (s *Sink) SetRcptHandler(h RcptHandler) {
	s.mu.Lock()
	s.rcpt = h
	s.mu.Unlock()
}

// SetDataHandler replaces the DATA handler; nil accepts every message.
func (s *Sink) SetDataHandler(h DataHandler) {
	s.mu.Lock()
	s.data = h
	s.mu.Unlock()
}

// Messages returns a copy of the messages received so far, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Reset forgets the messages received so far. Handlers are kept.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

// Wait waits until at least n messages have arrived and returns them
// all. It fails the test after timeout, listing what did arrive.
func (s *Sink) Wait(t TB, n int, timeout time.Duration) []Message {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got, changed := len(s.msgs), s.changed
		if got >= n {
			msgs := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return msgs
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("postfixlab: sink %s: got %d messages after %v, want %d:\n%s",
				s.Addr, got, timeout, n, s.summary())
			return nil
		}
	}
}

// summary describes the received messages, one line each.
func (s *Sink) summary() string {
	var b strings.Builder
	for i, m := range s.Messages() {
		fmt.Fprintf(&b, "  %d: from=<%s> to=%v %d bytes\n", i, m.From, m.To, len(m.Data))
	}
	if b.Len() == 0 {
		return "  (none)"
	}
	return b.String()
}

// add records m unless the DATA handler rejects it. The handler runs
// without the lock held, so it may call the Sink's methods.
func (s *Sink) add(m Message) *smtp.SMTPError {
	s.mu.Lock()
	h := s.data
	s.mu.Unlock()
	if h != nil {
		if err := h(m); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (s *Sink) rcptHandler() RcptHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpt
}

// sinkSession is one SMTP transaction of the sink.
type sinkSession struct {
	s    *Sink
	c    *smtp.Conn
	from string
	opts smtp.MailOptions
	to   []string
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.from = from
	if opts != nil {
		ss.opts = *opts
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if h := ss.s.rcptHandler(); h != nil {
		if err := h(ss.from, to); err != nil {
			return err // Not a typed nil: checked above.
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{
		From:     ss.from,
		To:       append([]string(nil), ss.to...),
		Data:     data,
		Time:     time.Now(),
		Helo:     ss.c.Hostname(),
		BodyType: ss.opts.Body,
		UTF8:     ss.opts.UTF8,
		Addr:     ss.c.Conn().RemoteAddr(),
	}
	if err := ss.s.add(m); err != nil {
		return err
	}
	return nil
}

func (ss *sinkSession) Reset() {
	ss.from = ""
	ss.opts = smtp.MailOptions{}
	ss.to = nil
}

func (ss *sinkSession) Logout() error { return nil }

// sinkLogger passes go-smtp's error log to the test log while the test
// runs, and drops it afterwards (logging after a test ends panics).
type sinkLogger struct {
	mu      sync.Mutex
	t       TB
	stopped bool
}

func (l *sinkLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil && !l.stopped {
		l.t.Logf("postfixlab: sink: "+format, v...)
	}
}

func (l *sinkLogger) Println(v ...any) {
	l.Printf("%s", fmt.Sprintln(v...))
}

func (l *sinkLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
