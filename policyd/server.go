package policyd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Decider answers one request with a Postfix access(5) action: "DUNNO",
// "550 5.7.1 text", "DEFER_IF_PERMIT 4.7.1 text", ...
type Decider interface {
	Decide(ctx context.Context, req *Request) string
}

// ServerLimits bound each connection; the server reads them for every
// request, so a configuration reload applies to open connections too.
type ServerLimits struct {
	Limits
	// IdleTimeout closes a connection with no request for this long.
	IdleTimeout time.Duration
	// RequestTimeout is how long a request may take to arrive once its
	// first byte did: a client sending one byte a second is cut off.
	RequestTimeout time.Duration
	// MaxConnections caps concurrent connections.
	MaxConnections int
}

// Server serves the policy protocol.
type Server struct {
	Decider Decider
	Limits  func() ServerLimits
	Log     *slog.Logger
}

// Serve accepts connections on ln until ctx ends, then closes ln and
// every connection and waits for their goroutines.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	// The semaphore is sized once: a reload changes it at the next start.
	sem := make(chan struct{}, s.Limits().MaxConnections)
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.Log.Error("accepting a policy connection failed", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		mu.Lock()
		conns[c] = true
		if ctx.Err() != nil {
			// Accepted as ctx ended, perhaps after the AfterFunc closed
			// the others: closed here, or it would hold Serve for its
			// idle timeout.
			c.Close()
		}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				<-sem
			}()
			s.serveConn(ctx, c)
		})
	}
}

// serveConn answers requests on one connection until the client leaves,
// breaks a limit, or ctx ends.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	lim := s.Limits()
	r := bufio.NewReaderSize(c, lim.MaxLine+1)
	w := bufio.NewWriterSize(c, 512)
	var req Request
	for {
		lim = s.Limits()
		if lim.MaxLine+1 > r.Size() {
			// max_line_length was raised by a reload: a larger buffer,
			// which starts with what the old one holds.
			held, _ := r.Peek(r.Buffered())
			r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(held)), c), lim.MaxLine+1)
		}
		c.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		if _, err := r.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.Log.Debug("policy client gone", "remote", c.RemoteAddr(), "err", err)
			}
			return
		}
		// One deadline for reading the request and writing the answer.
		c.SetDeadline(time.Now().Add(lim.RequestTimeout))
		if err := ReadRequest(r, &req, lim.Limits); err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("policy client broke the protocol or a limit; disconnecting it", "remote", c.RemoteAddr(), "err", err)
			}
			return
		}
		action := s.Decider.Decide(ctx, &req)
		w.WriteString("action=")
		w.WriteString(action)
		w.WriteString("\n\n")
		if err := w.Flush(); err != nil {
			return
		}
	}
}
