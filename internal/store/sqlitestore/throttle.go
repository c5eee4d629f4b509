package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// ListedSince implements store.Store.
func (d *DB) ListedSince(ctx context.Context, afterEvent int64, fn func(address string, eventID int64) error) error {
	rows, err := d.r.QueryContext(ctx, "SELECT address, event_id FROM suppressions WHERE event_id > ? ORDER BY event_id", afterEvent)
	if err != nil {
		return fmt.Errorf("sqlitestore: list suppressions after event %d: %w", afterEvent, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		var id int64
		if err := rows.Scan(&a, &id); err != nil {
			return fmt.Errorf("sqlitestore: list suppressions after event %d: %w", afterEvent, err)
		}
		if err := fn(a, id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: list suppressions after event %d: %w", afterEvent, err)
	}
	return nil
}

// SetThrottles implements store.Store.
func (d *DB) SetThrottles(ctx context.Context, ts []store.Throttle) error {
	for _, t := range ts {
		if t.Destination == "" || (t.State != store.ThrottleLimited && t.State != store.ThrottleSuspended) {
			return fmt.Errorf("%w: throttle %+v", store.ErrInvalid, t)
		}
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM throttles WHERE relay = ?", d.relay); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO throttles (destination, scope, state, rate, since, until,
	tempfails, successes, reason, reply, updated, relay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, t := range ts {
			var until int64
			if !t.Until.IsZero() {
				until = t.Until.Unix()
			}
			_, err := ins.ExecContext(ctx, t.Destination, t.Scope, t.State, t.Rate, t.Since.Unix(), until,
				t.Tempfails, t.Successes, t.Reason, t.Reply, t.Updated.Unix(), d.relay)
			if isConstraint(err) {
				return fmt.Errorf("%w: throttle for %s scope %q given twice", store.ErrInvalid, t.Destination, t.Scope)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap("set throttles", err)
	}
	return nil
}

// Throttles implements store.Store.
func (d *DB) Throttles(ctx context.Context) ([]store.Throttle, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT destination, scope, state, rate, since, until, tempfails, successes,
	reason, reply, updated, relay FROM throttles ORDER BY destination, scope, relay`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list throttles: %w", err)
	}
	defer rows.Close()
	var ts []store.Throttle
	for rows.Next() {
		var t store.Throttle
		var since, until, updated int64
		if err := rows.Scan(&t.Destination, &t.Scope, &t.State, &t.Rate, &since, &until, &t.Tempfails, &t.Successes,
			&t.Reason, &t.Reply, &updated, &t.Relay); err != nil {
			return nil, fmt.Errorf("sqlitestore: list throttles: %w", err)
		}
		t.Since, t.Updated = time.Unix(since, 0).UTC(), time.Unix(updated, 0).UTC()
		if until != 0 {
			t.Until = time.Unix(until, 0).UTC()
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: list throttles: %w", err)
	}
	return ts, nil
}
