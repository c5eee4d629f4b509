package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/storetest"
)

func open(t testing.TB, path string, o Options) *DB {
	t.Helper()
	d, err := Open(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	})
}

// TestMmap: reads are memory-mapped unless NoMmap says not to; the suite
// passes either way.
func TestMmap(t *testing.T) {
	for _, noMmap := range []bool{false, true} {
		d := open(t, filepath.Join(t.TempDir(), "s.db"), Options{NoMmap: noMmap})
		var n int64
		if err := d.r.QueryRow("PRAGMA mmap_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if (n > 0) == noMmap {
			t.Errorf("NoMmap %v: mmap_size %d", noMmap, n)
		}
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "s.db"), Options{NoMmap: true})
	})
}

// TestShared runs the suite's tests of several handles (relays, and
// writers at once) on one file.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) func(relay string) store.Store {
		path := filepath.Join(t.TempDir(), "s.db")
		return func(relay string) store.Store {
			return open(t, path, Options{Relay: relay, BusyTimeout: 30 * time.Second})
		}
	})
}

func TestPragmas(t *testing.T) {
	d := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	defer d.Close()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "5000"},
		{"user_version", strconv.Itoa(len(migrations))},
	} {
		var got string
		if err := d.w.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := d.r.Exec("DELETE FROM names"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestReopenAndNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	d := open(t, path, Options{})
	ctx := context.Background()
	id, _ := d.ID(ctx, store.ScopeName, "acme")
	d.Close()
	d = open(t, path, Options{}) // migrations are not re-run
	if got, _ := d.ID(ctx, store.ScopeName, "acme"); got != id {
		t.Errorf("id changed across reopen: %d -> %d", id, got)
	}
	d.w.Exec("PRAGMA user_version = 99")
	d.Close()
	_, err := Open(ctx, path, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("opening a newer schema: %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "missing", "s.db"), Options{}); err == nil {
		t.Error("opened a store in a missing directory")
	}
	if _, err := Open(ctx, path, Options{Synchronous: "sometimes"}); err == nil {
		t.Error("accepted synchronous=sometimes")
	}
}

// TestUpgradeFrom5: a store made before scope pauses and warm-up counts
// (schema version 5) is brought to the current schema on open (7: with
// the index of sends by time), keeps what it held, and takes pauses and
// warm-up days.
func TestUpgradeFrom5(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:5] {
		if _, err := raw.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	for _, q := range []string{
		"PRAGMA user_version = 5",
		"INSERT INTO names (kind, name) VALUES (1, 'acme')",
		"INSERT INTO events (at, type, scope_id, address, source) VALUES (1700000000, 'suppressed', 2, 'a@example.com', 'cli')",
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	ctx := context.Background()
	d := open(t, path, Options{})
	defer d.Close()
	var v int
	if err := d.r.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) || v != 8 {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(migrations))
	}
	if id, err := d.ID(ctx, store.ScopeName, "acme"); err != nil || id != 2 {
		t.Errorf("acme is %d (%v) after the upgrade, want 2", id, err)
	}
	ev := store.Event{At: time.Unix(1700000100, 0), Type: store.Paused, Scope: "acme", Reason: "manual", Source: "cli"}
	r, err := d.Record(ctx, ev, store.Change{Op: store.PauseScope, Scope: "acme"})
	if err != nil || !r.Changed || r.EventID != 2 {
		t.Fatalf("pause after the upgrade: %+v %v", r, err)
	}
	if ps, err := d.Pauses(ctx); err != nil || len(ps) != 1 || ps[0].Scope != "acme" || ps[0].EventID != 2 {
		t.Errorf("Pauses after the upgrade: %+v %v", ps, err)
	}
	day := time.Unix(1700000000, 0)
	if err := d.AddWarmup(ctx, []store.WarmupDay{{Warmup: "w", Destination: "google.com", Day: day, Sent: 3}}); err != nil {
		t.Fatal(err)
	}
	if ws, err := d.WarmupDays(ctx, "w", day); err != nil || len(ws) != 1 || ws[0].Sent != 3 {
		t.Errorf("WarmupDays after the upgrade: %+v %v", ws, err)
	}
}

// holdLock takes the write lock on path from a separate connection and
// returns a function that releases it.
func holdLock(t *testing.T, path string) func() {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	if _, err := raw.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		raw.Exec("COMMIT")
		raw.Close()
	}
}

func TestBusyTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	d := open(t, path, Options{BusyTimeout: 300 * time.Millisecond})
	defer d.Close()
	ctx := context.Background()
	ev := store.Event{At: time.Now(), Type: store.Suppressed, Scope: "acme", Address: "a@example.com", Source: "test"}
	ch := store.Change{Op: store.Suppress, Scope: "acme", Address: "a@example.com", Reason: store.Manual}

	// A lock that outlives the timeout: ErrBusy, and nothing written.
	release := holdLock(t, path)
	start := time.Now()
	_, err := d.Record(ctx, ev, ch)
	waited := time.Since(start)
	release()
	if !errors.Is(err, store.ErrBusy) {
		t.Fatalf("Record under a held lock: %v, want ErrBusy", err)
	}
	if waited < 300*time.Millisecond {
		t.Errorf("gave up after %v, before the 300ms timeout", waited)
	}
	if _, ok, _ := d.Lookup(ctx, store.Query{Scope: "acme", Address: "a@example.com", At: time.Now()}); ok {
		t.Error("the failed write left an entry")
	}

	// A lock released within the timeout: the write just waits.
	release = holdLock(t, path)
	time.AfterFunc(100*time.Millisecond, release)
	if _, err := d.Record(ctx, ev, ch); err != nil {
		t.Fatalf("Record under a lock released in time: %v", err)
	}
	if _, ok, _ := d.Lookup(ctx, store.Query{Scope: "acme", Address: "a@example.com", At: time.Now()}); !ok {
		t.Error("the write that waited is missing")
	}
}

// The concurrency test runs the test binary again as writer processes.
const writerEnv = "SENDERKIT_STORETEST_WRITER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(writerEnv); spec != "" {
		if err := writer(spec); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writer records n events from process p, each suppressing an address:
// a third on addresses every process shares (row contention), the rest
// on the process's own.
func writer(spec string) error {
	var path string
	var p, n int
	if _, err := fmt.Sscanf(spec, "%d %d %s", &p, &n, &path); err != nil {
		return fmt.Errorf("bad spec %q: %v", spec, err)
	}
	ctx := context.Background()
	d, err := Open(ctx, path, Options{BusyTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer d.Close()
	for i := range n {
		a := fmt.Sprintf("p%d-%d@example.com", p, i)
		if i%3 == 0 {
			a = fmt.Sprintf("shared-%d@example.com", i%50)
		}
		ev := store.Event{At: time.Now(), Type: store.Bounced, Scope: fmt.Sprint("scope-", i%4), Address: a,
			Source: "writer", Key: fmt.Sprintf("p%d-%d", p, i)}
		ch := store.Change{Op: store.Suppress, Scope: ev.Scope, Address: a, Reason: store.SoftBounce, TTL: time.Hour}
		if _, err := d.Record(ctx, ev, ch); err != nil {
			return fmt.Errorf("process %d write %d: %w", p, i, err)
		}
	}
	return nil
}

// TestConcurrentProcesses: 8 processes x 1,000 writes into one file while
// readers query it; every write must be present exactly once.
func TestConcurrentProcesses(t *testing.T) {
	const procs, writes = 8, 1000
	path := filepath.Join(t.TempDir(), "s.db")
	d := open(t, path, Options{})
	defer d.Close()
	ctx := context.Background()

	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				q := store.Query{Scope: "scope-1", Address: fmt.Sprintf("shared-%d@example.com", r), At: time.Now()}
				if _, _, err := d.Lookup(ctx, q); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				if err := d.Events(ctx, store.EventFilter{Address: q.Address}, func(store.Event) error { return nil }); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				reads.Add(1)
			}
		})
	}

	start := time.Now()
	cmds := make([]*exec.Cmd, procs)
	for p := range procs {
		cmds[p] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[p].Env = append(os.Environ(), fmt.Sprintf("%s=%d %d %s", writerEnv, p, writes, path))
		cmds[p].Stderr = os.Stderr
		if err := cmds[p].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("writer process %d: %v", p, err)
		}
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	var total, distinct, dups int
	d.r.QueryRow("SELECT count(*), count(DISTINCT key) FROM events").Scan(&total, &distinct)
	d.r.QueryRow("SELECT count(*) FROM (SELECT key FROM events GROUP BY key HAVING count(*) > 1)").Scan(&dups)
	if total != procs*writes || distinct != procs*writes || dups != 0 {
		t.Errorf("events: %d rows, %d distinct keys, %d duplicated keys; want %d, %d, 0", total, distinct, dups, procs*writes, procs*writes)
	}
	for p := range procs {
		for i := range writes {
			var n int
			d.r.QueryRow("SELECT count(*) FROM events WHERE key = ?", fmt.Sprintf("p%d-%d", p, i)).Scan(&n)
			if n != 1 {
				t.Fatalf("write p%d-%d present %d times", p, i, n)
			}
		}
	}
	// Every suppression points at an event that exists.
	var orphans int
	d.r.QueryRow("SELECT count(*) FROM suppressions s LEFT JOIN events e ON e.id = s.event_id WHERE e.id IS NULL").Scan(&orphans)
	if orphans != 0 {
		t.Errorf("%d suppressions without their event", orphans)
	}
	t.Logf("concurrency: %d processes x %d writes = %d events in %v (%.0f writes/s), %d reader queries meanwhile, 0 lost, 0 duplicated",
		procs, writes, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), reads.Load())
}
