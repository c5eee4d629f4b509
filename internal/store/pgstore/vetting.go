package pgstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/store"
)

// Pauses implements store.Store.
func (d *DB) Pauses(ctx context.Context) ([]store.Pause, error) {
	var out []store.Pause
	err := d.query(ctx, func(rows pgx.Rows) error {
		var p store.Pause
		var ev eventScan
		if err := rows.Scan(append([]any{&p.Scope, &p.EventID}, ev.dest()...)...); err != nil {
			return err
		}
		p.Cause = ev.event()
		p.Since = p.Cause.At
		out = append(out, p)
		return nil
	}, func() { out = out[:0] }, `SELECT sc.name, p.event_id, `+eventCols+`
FROM pauses p JOIN names sc ON sc.id = p.scope_id JOIN events e ON e.id = p.event_id`+eventJoins+`
ORDER BY sc.name`)
	if err != nil {
		return nil, d.fail("list pauses", err)
	}
	return out, nil
}

func checkWarmupDay(w store.WarmupDay) error {
	if w.Warmup == "" || w.Destination == "" || w.Day.IsZero() || w.Sent < 0 {
		return fmt.Errorf("%w: warm-up day %+v", store.ErrInvalid, w)
	}
	return nil
}

// AddWarmup implements store.Store. The days go in one pipelined batch,
// in key order, so that two processes of one relay adding the same days
// at once wait for each other instead of deadlocking.
func (d *DB) AddWarmup(ctx context.Context, days []store.WarmupDay) error {
	if len(days) == 0 {
		return nil
	}
	for _, w := range days {
		if err := checkWarmupDay(w); err != nil {
			return err
		}
	}
	sorted := slices.Clone(days)
	slices.SortStableFunc(sorted, func(a, b store.WarmupDay) int {
		return cmp.Or(cmp.Compare(a.Warmup, b.Warmup), cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.Day.Unix(), b.Day.Unix()))
	})
	err := d.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, w := range sorted {
			b.Queue(`INSERT INTO warmup_days (warmup, destination, day, relay, sent, held) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (warmup, destination, day, relay) DO UPDATE SET
	sent = warmup_days.sent + excluded.sent, held = warmup_days.held OR excluded.held`,
				w.Warmup, w.Destination, w.Day.Unix(), d.relay, int64(w.Sent), w.Held)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return d.fail("add warm-up days", err)
	}
	return nil
}

// WarmupDays implements store.Store.
func (d *DB) WarmupDays(ctx context.Context, warmup string, since time.Time) ([]store.WarmupDay, error) {
	var out []store.WarmupDay
	err := d.query(ctx, func(rows pgx.Rows) error {
		w := store.WarmupDay{Warmup: warmup}
		var day, sent int64
		if err := rows.Scan(&w.Destination, &day, &sent, &w.Held); err != nil {
			return err
		}
		w.Day, w.Sent = time.Unix(day, 0).UTC(), int(sent)
		out = append(out, w)
		return nil
	}, func() { out = out[:0] }, `SELECT destination, day, sum(sent)::bigint, bool_or(held) FROM warmup_days
WHERE warmup = $1 AND day >= $2
GROUP BY destination, day
ORDER BY destination, day`, warmup, since.Unix())
	if err != nil {
		return nil, d.fail("warm-up "+warmup, err)
	}
	return out, nil
}
