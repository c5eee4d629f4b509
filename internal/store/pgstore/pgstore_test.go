package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/pgtest"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/storetest"
)

func open(t testing.TB, dsn string, o Options) *DB {
	t.Helper()
	d, err := Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSuite runs the backend-independent suite on a real PostgreSQL, one
// fresh database per test.
func TestSuite(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, srv.NewDatabase(t), Options{})
	})
}

// TestShared runs the suite's tests of several handles (relays, and
// writers at once) on one database.
func TestShared(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunShared(t, func(t *testing.T) func(relay string) store.Store {
		dsn := srv.NewDatabase(t)
		return func(relay string) store.Store { return open(t, dsn, Options{Relay: relay, MaxConns: 4}) }
	})
}

// TestMigrateOnce: relays starting together migrate once (an advisory
// lock), reopening changes nothing, and a schema newer than this
// senderkit is refused.
func TestMigrateOnce(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			d, err := Open(ctx, dsn, Options{Timeout: 30 * time.Second})
			if err == nil {
				d.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent open: %v", err)
		}
	}
	d := open(t, dsn, Options{})
	if v, err := d.Version(ctx); err != nil || v != len(migrations) {
		t.Errorf("version %d, %v; want %d", v, err, len(migrations))
	}
	id, _ := d.ID(ctx, store.ScopeName, "acme")
	d.Close()
	d = open(t, dsn, Options{})
	if got, _ := d.ID(ctx, store.ScopeName, "acme"); got != id {
		t.Errorf("id changed across reopen: %d -> %d", id, got)
	}
	if _, err := d.pool.Exec(ctx, "UPDATE senderkit_schema SET version = 99"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Open(ctx, dsn, Options{}); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("opening a newer schema: %v", err)
	}
	if _, err := Open(ctx, "postgres://u:secret@[::1", Options{}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a broken DSN: %v (and the password must not show)", err)
	}
}

// TestUpgradeFrom1: a database made before scope pauses and warm-up
// counts (schema version 1) is brought to the current schema on open,
// keeps what it held, and takes pauses and warm-up days.
func TestUpgradeFrom1(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		"CREATE TABLE senderkit_schema (version integer NOT NULL)",
		"INSERT INTO senderkit_schema (version) VALUES (1)",
		"INSERT INTO names (kind, name) VALUES (1, 'acme')",
		"INSERT INTO events (at, type, scope_id, address, source) VALUES (1700000000, 'suppressed', 2, 'a@example.com', 'cli')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	conn.Close(ctx)

	d := open(t, dsn, Options{Relay: "mx1"})
	defer d.Close()
	if v, err := d.Version(ctx); err != nil || v != len(migrations) || v != 4 {
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
	if ps, err := d.Pauses(ctx); err != nil || len(ps) != 1 || ps[0].Scope != "acme" || ps[0].EventID != 2 || ps[0].Cause.Relay != "mx1" {
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

// TestUnavailable: while the database is down every call fails, within
// the timeout, with store.ErrBusy (what the plug-ins take for a
// temporary failure); when it is back the same handle works again.
func TestUnavailable(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	d := open(t, dsn, Options{Timeout: 500 * time.Millisecond})
	defer d.Close()
	ev := store.Event{At: time.Now(), Type: store.Suppressed, Scope: "acme", Address: "a@example.com", Source: "test", Key: "k1"}
	ch := store.Change{Op: store.Suppress, Scope: "acme", Address: "a@example.com", Reason: store.Manual}
	q := store.Query{Scope: "acme", Address: "a@example.com", At: time.Now()}
	if _, err := d.Record(ctx, ev, ch); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ev.Key, ev.Address, ch.Address = "k2", "b@example.com", "b@example.com"
	_, err := d.Record(ctx, ev, ch)
	if !errors.Is(err, store.ErrBusy) {
		t.Errorf("Record with the database down: %v, want ErrBusy", err)
	}
	if _, _, err := d.Lookup(ctx, q); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Lookup with the database down: %v, want ErrBusy", err)
	}
	if err := d.AddSend(ctx, store.Send{ID: 9, Scope: "acme", Stream: "news", Recipient: "a@example.com", At: time.Now()}); !errors.Is(err, store.ErrBusy) {
		t.Errorf("AddSend with the database down: %v, want ErrBusy", err)
	}
	if _, err := d.Send(ctx, 9); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Send with the database down: %v, want ErrBusy", err)
	}
	if _, err := Open(ctx, dsn, Options{Timeout: 300 * time.Millisecond}); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Open with the database down: %v, want ErrBusy", err)
	}

	srv.Restart()
	if _, err := d.Record(ctx, ev, ch); err != nil {
		t.Fatalf("Record once the database is back: %v", err)
	}
	for _, a := range []string{"a@example.com", "b@example.com"} {
		q.Address = a
		if _, ok, err := d.Lookup(ctx, q); err != nil || !ok {
			t.Errorf("%s after the outage: %v %v", a, ok, err)
		}
	}
	if n := countAll(t, d); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

// A call that starts while the database restarts waits for it, within
// the timeout, instead of failing.
func TestRestartWithinTimeout(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	d := open(t, srv.NewDatabase(t), Options{Timeout: 30 * time.Second})
	defer d.Close()
	ctx := context.Background()
	if _, err := d.ID(ctx, store.ScopeName, "acme"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	// The restart is waited for before the test ends: the server's
	// cleanup must not stop it while it is still starting.
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		restarted <- srv.TryRestart()
	}()
	ev := store.Event{At: time.Now(), Type: store.Suppressed, Scope: "acme", Address: "a@example.com", Source: "test"}
	_, err := d.Record(ctx, ev, store.Change{})
	if rerr := <-restarted; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("Record across a restart: %v", err)
	}
}

// TestLockTimeout: a writer that holds the event log longer than the
// timeout makes others fail with ErrBusy, and changes nothing.
func TestLockTimeout(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	d := open(t, dsn, Options{Timeout: 300 * time.Millisecond})
	defer d.Close()
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockEvents); err != nil {
		t.Fatal(err)
	}
	ev := store.Event{At: time.Now(), Type: store.Suppressed, Scope: "acme", Address: "a@example.com", Source: "test"}
	ch := store.Change{Op: store.Suppress, Scope: "acme", Address: "a@example.com", Reason: store.Manual}
	if _, err := d.Record(ctx, ev, ch); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Record while another holds the event log: %v, want ErrBusy", err)
	}
	tx.Rollback(ctx)
	if n := countAll(t, d); n != 0 {
		t.Errorf("%d events after a refused write", n)
	}
	if _, err := d.Record(ctx, ev, ch); err != nil {
		t.Errorf("Record once the lock is released: %v", err)
	}
}

func countAll(t *testing.T, d *DB) int {
	t.Helper()
	n := 0
	if err := d.Events(context.Background(), store.EventFilter{}, func(store.Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
