package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// Pauses implements store.Store.
func (d *DB) Pauses(ctx context.Context) ([]store.Pause, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT sc.name, p.event_id, `+eventCols+`
FROM pauses p JOIN names sc ON sc.id = p.scope_id JOIN events e ON e.id = p.event_id`+eventJoins+`
ORDER BY sc.name`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list pauses: %w", err)
	}
	defer rows.Close()
	var out []store.Pause
	for rows.Next() {
		var p store.Pause
		var at, send int64
		var hard int
		dest := append([]any{&p.Scope, &p.EventID}, eventDest(&p.Cause, &at, &send, &hard)...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("sqlitestore: list pauses: %w", err)
		}
		finishEvent(&p.Cause, at, send, hard)
		p.Since = p.Cause.At
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: list pauses: %w", err)
	}
	return out, nil
}

func checkWarmupDay(w store.WarmupDay) error {
	if w.Warmup == "" || w.Destination == "" || w.Day.IsZero() || w.Sent < 0 {
		return fmt.Errorf("%w: warm-up day %+v", store.ErrInvalid, w)
	}
	return nil
}

// AddWarmup implements store.Store.
func (d *DB) AddWarmup(ctx context.Context, days []store.WarmupDay) error {
	if len(days) == 0 {
		return nil
	}
	for _, w := range days {
		if err := checkWarmupDay(w); err != nil {
			return err
		}
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO warmup_days (warmup, destination, day, relay, sent, held)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (warmup, destination, day, relay) DO UPDATE SET
	sent = sent + excluded.sent, held = max(held, excluded.held)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, w := range days {
			if _, err := ins.ExecContext(ctx, w.Warmup, w.Destination, w.Day.Unix(), d.relay, w.Sent, bool01(w.Held)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap("add warm-up days", err)
	}
	return nil
}

// WarmupDays implements store.Store.
func (d *DB) WarmupDays(ctx context.Context, warmup string, since time.Time) ([]store.WarmupDay, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT destination, day, sum(sent), max(held) FROM warmup_days
WHERE warmup = ? AND day >= ?
GROUP BY destination, day
ORDER BY destination, day`, warmup, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: warm-up %s: %w", warmup, err)
	}
	defer rows.Close()
	var out []store.WarmupDay
	for rows.Next() {
		w := store.WarmupDay{Warmup: warmup}
		var day int64
		var held int
		if err := rows.Scan(&w.Destination, &day, &w.Sent, &held); err != nil {
			return nil, fmt.Errorf("sqlitestore: warm-up %s: %w", warmup, err)
		}
		w.Day, w.Held = time.Unix(day, 0).UTC(), held != 0
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: warm-up %s: %w", warmup, err)
	}
	return out, nil
}
