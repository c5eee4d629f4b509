package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/store"
)

// lookupSQL finds the entry in force covering a recipient: $1 scope id,
// $2 the AllScopes id, $3 address, $4 its domain pattern, $5 stream id
// (0 when unknown), $6 now. Preference: exact address, own scope, own
// stream.
const lookupSQL = `SELECT scope_id, address, stream_id, reason, created, expires, times, event_id
FROM suppressions
WHERE scope_id IN ($1, $2) AND address IN ($3, $4) AND stream_id IN (0, $5)
	AND (expires IS NULL OR expires > $6)
ORDER BY address = $3 DESC, scope_id = $1 DESC, stream_id DESC
LIMIT 1`

// nullIDOr returns id, or an id no row has.
func nullIDOr(id uint32, ok bool) int64 {
	if !ok {
		return -1
	}
	return int64(id)
}

// Lookup implements store.Store.
func (d *DB) Lookup(ctx context.Context, q store.Query) (store.Suppression, bool, error) {
	sc, okScope, err := d.findID(ctx, store.ScopeName, q.Scope)
	if err != nil {
		return store.Suppression{}, false, err
	}
	all, okAll, err := d.findID(ctx, store.ScopeName, store.AllScopes)
	if err != nil {
		return store.Suppression{}, false, err
	}
	if !okScope && !okAll {
		return store.Suppression{}, false, nil
	}
	var st uint32
	if q.Stream != "" {
		id, ok, err := d.findID(ctx, store.StreamName, q.Stream)
		if err != nil {
			return store.Suppression{}, false, err
		}
		if ok {
			st = id
		}
	}
	var (
		scopeID, streamID int32
		s                 store.Suppression
		created           int64
		times             int32
		expires           *int64
	)
	err = d.retry(ctx, func() error {
		return d.pool.QueryRow(ctx, lookupSQL, nullIDOr(sc, okScope), nullIDOr(all, okAll), q.Address,
			addr.DomainPattern(q.Address), int64(st), q.At.Unix()).
			Scan(&scopeID, &s.Address, &streamID, &s.Reason, &created, &expires, &times, &s.EventID)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Suppression{}, false, nil
	}
	if err != nil {
		return store.Suppression{}, false, d.fail(fmt.Sprintf("look up %s in scope %s", q.Address, q.Scope), err)
	}
	s.Created, s.Times = time.Unix(created, 0).UTC(), int(times)
	if expires != nil {
		s.Expires = time.Unix(*expires, 0).UTC()
	}
	if s.Scope, err = d.Name(ctx, store.ScopeName, uint32(scopeID)); err != nil {
		return store.Suppression{}, false, err
	}
	if streamID != 0 {
		if s.Stream, err = d.Name(ctx, store.StreamName, uint32(streamID)); err != nil {
			return store.Suppression{}, false, err
		}
	}
	return s, true, nil
}

const eventCols = `e.id, e.at, e.type, COALESCE(esc.name, ''), COALESCE(est.name, ''), e.address, COALESCE(e.send_id, 0),
	e.reason, e.hard, e.status, e.reply_code, e.diagnostic, e.feedback_type, e.reporting_mta, e.source, COALESCE(e.key, ''), e.relay`

const eventJoins = ` LEFT JOIN names esc ON esc.id = e.scope_id LEFT JOIN names est ON est.id = e.stream_id`

// eventScan holds an event row's columns that need converting.
type eventScan struct {
	ev       store.Event
	at, send int64
}

func (e *eventScan) dest() []any {
	ev := &e.ev
	return []any{&ev.ID, &e.at, &ev.Type, &ev.Scope, &ev.Stream, &ev.Address, &e.send, &ev.Reason, &ev.Hard,
		&ev.Status, &ev.ReplyCode, &ev.Diagnostic, &ev.FeedbackType, &ev.ReportingMTA, &ev.Source, &ev.Key, &ev.Relay}
}

func (e *eventScan) event() store.Event {
	ev := e.ev
	ev.At, ev.SendID = time.Unix(e.at, 0).UTC(), uint64(e.send)
	return ev
}

// Suppressions implements store.Store.
func (d *DB) Suppressions(ctx context.Context, f store.Filter, fn func(store.Suppression) error) error {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Scope != "" {
		where = append(where, "sc.name = "+arg(f.Scope))
	}
	if f.Reason != "" {
		where = append(where, "s.reason = "+arg(string(f.Reason)))
	}
	if !f.Since.IsZero() {
		where = append(where, "s.created >= "+arg(f.Since.Unix()))
	}
	if f.Address != "" {
		where = append(where, "s.address = "+arg(f.Address))
	}
	if !f.Lapsed {
		at := f.At
		if at.IsZero() {
			at = time.Now()
		}
		where = append(where, "(s.expires IS NULL OR s.expires > "+arg(at.Unix())+")")
	}
	q := `SELECT sc.name, COALESCE(st.name, ''), s.address, s.reason, s.created, s.expires, s.times, s.event_id, ` + eventCols + `
FROM suppressions s JOIN names sc ON sc.id = s.scope_id LEFT JOIN names st ON st.id = s.stream_id
LEFT JOIN events e ON e.id = s.event_id` + eventJoins
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY sc.name, s.address, COALESCE(st.name, '')`
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return d.fail("list suppressions", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s       store.Suppression
			ev      eventScan
			created int64
			times   int32
			expires *int64
		)
		dest := append([]any{&s.Scope, &s.Stream, &s.Address, &s.Reason, &created, &expires, &times, &s.EventID}, ev.dest()...)
		if err := rows.Scan(dest...); err != nil {
			return d.fail("list suppressions", err)
		}
		cause := ev.event()
		s.Created, s.Times, s.Cause = time.Unix(created, 0).UTC(), int(times), &cause
		if expires != nil {
			s.Expires = time.Unix(*expires, 0).UTC()
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.fail("list suppressions", err)
	}
	return nil
}

// Events implements store.Store.
func (d *DB) Events(ctx context.Context, f store.EventFilter, fn func(store.Event) error) error {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Scope != "" {
		where = append(where, "esc.name = "+arg(f.Scope))
	}
	if f.Address != "" {
		where = append(where, "e.address IN ("+arg(f.Address)+", "+arg(addr.DomainPattern(f.Address))+")")
	}
	if f.SendID != 0 {
		where = append(where, "e.send_id = "+arg(int64(f.SendID)))
	}
	lit, isLit := "", false
	if len(f.Types) == 1 {
		lit, isLit = f.Types[0].Literal()
	}
	if isLit {
		// So that PostgreSQL may use the partial index of resumes,
		// which the health check reads every minute.
		where = append(where, "e.type = "+lit)
	} else if len(f.Types) > 0 {
		types := make([]string, len(f.Types))
		for i, t := range f.Types {
			types[i] = string(t)
		}
		where = append(where, "e.type = ANY("+arg(types)+")")
	}
	if !f.Since.IsZero() {
		where = append(where, "e.at >= "+arg(f.Since.Unix()))
	}
	if !f.Until.IsZero() {
		where = append(where, "e.at < "+arg(f.Until.Unix()))
	}
	q := "SELECT " + eventCols + " FROM events e" + eventJoins
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.id"
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return d.fail("list events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev eventScan
		if err := rows.Scan(ev.dest()...); err != nil {
			return d.fail("list events", err)
		}
		if err := fn(ev.event()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.fail("list events", err)
	}
	return nil
}

// ListedSince implements store.Store. Event ids are given in commit order
// (see the package comment), so nothing listed after afterEvent can
// appear later with a smaller id.
func (d *DB) ListedSince(ctx context.Context, afterEvent int64, fn func(address string, eventID int64) error) error {
	rows, err := d.pool.Query(ctx, "SELECT address, event_id FROM suppressions WHERE event_id > $1 ORDER BY event_id", afterEvent)
	if err != nil {
		return d.fail(fmt.Sprintf("list suppressions after event %d", afterEvent), err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		var id int64
		if err := rows.Scan(&a, &id); err != nil {
			return d.fail(fmt.Sprintf("list suppressions after event %d", afterEvent), err)
		}
		if err := fn(a, id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.fail(fmt.Sprintf("list suppressions after event %d", afterEvent), err)
	}
	return nil
}

// CountEvents implements store.Store.
func (d *DB) CountEvents(ctx context.Context, afterID int64) ([]store.EventCount, int64, error) {
	var out []store.EventCount
	var last int64
	err := d.retry(ctx, func() error {
		out = out[:0]
		// Fix the upper bound first, so that the counts and the returned
		// id describe the same events while others are being recorded.
		if err := d.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&last); err != nil {
			return err
		}
		if last <= afterID {
			last = afterID
			return nil
		}
		rows, err := d.pool.Query(ctx, `
SELECT e.type, e.reason, coalesce(sc.name, ''), count(*)
FROM events e LEFT JOIN names sc ON sc.id = e.scope_id
WHERE e.id > $1 AND e.id <= $2
GROUP BY e.type, e.reason, sc.name`, afterID, last)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c store.EventCount
			if err := rows.Scan(&c.Type, &c.Reason, &c.Scope, &c.Count); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, d.fail("count events", err)
	}
	return out, last, nil
}
