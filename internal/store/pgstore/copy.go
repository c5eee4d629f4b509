package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// Copied counts the rows CopyFromSQLite copied, per table.
type Copied struct {
	Names, Sends, Events, Suppressions, Streaks, Throttles, Pauses, WarmupDays int64
}

func (c Copied) String() string {
	return fmt.Sprintf("%d names, %d sends, %d events, %d suppressions, %d soft-bounce streak entries, %d throttle states, %d scope pauses, %d warm-up day counts",
		c.Names, c.Sends, c.Events, c.Suppressions, c.Streaks, c.Throttles, c.Pauses, c.WarmupDays)
}

// copyTable is one table's copy: the SQLite query and the PostgreSQL
// columns, in the same order.
type copyTable struct {
	name    string
	query   string
	columns []string
	count   *int64
	// row converts one scanned row in place (vals as scanned).
	row func(vals []any)
}

// CopyFromSQLite copies the single-host store in the SQLite file at path
// into d, which must be empty: names with their ids (tokens in flight
// carry them), sends, events with their ids and keys, suppressions with
// their evidence, soft-bounce streaks, throttle state, scope pauses with
// their cause, and warm-up counts. Rows written before relays were
// recorded are given relay. The source is brought to the current schema
// first (as any senderkit command would), then read in one snapshot; the
// destination is written in one transaction, so a failed copy leaves it
// empty.
func CopyFromSQLite(ctx context.Context, d *DB, path, relay string) (Copied, error) {
	var n Copied
	src, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		return n, err
	}
	src.Close()
	db, err := sql.Open("sqlite3", "file:"+strings.NewReplacer("?", "%3f", "#", "%23").Replace(path)+"?"+
		url.Values{"mode": {"ro"}, "_busy_timeout": {"5000"}}.Encode())
	if err != nil {
		return n, fmt.Errorf("pgstore: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rtx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // one snapshot of the WAL
	if err != nil {
		return n, fmt.Errorf("pgstore: read %s: %w", path, err)
	}
	defer rtx.Rollback()

	relayOr := func(v any) any {
		if s, _ := v.(string); s == "" {
			return relay
		}
		return v
	}
	tables := []copyTable{
		{"names", "SELECT id, kind, name FROM names ORDER BY id", []string{"id", "kind", "name"}, &n.Names, nil},
		{"sends", "SELECT id, scope_id, stream_id, recipient, queue_id, at, message_key, relay FROM sends ORDER BY id",
			[]string{"id", "scope_id", "stream_id", "recipient", "queue_id", "at", "message_key", "relay"}, &n.Sends,
			func(v []any) { v[7] = relayOr(v[7]) }},
		{"events", `SELECT id, at, type, scope_id, stream_id, address, send_id, reason, hard, status, reply_code,
	diagnostic, feedback_type, reporting_mta, source, key, relay FROM events ORDER BY id`,
			[]string{"id", "at", "type", "scope_id", "stream_id", "address", "send_id", "reason", "hard", "status",
				"reply_code", "diagnostic", "feedback_type", "reporting_mta", "source", "key", "relay"}, &n.Events,
			func(v []any) { v[8] = v[8] != nil && v[8].(int64) != 0; v[16] = relayOr(v[16]) }},
		{"suppressions", "SELECT scope_id, address, stream_id, reason, created, expires, times, event_id FROM suppressions",
			[]string{"scope_id", "address", "stream_id", "reason", "created", "expires", "times", "event_id"}, &n.Suppressions, nil},
		{"bounce_streaks", "SELECT scope_id, address, send_id, at, reset_by FROM bounce_streaks",
			[]string{"scope_id", "address", "send_id", "at", "reset_by"}, &n.Streaks, nil},
		{"throttles", `SELECT relay, destination, scope, state, rate, since, until, tempfails, successes, reason, reply,
	updated FROM throttles`,
			[]string{"relay", "destination", "scope", "state", "rate", "since", "until", "tempfails", "successes",
				"reason", "reply", "updated"}, &n.Throttles, func(v []any) { v[0] = relayOr(v[0]) }},
		{"pauses", "SELECT scope_id, event_id FROM pauses", []string{"scope_id", "event_id"}, &n.Pauses, nil},
		{"warmup_days", "SELECT warmup, destination, day, relay, sent, held FROM warmup_days",
			[]string{"warmup", "destination", "day", "relay", "sent", "held"}, &n.WarmupDays,
			func(v []any) { v[3] = relayOr(v[3]); v[5] = v[5] != nil && v[5].(int64) != 0 }},
	}

	err = d.write(ctx, func(tx pgx.Tx) error {
		n = Copied{}
		if err := lockEventLog(ctx, tx); err != nil {
			return err
		}
		var used int64
		err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM names WHERE NOT (kind = 1 AND name = '*'))
	+ (SELECT count(*) FROM sends) + (SELECT count(*) FROM events) + (SELECT count(*) FROM suppressions)
	+ (SELECT count(*) FROM throttles) + (SELECT count(*) FROM pauses) + (SELECT count(*) FROM warmup_days)`).Scan(&used)
		if err != nil {
			return err
		}
		if used > 0 {
			return fmt.Errorf("pgstore: %s already holds a store; migrate into an empty database", d.where)
		}
		// The all-scopes name is copied with the rest, under its id.
		if _, err := tx.Exec(ctx, "DELETE FROM names"); err != nil {
			return err
		}
		for _, tb := range tables {
			rows, err := rtx.QueryContext(ctx, tb.query)
			if err != nil {
				return fmt.Errorf("pgstore: read %s from %s: %w", tb.name, path, err)
			}
			var scanErr error
			src := pgx.CopyFromFunc(func() ([]any, error) {
				if !rows.Next() {
					return nil, rows.Err()
				}
				vals := make([]any, len(tb.columns))
				ptrs := make([]any, len(vals))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					scanErr = err
					return nil, err
				}
				for i, v := range vals {
					if b, ok := v.([]byte); ok { // SQLite text may come as bytes
						vals[i] = string(b)
					}
				}
				if tb.row != nil {
					tb.row(vals)
				}
				return vals, nil
			})
			c, err := tx.CopyFrom(ctx, pgx.Identifier{tb.name}, tb.columns, src)
			rows.Close()
			if scanErr != nil {
				return fmt.Errorf("pgstore: read %s from %s: %w", tb.name, path, scanErr)
			}
			if err != nil {
				return fmt.Errorf("pgstore: copy %s: %w", tb.name, err)
			}
			*tb.count = c
		}
		// New names and events continue after the copied ids.
		for _, t := range []string{"names", "events"} {
			_, err := tx.Exec(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), coalesce((SELECT max(id) FROM %s), 0) + 1, false)", t, t))
			if err != nil {
				return err
			}
		}
		// What was read is what was written.
		for _, tb := range tables {
			var want, got int64
			if err := rtx.QueryRowContext(ctx, "SELECT count(*) FROM "+tb.name).Scan(&want); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+tb.name).Scan(&got); err != nil {
				return err
			}
			if want != got || got != *tb.count {
				return fmt.Errorf("pgstore: copy %s: %d rows in %s, %d copied, %d in PostgreSQL", tb.name, want, path, *tb.count, got)
			}
		}
		return nil
	})
	if err != nil {
		return Copied{}, d.fail("copy "+path, err)
	}
	d.names.init() // the copied names replace whatever was cached
	return n, nil
}
