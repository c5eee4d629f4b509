package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/senderkit/senderkit/internal/store"
)

// AddSend implements store.Store.
func (d *DB) AddSend(ctx context.Context, s store.Send) error {
	_, err := d.AddSends(ctx, []store.Send{s}, 0)
	return err
}

// addSendSQL inserts a send unless the key $8 (when not empty) was
// recorded for the same recipient at or after $9.
const addSendSQL = `INSERT INTO sends (id, scope_id, stream_id, recipient, queue_id, at, message_key, relay)
SELECT $1::bigint, $2::integer, $3::integer, $4::text, $5::text, $6::bigint, $7::text, $10::text
WHERE $8::text = '' OR NOT EXISTS (SELECT 1 FROM sends WHERE message_key = $8 AND message_key <> '' AND recipient = $4 AND at >= $9::bigint)`

// AddSends implements store.Store. The sends go in one pipelined batch.
// Two relays given the same retried submission at once are serialised by
// a lock on its message key, so that one of them finds the other's
// copies.
func (d *DB) AddSends(ctx context.Context, sends []store.Send, window time.Duration) ([]bool, error) {
	for _, s := range sends {
		if s.ID == 0 || s.ID > 1<<63-1 || s.At.IsZero() {
			return nil, fmt.Errorf("%w: send %+v", store.ErrInvalid, s)
		}
	}
	type ids struct{ scope, stream uint32 }
	nids := make([]ids, len(sends))
	var keys []string
	for i, s := range sends {
		var err error
		if nids[i].scope, err = d.ID(ctx, store.ScopeName, s.Scope); err != nil {
			return nil, err
		}
		if nids[i].stream, err = d.ID(ctx, store.StreamName, s.Stream); err != nil {
			return nil, err
		}
		if window > 0 && s.MessageKey != "" {
			keys = append(keys, s.MessageKey)
		}
	}
	slices.Sort(keys) // one order for every relay: no deadlock
	keys = slices.Compact(keys)
	added := make([]bool, len(sends))
	err := d.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, k := range keys {
			b.Queue("SELECT pg_advisory_xact_lock($1, hashtext($2))", keyClass, k)
		}
		for i, s := range sends {
			check := s.MessageKey
			if window <= 0 {
				check = ""
			}
			b.Queue(addSendSQL, int64(s.ID), int64(nids[i].scope), int64(nids[i].stream), s.Recipient, s.QueueID,
				s.At.Unix(), s.MessageKey, check, s.At.Add(-window).Unix(), d.relay)
		}
		br := tx.SendBatch(ctx, b)
		for range keys {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return err
			}
		}
		for i, s := range sends {
			ct, err := br.Exec()
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
				br.Close()
				return fmt.Errorf("%w: send id %d", store.ErrDuplicate, s.ID)
			}
			if err != nil {
				br.Close()
				return err
			}
			added[i] = ct.RowsAffected() == 1
		}
		return br.Close()
	})
	if err != nil {
		return nil, d.fail("add sends", err)
	}
	return added, nil
}

const sendCols = `s.id, sc.name, st.name, s.recipient, s.queue_id, s.at, s.message_key, s.relay
FROM sends s JOIN names sc ON sc.id = s.scope_id JOIN names st ON st.id = s.stream_id`

func scanSend(row pgx.Row) (store.Send, error) {
	var s store.Send
	var id, at int64
	err := row.Scan(&id, &s.Scope, &s.Stream, &s.Recipient, &s.QueueID, &at, &s.MessageKey, &s.Relay)
	s.ID, s.At = uint64(id), time.Unix(at, 0).UTC()
	return s, err
}

// Send implements store.Store.
func (d *DB) Send(ctx context.Context, id uint64) (store.Send, error) {
	if id > 1<<63-1 {
		return store.Send{}, fmt.Errorf("%w: send %d", store.ErrNotFound, id)
	}
	var s store.Send
	err := d.retry(ctx, func() error {
		var err error
		s, err = scanSend(d.pool.QueryRow(ctx, "SELECT "+sendCols+" WHERE s.id = $1", int64(id)))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Send{}, fmt.Errorf("%w: send %d", store.ErrNotFound, id)
	}
	if err != nil {
		return store.Send{}, d.fail(fmt.Sprintf("send %d", id), err)
	}
	return s, nil
}

// SendsByQueueID implements store.Store.
func (d *DB) SendsByQueueID(ctx context.Context, qid string) ([]store.Send, error) {
	if qid == "" {
		return nil, nil
	}
	return d.querySends(ctx, "queue id "+qid, "SELECT "+sendCols+" WHERE s.queue_id = $1 AND s.queue_id <> '' ORDER BY s.id", qid)
}

// SendsByMessageKey implements store.Store.
func (d *DB) SendsByMessageKey(ctx context.Context, key string, since time.Time) ([]store.Send, error) {
	if key == "" {
		return nil, nil
	}
	return d.querySends(ctx, "message key "+key,
		"SELECT "+sendCols+" WHERE s.message_key = $1 AND s.message_key <> '' AND s.at >= $2 ORDER BY s.id", key, since.Unix())
}

// querySends reads the sends a query selects; what names them in errors.
func (d *DB) querySends(ctx context.Context, what, query string, args ...any) ([]store.Send, error) {
	var out []store.Send
	err := d.retry(ctx, func() error {
		out = out[:0]
		rows, err := d.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			s, err := scanSend(rows)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, d.fail("sends of "+what, err)
	}
	return out, nil
}
