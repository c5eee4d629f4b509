package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/pgtest"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// Sizes of the backend benchmark: the rows on the list, and the work
// measured on each backend.
const (
	benchRows       = 1_000_000
	benchLookups    = 100_000
	benchBounces    = 4_000
	benchDeliveries = 8_000
	benchWriters    = 8 // bounce pipes at once, each its own handle
	benchReaders    = 4 // policy-server lookups at once
	benchSeedSend   = 1 << 40
)

func benchAddr(i int) string { return fmt.Sprintf("u%d@d%d.example", i, i%1000) }

// BenchmarkBackends measures, on SQLite (synchronous=full) and on
// PostgreSQL (fsync and synchronous_commit on, a local server on
// loopback) in the same run: suppression lookups a second (the policy
// server's RCPT check, benchReaders at once, half hits and half misses,
// against benchRows entries) and bounce intake a second (what the bounce
// pipe writes for a hard bounce: a keyed event and its suppression in one
// transaction, benchWriters processes at once, each with its own
// handle), and delivery intake a second (what the log follower writes
// for a delivery: a keyed event that ends any soft-bounce streak). It
// reports each figure and PostgreSQL's as a ratio of
// SQLite's. Run it with -benchtime 1x.
func BenchmarkBackends(b *testing.B) {
	ctx := context.Background()
	srv := pgtest.Start(b, pgtest.Options{Durable: true})
	type backend struct {
		name string
		open func(relay string) store.Store
	}
	var backends []backend
	{
		path := filepath.Join(b.TempDir(), "bench.db")
		st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		fillSQLite(b, st, path)
		st.Close()
		b.Logf("sqlite: %d entries in %v", benchRows, time.Since(start).Round(time.Second))
		backends = append(backends, backend{"sqlite", func(relay string) store.Store {
			st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Relay: relay, BusyTimeout: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}})
	}
	{
		dsn := srv.NewDatabase(b)
		d := open(b, dsn, Options{})
		start := time.Now()
		fillPostgres(b, d)
		d.Close()
		b.Logf("postgres: %d entries in %v", benchRows, time.Since(start).Round(time.Second))
		backends = append(backends, backend{"postgres", func(relay string) store.Store {
			return open(b, dsn, Options{Relay: relay, Timeout: time.Minute, MaxConns: 4})
		}})
	}

	for b.Loop() {
		perSec := map[string]float64{}
		for _, be := range backends {
			// Lookups.
			st := be.open("bench")
			var next atomic.Int64
			lat := make([][]time.Duration, benchReaders)
			now := time.Now()
			start := time.Now()
			var wg sync.WaitGroup
			for r := range benchReaders {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(r), 7))
					for next.Add(1) <= benchLookups {
						i := rng.IntN(2 * benchRows) // >= benchRows: a miss on a known domain
						t0 := time.Now()
						_, ok, err := st.Lookup(ctx, store.Query{Scope: "bench", Address: benchAddr(i), At: now})
						lat[r] = append(lat[r], time.Since(t0))
						if err != nil || ok != (i < benchRows) {
							b.Errorf("%s lookup %s: %v %v", be.name, benchAddr(i), ok, err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			st.Close()
			all := slices.Concat(lat...)
			slices.Sort(all)
			perSec[be.name+"-lookups/s"] = float64(benchLookups) / elapsed.Seconds()
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), be.name+"-lookup-p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), be.name+"-lookup-p99-µs")

			// Bounce intake.
			run := time.Now().UnixNano()
			perSec[be.name+"-bounces/s"] = intakeRate(b, be.open, benchBounces, func(h store.Store, w, i int) error {
				a := fmt.Sprintf("gone%d-%d@d%d.example", run, i, i%1000)
				ev := store.Event{At: time.Now(), Type: store.Bounced, Scope: "bench", Stream: "news", Address: a,
					SendID: uint64(benchSeedSend + i), Reason: "userunknown", Hard: true, Status: "5.1.1", ReplyCode: "550",
					Diagnostic: "550 5.1.1 <" + a + ">: user unknown", ReportingMTA: "mx.example.net", Source: "bouncepipe",
					Key: fmt.Sprintf("bp:%d:%d:%d", run, w, i)}
				_, err := h.Record(ctx, ev, store.Change{Op: store.Suppress, Scope: "bench", Address: a, Reason: store.HardBounce})
				return err
			})

			// Delivery intake: what the log follower writes for each
			// status=sent line (an event, and the end of a soft-bounce
			// streak).
			perSec[be.name+"-deliveries/s"] = intakeRate(b, be.open, benchDeliveries, func(h store.Store, w, i int) error {
				a := fmt.Sprintf("u%d@d%d.example", i, i%1000)
				ev := store.Event{At: time.Now(), Type: store.Delivered, Scope: "bench", Stream: "news", Address: a,
					SendID: uint64(benchSeedSend + i), Status: "2.0.0", Diagnostic: "250 2.0.0 Ok: queued as 4ABC", Source: "log",
					Key: fmt.Sprintf("dl:%d:%d:%d", run, w, i)}
				_, err := h.Record(ctx, ev, store.Change{Op: store.ResetStreak, Scope: "bench", Address: a})
				return err
			})
		}
		for k, v := range perSec {
			b.ReportMetric(v, k)
		}
		b.ReportMetric(perSec["postgres-lookups/s"]/perSec["sqlite-lookups/s"], "lookups-pg/sqlite")
		b.ReportMetric(perSec["postgres-bounces/s"]/perSec["sqlite-bounces/s"], "bounces-pg/sqlite")
		b.ReportMetric(perSec["postgres-deliveries/s"]/perSec["sqlite-deliveries/s"], "deliveries-pg/sqlite")
	}
}

// intakeRate runs record for i = 1..n from benchWriters relays at once,
// each with a handle of its own (w), and returns records a second.
func intakeRate(b *testing.B, open func(relay string) store.Store, n int, record func(h store.Store, w, i int) error) float64 {
	handles := make([]store.Store, benchWriters)
	for w := range handles {
		handles[w] = open(fmt.Sprint("relay-", w))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w, h := range handles {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				if err := record(h, w, i); err != nil {
					b.Errorf("record %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, h := range handles {
		h.Close()
	}
	return float64(n) / elapsed.Seconds()
}

// fillSQLite writes benchRows suppressions of scope "bench" straight into
// the schema, sharing one cause event.
func fillSQLite(b *testing.B, st *sqlitestore.DB, path string) {
	ctx := context.Background()
	r, err := st.Record(ctx, store.Event{At: time.Now(), Type: store.Imported, Source: "bench"}, store.Change{})
	if err != nil {
		b.Fatal(err)
	}
	sc, err := st.ID(ctx, store.ScopeName, "bench")
	if err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_synchronous=OFF")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	ins, err := tx.Prepare("INSERT INTO suppressions (scope_id, address, stream_id, reason, created, times, event_id) VALUES (?, ?, 0, 'hard-bounce', 1700000000, 1, ?)")
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchRows {
		if _, err := ins.Exec(sc, benchAddr(i), r.EventID); err != nil {
			b.Fatal(err)
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
}

// fillPostgres does the same with COPY, then updates the planner's
// statistics as autovacuum would.
func fillPostgres(b *testing.B, d *DB) {
	ctx := context.Background()
	r, err := d.Record(ctx, store.Event{At: time.Now(), Type: store.Imported, Source: "bench"}, store.Change{})
	if err != nil {
		b.Fatal(err)
	}
	sc, err := d.ID(ctx, store.ScopeName, "bench")
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	_, err = d.pool.CopyFrom(ctx, pgx.Identifier{"suppressions"}, []string{"scope_id", "address", "stream_id", "reason", "created", "times", "event_id"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == benchRows {
				return nil, nil
			}
			i++
			return []any{int64(sc), benchAddr(i - 1), int64(0), "hard-bounce", int64(1700000000), int64(1), r.EventID}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.pool.Exec(ctx, "VACUUM ANALYZE suppressions"); err != nil {
		b.Fatal(err)
	}
}
