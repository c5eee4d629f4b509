package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
	"github.com/senderkit/senderkit/milter/dkim"
)

// State is what the milter reads for each message. A reload replaces it
// whole; a message keeps the State it started with.
type State struct {
	Config *conf.Config
	Tokens *token.Keyring
	DKIM   *dkim.Set // nil: no signing tables
	// Paused tells whether a scope's bulk mail is on hold (scope
	// vetting); nil: no scope is.
	Paused func(scope string) (store.Pause, bool)
}

// Options configure a Server.
type Options struct {
	// State returns the State in force.
	State func() State
	// Store records every send.
	Store store.Store
	// Log gets one line per message (with its queue_id) and the
	// milter's problems.
	Log *slog.Logger
}

// Server is the outbound milter.
type Server struct {
	state   func() State
	store   store.Store
	log     *slog.Logger
	sends   *sendLog
	tickets tickets
	srv     *gomilter.Server
	stats   Stats
}

// Stats counts what the milter did, for metrics.
type Stats struct {
	Messages   atomic.Int64 // messages accepted, changed or not (each copy of a bulk message is one)
	Signed     atomic.Int64 // messages that left with at least one DKIM signature
	Signatures atomic.Int64 // DKIM signatures added
	Tokens     atomic.Int64 // tokens issued: one per send row (per copy, or per message)
	Copies     atomic.Int64 // copies queued for the other recipients of bulk messages
	Discarded  atomic.Int64 // retried submissions discarded: their copies were queued before
	TempFailed atomic.Int64 // messages answered 4xx (the store, a key, a bad table)
	Rejected   atomic.Int64 // messages answered 5xx (no From, a header too large)
	Paused     atomic.Int64 // messages of a paused scope deferred (of TempFailed)
	Suppressed atomic.Int64 // recipients removed because the suppression list covers them
}

// Stats returns the counters.
func (s *Server) Stats() *Stats { return &s.stats }

// actions are the modifications the milter makes: headers, the
// envelope sender (VERP, SMFIF_CHGFROM, protocol v6), the recipients the
// original no longer has (those its copies took, and suppressed ones),
// and the hold queue (SMFIR_QUARANTINE) for a message whose recipients
// are all suppressed in a scope with suppressed_action = "hold".
const actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeFrom | gomilter.OptRemoveRcpt | gomilter.OptQuarantine

// protocol asks Postfix not to wait for a reply to any event but the
// end of the message (the SMFIP_NR_* flags): the milter decides only
// there, and every reply saved is a round trip saved on every message,
// which is what makes a milter slow (see bench_test.go). It also skips
// the events the milter has no use for (DATA, unknown commands), and
// asks for header values with their leading space (SMFIP_HDR_LEADSPC),
// so that a header passes through byte for byte and is signed as sent.
const protocol = gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply |
	gomilter.OptNoRcptReply | gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
	gomilter.OptNoData | gomilter.OptNoUnknown | gomilter.OptHeaderLeadingSpace

// New makes a Server.
func New(o Options) *Server {
	s := &Server{state: o.State, store: o.Store, log: o.Log, sends: newSendLog(o.Store)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.srv = gomilter.NewServer(
		gomilter.WithMilter(func() gomilter.Milter { return &session{s: s} }),
		gomilter.WithActions(actions),
		gomilter.WithProtocols(protocol),
		// The macros the milter reads; asking overrides Postfix's
		// milter_*_macros lists.
		gomilter.WithMacroRequest(gomilter.StageConnect, []string{gomilter.MacroDaemonName, gomilter.MacroClientName}),
		gomilter.WithMacroRequest(gomilter.StageMail, []string{gomilter.MacroAuthAuthen}),
		gomilter.WithMacroRequest(gomilter.StageEOH, []string{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []string{gomilter.MacroQueueId}),
	)
	return s
}

// Serve answers Postfix on ln until ctx ends, then waits (up to a
// minute) for the messages in progress.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// The send log outlives ctx: the messages in progress at shutdown
	// still record their sends.
	sendCtx, stopSends := context.WithCancel(context.Background())
	defer stopSends()
	go s.sends.run(sendCtx)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(bufferedListener{ln}) }()
	select {
	case err := <-errc:
		if errors.Is(err, gomilter.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("milter: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("milter connections still open at shutdown; closed", "err", err)
	}
	return nil
}

// bufferedListener gives each connection a read buffer and joins each
// packet's writes. go-milter reads a packet's length and then its data
// with two read(2) calls, and Postfix, which waits for no reply before
// the end of the message, sends its packets back to back: one buffered
// read takes many. go-milter also writes a packet's length and code,
// then its data: they leave in one writev(2).
type bufferedListener struct{ net.Listener }

func (l bufferedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(quickAck(c), 8<<10)}, nil
}

type bufferedConn struct {
	net.Conn
	r    *bufio.Reader
	head []byte // a packet's length and code, held until its data comes
	buf  [5]byte
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	if c.head != nil {
		bufs := net.Buffers{c.head, p}
		c.head = nil
		n, err := bufs.WriteTo(c.Conn)
		return max(0, int(n)-5), err
	}
	// A packet with data: its 4-byte length (data + the code byte) is
	// more than 1.
	if len(p) == 5 && binary.BigEndian.Uint32(p) > 1 {
		c.head = append(c.buf[:0], p...)
		return 5, nil
	}
	return c.Conn.Write(p)
}
