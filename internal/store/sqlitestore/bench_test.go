package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// fill writes n suppressions for scope "bench" straight into the schema
// (one shared cause event), far faster than n Records. Addresses are
// u<i>@d<i%1000>.example.
func fill(b *testing.B, d *DB, n int) {
	b.Helper()
	ctx := context.Background()
	r, err := d.Record(ctx, store.Event{At: time.Now(), Type: store.Imported, Source: "bench"}, store.Change{})
	if err != nil {
		b.Fatal(err)
	}
	sc, err := d.ID(ctx, store.ScopeName, "bench")
	if err != nil {
		b.Fatal(err)
	}
	const batch = 200_000
	for start := 0; start < n; start += batch {
		err := d.write(ctx, func(tx *sql.Tx) error {
			st, err := tx.PrepareContext(ctx, "INSERT INTO suppressions (scope_id, address, stream_id, reason, created, times, event_id) VALUES (?, ?, 0, 'hard-bounce', ?, 1, ?)")
			if err != nil {
				return err
			}
			defer st.Close()
			for i := start; i < min(start+batch, n); i++ {
				if _, err := st.ExecContext(ctx, sc, benchAddr(i), 1700000000, r.EventID); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchAddr(i int) string { return fmt.Sprintf("u%d@d%d.example", i, i%1000) }

// BenchmarkLookup measures one suppression lookup (as the policy server
// makes per RCPT) against 1M and 10M rows: half hits, half misses, in
// random order. It reports p50 and p99 latency.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("rows=%dM", n/1_000_000), func(b *testing.B) {
			d := open(b, filepath.Join(b.TempDir(), "bench.db"), Options{Synchronous: "normal"})
			defer d.Close()
			start := time.Now()
			fill(b, d, n)
			b.Logf("filled %d rows in %v", n, time.Since(start).Round(time.Second))
			if _, err := d.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			now := time.Now()
			// Allocated up front: growing it while measuring would put the
			// benchmark's own garbage collection into the tail.
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				i := rng.IntN(2 * n) // >= n: a miss on a known domain
				q := store.Query{Scope: "bench", Address: benchAddr(i), At: now}
				t := time.Now()
				_, ok, err := d.Lookup(ctx, q)
				lat = append(lat, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				if ok != (i < n) {
					b.Fatalf("lookup %s: found=%v", q.Address, ok)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
