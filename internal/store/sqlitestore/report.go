package sqlitestore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// sendDaysSQL folds each copy's events into flags, then sums the flags
// per scope, stream and bucket (and relay, with byRelay). ?1 and ?2
// bound the send time. The first %s is the relay column (or an empty
// string), the second the bucket: the send day (days since the epoch)
// for SendDays, a constant for SendTotals. The CROSS JOIN makes SQLite
// start from the copies and look up their events, so that the cost
// follows the copies in the period rather than every event ever
// recorded: the SQLite we link plans that either way, but Debian's 3.40
// chose to scan every event in send_id order.
const sendDaysSQL = `
WITH copies AS (
	SELECT id, scope_id, stream_id, at, %s AS relay FROM sends WHERE at >= ?1 AND at < ?2
), fate AS (
	SELECT e.send_id,
		max(e.type = 'delivered') AS delivered,
		max(e.type = 'deferred') AS deferred,
		max(e.type = 'bounced' AND e.hard) AS hard,
		max(e.type = 'bounced' AND e.hard AND e.reason = 'userunknown') AS unknown,
		max(e.type = 'bounced' AND NOT e.hard) AS soft,
		max(e.type = 'sender-problem') AS problem,
		max(e.type = 'complaint' AND e.feedback_type != 'not-spam') AS complaint,
		max(e.type = 'unsubscribe') AS unsub
	FROM copies c CROSS JOIN events e ON e.send_id = c.id
	GROUP BY e.send_id
)
SELECT c.relay, sc.name, st.name, %s AS bucket, count(*),
	coalesce(sum(f.delivered), 0), coalesce(sum(f.deferred), 0), coalesce(sum(f.hard), 0), coalesce(sum(f.unknown), 0),
	coalesce(sum(f.soft), 0), coalesce(sum(f.problem), 0), coalesce(sum(f.complaint), 0), coalesce(sum(f.unsub), 0)
FROM copies c
JOIN names sc ON sc.id = c.scope_id
JOIN names st ON st.id = c.stream_id
LEFT JOIN fate f ON f.send_id = c.id
GROUP BY c.relay, c.scope_id, c.stream_id, bucket
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
	relay, bucket := "''", "c.at / 86400"
	if byRelay {
		relay = "relay"
	}
	if whole {
		bucket = "0"
	}
	rows, err := d.r.QueryContext(ctx, fmt.Sprintf(sendDaysSQL, relay, bucket), since.Unix(), until.Unix())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: send days: %w", err)
	}
	defer rows.Close()
	var out []store.DayCount
	for rows.Next() {
		var c store.DayCount
		var day int64
		if err := rows.Scan(&c.Relay, &c.Scope, &c.Stream, &day, &c.Sent, &c.Delivered, &c.Deferred, &c.HardBounced,
			&c.UnknownUser, &c.SoftBounced, &c.SenderProblem, &c.Complaints, &c.Unsubscribes); err != nil {
			return nil, fmt.Errorf("sqlitestore: send days: %w", err)
		}
		c.Day = time.Unix(day*86400, 0).UTC()
		if whole {
			c.Day = since.UTC()
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// BounceReasons implements store.Store.
func (d *DB) BounceReasons(ctx context.Context, since, until time.Time) ([]store.ReasonCount, error) {
	rows, err := d.r.QueryContext(ctx, `
SELECT sc.name, e.reason, e.hard, count(DISTINCT e.send_id)
FROM events e JOIN sends s ON s.id = e.send_id JOIN names sc ON sc.id = s.scope_id
WHERE e.type = 'bounced' AND s.at >= ? AND s.at < ?
GROUP BY s.scope_id, e.reason, e.hard
ORDER BY 4 DESC, sc.name, e.reason`, since.Unix(), until.Unix())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: bounce reasons: %w", err)
	}
	defer rows.Close()
	var out []store.ReasonCount
	for rows.Next() {
		var r store.ReasonCount
		if err := rows.Scan(&r.Scope, &r.Reason, &r.Hard, &r.Count); err != nil {
			return nil, fmt.Errorf("sqlitestore: bounce reasons: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SenderProblems implements store.Store.
func (d *DB) SenderProblems(ctx context.Context, since, until time.Time) ([]store.ProblemCount, error) {
	rows, err := d.r.QueryContext(ctx, `
SELECT sc.name, e.address, e.at, e.diagnostic
FROM events e JOIN sends s ON s.id = e.send_id JOIN names sc ON sc.id = s.scope_id
WHERE e.type = 'sender-problem' AND s.at >= ? AND s.at < ?
ORDER BY e.id`, since.Unix(), until.Unix())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: sender problems: %w", err)
	}
	defer rows.Close()
	type key struct{ scope, domain string }
	byKey := map[key]*store.ProblemCount{}
	for rows.Next() {
		var scope, address, diag string
		var at int64
		if err := rows.Scan(&scope, &address, &at, &diag); err != nil {
			return nil, fmt.Errorf("sqlitestore: sender problems: %w", err)
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
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: sender problems: %w", err)
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

// CountEvents implements store.Store.
func (d *DB) CountEvents(ctx context.Context, afterID int64) ([]store.EventCount, int64, error) {
	// Fix the upper bound first, so that the counts and the returned id
	// describe the same events even while others are being recorded.
	var last int64
	if err := d.r.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&last); err != nil {
		return nil, 0, fmt.Errorf("sqlitestore: count events: %w", err)
	}
	if last <= afterID {
		return nil, afterID, nil
	}
	rows, err := d.r.QueryContext(ctx, `
SELECT e.type, e.reason, coalesce(sc.name, ''), count(*)
FROM events e LEFT JOIN names sc ON sc.id = e.scope_id
WHERE e.id > ? AND e.id <= ?
GROUP BY e.type, e.reason, e.scope_id`, afterID, last)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitestore: count events: %w", err)
	}
	defer rows.Close()
	var out []store.EventCount
	for rows.Next() {
		var c store.EventCount
		if err := rows.Scan(&c.Type, &c.Reason, &c.Scope, &c.Count); err != nil {
			return nil, 0, fmt.Errorf("sqlitestore: count events: %w", err)
		}
		out = append(out, c)
	}
	return out, last, rows.Err()
}
