package milter

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// Many messages ending at once are all recorded, sharing commits; a
// taken send id fails only its own message; a copy recorded before is
// reported as such; and every answer comes after its commit.
func TestSendLog(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := newSendLog(st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.run(ctx)

	at := time.Now().Truncate(time.Second)
	mk := func(id uint64, rcpt, key string) store.Send {
		return store.Send{ID: id, Scope: "acme", Stream: "news", Recipient: rcpt, QueueID: fmt.Sprint("Q", id), At: at, MessageKey: key}
	}
	if added, err := l.add(ctx, mk(1, "taken@example.com", ""), time.Hour); err != nil || !added {
		t.Fatalf("first add: %v, %v", added, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Go(func() {
			id := uint64(100 + i)
			if i == 7 {
				id = 1 // taken
			}
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			defer scancel()
			added, err := l.add(sctx, mk(id, fmt.Sprintf("r%d@example.com", i), fmt.Sprint("k", i)), time.Hour)
			if err == nil && !added {
				err = errors.New("not added")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 7 && !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("the taken id: %v, want ErrDuplicate", err)
		}
		if i != 7 && err != nil {
			t.Errorf("send %d: %v", i, err)
			continue
		}
		if i != 7 {
			if s, err := st.Send(ctx, uint64(100+i)); err != nil || s.Recipient != fmt.Sprintf("r%d@example.com", i) {
				t.Errorf("send %d answered before it was recorded: %+v, %v", i, s, err)
			}
		}
	}
	if c, r := l.commits.Load(), l.rows.Load(); c >= r {
		t.Logf("%d commits for %d rows: no commit was shared this time", c, r)
	}
	// The same copy again, within the window: not added.
	if added, err := l.add(ctx, mk(999, "r3@example.com", "k3"), time.Hour); err != nil || added {
		t.Errorf("a copy recorded before: added=%v, %v; want false, nil", added, err)
	}
	// A request whose context ended before the writer took it is
	// answered with the context's error, and writes nothing.
	done, dcancel := context.WithCancel(ctx)
	dcancel()
	if _, err := l.add(done, mk(1000, "late@example.com", ""), time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v", err)
	}
	if _, err := st.Send(ctx, 1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an abandoned send was recorded: %v", err)
	}
}
