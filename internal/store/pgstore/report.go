package pgstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/store"
)

// sendDaysSQL folds each copy's events into flags, then sums the flags
// per (relay,) scope, stream and bucket. $1 and $2 bound the send time.
// The first %s is the relay column (or an empty string), the second the
// bucket: the send day (days since the epoch) for SendDays, a constant
// for SendTotals.
const sendDaysSQL = `
WITH copies AS (
	SELECT id, scope_id, stream_id, at, %s AS relay FROM sends WHERE at >= $1 AND at < $2
), fate AS (
	SELECT e.send_id,
		max((e.type = 'delivered')::int) AS delivered,
		max((e.type = 'deferred')::int) AS deferred,
		max((e.type = 'bounced' AND e.hard)::int) AS hard,
		max((e.type = 'bounced' AND e.hard AND e.reason = 'userunknown')::int) AS unknown,
		max((e.type = 'bounced' AND NOT e.hard)::int) AS soft,
		max((e.type = 'sender-problem')::int) AS problem,
		max((e.type = 'complaint' AND e.feedback_type <> 'not-spam')::int) AS complaint,
		max((e.type = 'unsubscribe')::int) AS unsub
	FROM events e JOIN copies c ON c.id = e.send_id
	GROUP BY e.send_id
)
SELECT c.relay, sc.name, st.name, %s AS bucket, count(*),
	coalesce(sum(f.delivered), 0), coalesce(sum(f.deferred), 0), coalesce(sum(f.hard), 0), coalesce(sum(f.unknown), 0),
	coalesce(sum(f.soft), 0), coalesce(sum(f.problem), 0), coalesce(sum(f.complaint), 0), coalesce(sum(f.unsub), 0)
FROM copies c
JOIN names sc ON sc.id = c.scope_id
JOIN names st ON st.id = c.stream_id
LEFT JOIN fate f ON f.send_id = c.id
GROUP BY c.relay, sc.name, st.name, bucket
ORDER BY c.relay, sc.name, st.name, bucket`

// SendDays implements store.Store.
func (d *DB) SendDays(ctx context.Context, since, until time.Time) ([]store.DayCount, error) {
	return d.sendDays(ctx, since, until, false, false)
}

// SendDaysByRelay implements store.Store.
func (d *DB) SendDaysByRelay(ctx context.Context, since, until time.Time) ([]store.DayCount, error) {
	return d.sendDays(ctx, since, until, true, false)
}

// SendTotals implements store.Store.
func (d *DB) SendTotals(ctx context.Context, since, until time.Time) ([]store.DayCount, error) {
	return d.sendDays(ctx, since, until, false, true)
}

// sendDays runs sendDaysSQL: per day, or (whole) over the period.
func (d *DB) sendDays(ctx context.Context, since, until time.Time, byRelay, whole bool) ([]store.DayCount, error) {
	relay, bucket := `''::text COLLATE "C"`, "c.at / 86400"
	if byRelay {
		relay = "relay"
	}
	if whole {
		bucket = "0::bigint"
	}
	var out []store.DayCount
	err := d.query(ctx, func(rows pgx.Rows) error {
		var c store.DayCount
		var day int64
		if err := rows.Scan(&c.Relay, &c.Scope, &c.Stream, &day, &c.Sent, &c.Delivered, &c.Deferred, &c.HardBounced,
			&c.UnknownUser, &c.SoftBounced, &c.SenderProblem, &c.Complaints, &c.Unsubscribes); err != nil {
			return err
		}
		c.Day = time.Unix(day*86400, 0).UTC()
		if whole {
			c.Day = since.UTC()
		}
		out = append(out, c)
		return nil
	}, func() { out = out[:0] }, fmt.Sprintf(sendDaysSQL, relay, bucket), since.Unix(), until.Unix())
	if err != nil {
		return nil, d.fail("send days", err)
	}
	return out, nil
}

// query runs a read, calling row for each row, retrying the whole read
// (after reset) while it fails in a way that passes. row must only
// collect.
func (d *DB) query(ctx context.Context, row func(pgx.Rows) error, reset func(), sql string, args ...any) error {
	return d.retry(ctx, func() error {
		reset()
		rows, err := d.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// BounceReasons implements store.Store.
func (d *DB) BounceReasons(ctx context.Context, since, until time.Time) ([]store.ReasonCount, error) {
	var out []store.ReasonCount
	err := d.query(ctx, func(rows pgx.Rows) error {
		var r store.ReasonCount
		if err := rows.Scan(&r.Scope, &r.Reason, &r.Hard, &r.Count); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	}, func() { out = out[:0] }, `
SELECT sc.name, e.reason, e.hard, count(DISTINCT e.send_id)
FROM events e JOIN sends s ON s.id = e.send_id JOIN names sc ON sc.id = s.scope_id
WHERE e.type = 'bounced' AND s.at >= $1 AND s.at < $2
GROUP BY sc.name, e.reason, e.hard
ORDER BY 4 DESC, sc.name, e.reason`, since.Unix(), until.Unix())
	if err != nil {
		return nil, d.fail("bounce reasons", err)
	}
	return out, nil
}

// SenderProblems implements store.Store.
func (d *DB) SenderProblems(ctx context.Context, since, until time.Time) ([]store.ProblemCount, error) {
	type key struct{ scope, domain string }
	var byKey map[key]*store.ProblemCount
	err := d.query(ctx, func(rows pgx.Rows) error {
		var scope, address, diag string
		var at int64
		if err := rows.Scan(&scope, &address, &at, &diag); err != nil {
			return err
		}
		k := key{scope, address[strings.LastIndexByte(address, '@')+1:]}
		p := byKey[k]
		if p == nil {
			p = &store.ProblemCount{Scope: k.scope, Domain: k.domain}
			byKey[k] = p
		}
		p.Count++
		if t := time.Unix(at, 0).UTC(); !t.Before(p.Last) {
			p.Last, p.Example = t, diag
		}
		return nil
	}, func() { byKey = map[key]*store.ProblemCount{} }, `
SELECT sc.name, e.address, e.at, e.diagnostic
FROM events e JOIN sends s ON s.id = e.send_id JOIN names sc ON sc.id = s.scope_id
WHERE e.type = 'sender-problem' AND s.at >= $1 AND s.at < $2
ORDER BY e.id`, since.Unix(), until.Unix())
	if err != nil {
		return nil, d.fail("sender problems", err)
	}
	out := make([]store.ProblemCount, 0, len(byKey))
	for _, p := range byKey {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Scope != out[j].Scope {
			return out[i].Scope < out[j].Scope
		}
		return out[i].Domain < out[j].Domain
	})
	return out, nil
}

// SetThrottles implements store.Store: this relay's rows are replaced,
// other relays' stay.
func (d *DB) SetThrottles(ctx context.Context, ts []store.Throttle) error {
	seen := map[[2]string]bool{}
	for _, t := range ts {
		if t.Destination == "" || (t.State != store.ThrottleLimited && t.State != store.ThrottleSuspended) {
			return fmt.Errorf("%w: throttle %+v", store.ErrInvalid, t)
		}
		k := [2]string{t.Destination, t.Scope}
		if seen[k] {
			return fmt.Errorf("%w: throttle for %s scope %q given twice", store.ErrInvalid, t.Destination, t.Scope)
		}
		seen[k] = true
	}
	err := d.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue("DELETE FROM throttles WHERE relay = $1", d.relay)
		for _, t := range ts {
			var until int64
			if !t.Until.IsZero() {
				until = t.Until.Unix()
			}
			b.Queue(`INSERT INTO throttles (relay, destination, scope, state, rate, since, until, tempfails, successes,
	reason, reply, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				d.relay, t.Destination, t.Scope, t.State, t.Rate, t.Since.Unix(), until, t.Tempfails, t.Successes,
				t.Reason, t.Reply, t.Updated.Unix())
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return d.fail("set throttles", err)
	}
	return nil
}

// Throttles implements store.Store.
func (d *DB) Throttles(ctx context.Context) ([]store.Throttle, error) {
	var ts []store.Throttle
	err := d.query(ctx, func(rows pgx.Rows) error {
		var t store.Throttle
		var since, until, updated int64
		if err := rows.Scan(&t.Destination, &t.Scope, &t.State, &t.Rate, &since, &until, &t.Tempfails, &t.Successes,
			&t.Reason, &t.Reply, &updated, &t.Relay); err != nil {
			return err
		}
		t.Since, t.Updated = time.Unix(since, 0).UTC(), time.Unix(updated, 0).UTC()
		if until != 0 {
			t.Until = time.Unix(until, 0).UTC()
		}
		ts = append(ts, t)
		return nil
	}, func() { ts = ts[:0] }, `SELECT destination, scope, state, rate, since, until, tempfails, successes,
	reason, reply, updated, relay FROM throttles ORDER BY destination, scope, relay`)
	if err != nil {
		return nil, d.fail("list throttles", err)
	}
	return ts, nil
}
