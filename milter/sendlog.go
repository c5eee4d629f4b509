package milter

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// maxBatch bounds how many sends one transaction records.
const maxBatch = 256

// sendLog records sends with group commit. Every message's send row
// must be durable before the milter lets Postfix queue the message, and
// with SQLite's synchronous=full each commit costs an fsync (1-3 ms on
// the disks we measured): one transaction per message would make the
// disk's fsync rate the milter's ceiling. Instead, one goroutine writes:
// it takes every request that arrived while the previous commit ran,
// records them all in one transaction (store.AddSends) and then answers each.
// Nothing is answered before its row is committed, so durability is
// unchanged; only the fsyncs are shared.
type sendLog struct {
	st   store.Store
	reqs chan *sendReq

	commits, rows atomic.Int64 // transactions and rows written
}

type sendReq struct {
	ctx    context.Context
	send   store.Send
	window time.Duration
	done   chan sendResult
}

type sendResult struct {
	added bool // false: the same copy was recorded within the window
	err   error
}

func newSendLog(st store.Store) *sendLog {
	return &sendLog{st: st, reqs: make(chan *sendReq, maxBatch)}
}

// add records s, skipping it when its MessageKey and recipient were
// recorded within window; it returns once the row is committed, or
// once the writer has given up on it.
func (l *sendLog) add(ctx context.Context, s store.Send, window time.Duration) (bool, error) {
	r := &sendReq{ctx: ctx, send: s, window: window, done: make(chan sendResult, 1)}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Always wait for the answer, even past ctx: the writer bounds its
	// transaction by the requests' deadlines, and only its answer says
	// whether the row is in (a row written for a message the milter then
	// tempfailed would make the client's retry look like a duplicate).
	res := <-r.done
	return res.added, res.err
}

// run writes until ctx ends.
func (l *sendLog) run(ctx context.Context) {
	for {
		var first *sendReq
		select {
		case <-ctx.Done():
			return
		case first = <-l.reqs:
		}
		batch := []*sendReq{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		l.write(batch)
	}
}

// write records a batch; requests with another window, or already
// abandoned, are handled on their own.
func (l *sendLog) write(batch []*sendReq) {
	var live []*sendReq
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.done <- sendResult{err: r.ctx.Err()}
			continue
		}
		if len(live) > 0 && r.window != live[0].window {
			l.write([]*sendReq{r})
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	sends := make([]store.Send, len(live))
	deadline := time.Time{}
	for i, r := range live {
		sends[i] = r.send
		if d, ok := r.ctx.Deadline(); ok && (deadline.IsZero() || d.After(deadline)) {
			deadline = d
		}
	}
	ctx := context.Background()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	added, err := l.st.AddSends(ctx, sends, live[0].window)
	l.commits.Add(1)
	l.rows.Add(int64(len(sends)))
	if errors.Is(err, store.ErrDuplicate) && len(live) > 1 {
		// One send with a taken id must not fail the others.
		for _, r := range live {
			l.write([]*sendReq{r})
		}
		return
	}
	for i, r := range live {
		res := sendResult{err: err}
		if err == nil {
			res.added = added[i]
		}
		r.done <- res
	}
}
