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

func checkEvent(ev store.Event) error {
	if ev.Type == "" || ev.At.IsZero() {
		return fmt.Errorf("%w: event without type or time", store.ErrInvalid)
	}
	if ev.SendID > 1<<63-1 {
		return fmt.Errorf("%w: send id %d", store.ErrInvalid, ev.SendID)
	}
	return nil
}

func checkChange(ch store.Change) error {
	switch ch.Op {
	case store.NoOp:
		return nil
	case store.PauseScope, store.ResumeScope:
		// A pause is a scope's: there is no pause of every scope.
		if ch.Scope == "" || ch.Scope == store.AllScopes {
			return fmt.Errorf("%w: pause or resume of scope %q", store.ErrInvalid, ch.Scope)
		}
		return nil
	case store.Suppress:
		if !ch.Reason.Valid() {
			return fmt.Errorf("%w: suppression reason %q", store.ErrInvalid, ch.Reason)
		}
	case store.Unsuppress, store.ResetStreak:
	case store.CountSoftBounce:
		if ch.MinBounces < 1 || ch.MinSpan < 0 {
			return fmt.Errorf("%w: soft-bounce thresholds %d sends, %v", store.ErrInvalid, ch.MinBounces, ch.MinSpan)
		}
	default:
		return fmt.Errorf("%w: op %d", store.ErrInvalid, ch.Op)
	}
	if ch.Scope == "" {
		return fmt.Errorf("%w: change without a scope", store.ErrInvalid)
	}
	if ch.Address == "" || (!addr.IsDomainPattern(ch.Address) && !strings.Contains(ch.Address, "@")) {
		return fmt.Errorf("%w: address %q", store.ErrInvalid, ch.Address)
	}
	if ch.TTL < 0 || ch.MaxTTL < 0 {
		return fmt.Errorf("%w: negative TTL", store.ErrInvalid)
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullSend(id uint64) any {
	if id == 0 {
		return nil
	}
	return int64(id)
}

// nullName is a name id for a nullable column: nil for none.
func nullName(id uint32, ok bool) any {
	if !ok {
		return nil
	}
	return int64(id)
}

const insertEventSQL = `INSERT INTO events (at, type, scope_id, stream_id, address, send_id, reason, hard,
	status, reply_code, diagnostic, feedback_type, reporting_mta, source, key, relay)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (key) DO NOTHING
RETURNING id`

// ids are the name ids a Record needs, interned before its transaction
// (an id, once given, never changes: interning need not be part of it).
type ids struct {
	evScope, evStream uint32
	hasScope, hasStr  bool
	scope, stream     uint32 // the change's; stream 0 for every stream
	found             bool   // the change's names exist (Unsuppress, ResetStreak, ResumeScope)
}

func (d *DB) recordIDs(ctx context.Context, ev store.Event, ch store.Change) (ids, error) {
	var n ids
	var err error
	if ev.Scope != "" {
		if n.evScope, err = d.ID(ctx, store.ScopeName, ev.Scope); err != nil {
			return n, err
		}
		n.hasScope = true
	}
	if ev.Stream != "" {
		if n.evStream, err = d.ID(ctx, store.StreamName, ev.Stream); err != nil {
			return n, err
		}
		n.hasStr = true
	}
	switch ch.Op {
	case store.Suppress, store.CountSoftBounce:
		if n.scope, err = d.ID(ctx, store.ScopeName, ch.Scope); err != nil {
			return n, err
		}
		if ch.Stream != "" {
			if n.stream, err = d.ID(ctx, store.StreamName, ch.Stream); err != nil {
				return n, err
			}
		}
		n.found = true
	case store.PauseScope:
		if n.scope, err = d.ID(ctx, store.ScopeName, ch.Scope); err != nil {
			return n, err
		}
		n.found = true
	case store.ResumeScope:
		// A scope never named was never paused.
		n.scope, n.found, err = d.findID(ctx, store.ScopeName, ch.Scope)
	case store.Unsuppress, store.ResetStreak:
		// Names that were never used have nothing to remove.
		if n.scope, n.found, err = d.findID(ctx, store.ScopeName, ch.Scope); err != nil || !n.found {
			return n, err
		}
		if ch.Stream != "" && ch.Op == store.Unsuppress {
			n.stream, n.found, err = d.findID(ctx, store.StreamName, ch.Stream)
		}
	}
	return n, err
}

// Record implements store.Store.
func (d *DB) Record(ctx context.Context, ev store.Event, ch store.Change) (store.Result, error) {
	if err := checkEvent(ev); err != nil {
		return store.Result{}, err
	}
	if err := checkChange(ch); err != nil {
		return store.Result{}, err
	}
	if ch.Op == store.CountSoftBounce && ev.SendID == 0 {
		return store.Result{}, fmt.Errorf("%w: a soft bounce needs the event's send id", store.ErrInvalid)
	}
	n, err := d.recordIDs(ctx, ev, ch)
	if err != nil {
		return store.Result{}, err
	}
	if ch.Op == store.NoOp || ch.Op == store.ResetStreak {
		res, err := d.appendEvent(ctx, ev, ch, n)
		if err != nil {
			return store.Result{}, d.fail("record event", err)
		}
		return res, nil
	}
	var res store.Result
	err = d.write(ctx, func(tx pgx.Tx) error {
		res = store.Result{}
		if err := lockEventLog(ctx, tx); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, insertEventSQL, ev.At.Unix(), string(ev.Type), nullName(n.evScope, n.hasScope),
			nullName(n.evStream, n.hasStr), ev.Address, nullSend(ev.SendID), ev.Reason, ev.Hard, ev.Status, ev.ReplyCode,
			ev.Diagnostic, ev.FeedbackType, ev.ReportingMTA, ev.Source, nullString(ev.Key), d.relay).Scan(&res.EventID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: event key %q", store.ErrDuplicate, ev.Key)
		}
		if err != nil {
			return err
		}
		switch ch.Op {
		case store.Suppress:
			return d.suppressTx(ctx, tx, ev.At, res.EventID, ch, n, &res)
		case store.Unsuppress:
			return d.unsuppressTx(ctx, tx, ch, n, &res)
		case store.CountSoftBounce:
			return d.softBounceTx(ctx, tx, ev, res.EventID, ch, n, &res)
		case store.PauseScope:
			return d.pauseTx(ctx, tx, res.EventID, n, &res)
		case store.ResumeScope:
			return d.resumeTx(ctx, tx, n, &res)
		}
		return nil
	})
	if err != nil {
		return store.Result{}, d.fail("record event", err)
	}
	return res, nil
}

// appendEventSQL appends an event and, when $17 is true, ends the
// soft-bounce streak of address $19 in scope $18 with the delivery of
// the event's send ($6): its sends are marked as ended by that one (see
// migration 4), which takes over the marks of earlier deliveries too;
// the count is of the sends that were in the streak. The streak is left
// alone when the event's key was taken (no row is returned then).
const appendEventSQL = `WITH ev AS (` + insertEventSQL + `),
reset AS (UPDATE bounce_streaks SET reset_by = coalesce($6, 0) WHERE $17 AND scope_id = $18 AND address = $19 AND reset_by IS NULL
	AND EXISTS (SELECT 1 FROM ev) RETURNING 1),
taken AS (UPDATE bounce_streaks SET reset_by = coalesce($6, 0) WHERE $17 AND scope_id = $18 AND address = $19 AND reset_by IS NOT NULL
	AND EXISTS (SELECT 1 FROM ev) RETURNING 1)
SELECT id, (SELECT count(*) FROM reset) FROM ev`

// appendEvent records an event whose change reads nothing first (NoOp,
// ResetStreak: the log follower's deliveries and deferrals, the bulk of
// the events) in one round trip. The event log's lock and the statement
// go in one pipeline, which PostgreSQL runs as one implicit transaction
// committed at its end, so the lock every appender waits for is held for
// the statement and the commit only, not for a round trip per statement.
// The statement is read committed's own, with a snapshot taken after the
// lock: a streak committed by the appender before is seen and ended.
func (d *DB) appendEvent(ctx context.Context, ev store.Event, ch store.Change, n ids) (store.Result, error) {
	var res store.Result
	err := d.retry(ctx, func() error {
		res = store.Result{}
		b := &pgx.Batch{}
		b.Queue("SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockEvents)
		b.Queue(appendEventSQL, ev.At.Unix(), string(ev.Type), nullName(n.evScope, n.hasScope),
			nullName(n.evStream, n.hasStr), ev.Address, nullSend(ev.SendID), ev.Reason, ev.Hard, ev.Status, ev.ReplyCode,
			ev.Diagnostic, ev.FeedbackType, ev.ReportingMTA, ev.Source, nullString(ev.Key), d.relay,
			ch.Op == store.ResetStreak && n.found, int64(n.scope), ch.Address)
		br := d.pool.SendBatch(ctx, b)
		var ended int64
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&res.EventID, &ended)
		}
		if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
			err = cerr
		}
		res.Changed = ended > 0
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: event key %q", store.ErrDuplicate, ev.Key)
		}
		// The pipeline ends in its implicit commit.
		return afterCommit(err)
	})
	return res, err
}

// ttlFor returns the TTL of the times-th listing: doubled each relisting,
// capped at max.
func ttlFor(ttl, max time.Duration, times int) time.Duration {
	for i := 1; i < times; i++ {
		if max > 0 && ttl >= max/2 || ttl > 1<<61 {
			ttl = max
			break
		}
		ttl *= 2
	}
	if max > 0 && ttl > max {
		ttl = max
	}
	return ttl
}

func (d *DB) suppressTx(ctx context.Context, tx pgx.Tx, at time.Time, eventID int64, ch store.Change, n ids, res *store.Result) error {
	var (
		reason         string
		created, times int64
		expires        *int64
		event          int64
	)
	err := tx.QueryRow(ctx, "SELECT reason, created, expires, times, event_id FROM suppressions WHERE scope_id = $1 AND address = $2 AND stream_id = $3",
		int64(n.scope), ch.Address, int64(n.stream)).Scan(&reason, &created, &expires, &times, &event)
	found := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	e := store.Suppression{Scope: ch.Scope, Stream: ch.Stream, Address: ch.Address}
	if found {
		e.Reason, e.Created, e.Times, e.EventID = store.Reason(reason), time.Unix(created, 0).UTC(), int(times), event
		if expires != nil {
			e.Expires = time.Unix(*expires, 0).UTC()
		}
	}
	active := found && e.Active(at)
	switch {
	case active && (e.Expires.IsZero() || ch.TTL > 0):
		// In force and at least as strong as the new one: keep the
		// original evidence. The event is history all the same.
		res.Entry = e
		return nil
	case active: // a lapsing entry becomes permanent
		e.Expires = time.Time{}
	case found: // lapsed: list again, for longer
		e.Times++
		e.Expires = time.Time{}
		if ch.TTL > 0 {
			e.Expires = at.Add(ttlFor(ch.TTL, ch.MaxTTL, e.Times)).UTC().Truncate(time.Second)
		}
	default:
		e.Times = 1
		if ch.TTL > 0 {
			e.Expires = at.Add(ch.TTL).UTC().Truncate(time.Second)
		}
	}
	e.Reason, e.Created, e.EventID = ch.Reason, at.UTC().Truncate(time.Second), eventID
	var exp any
	if !e.Expires.IsZero() {
		exp = e.Expires.Unix()
	}
	_, err = tx.Exec(ctx, `INSERT INTO suppressions (scope_id, address, stream_id, reason, created, expires, times, event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (scope_id, address, stream_id) DO UPDATE SET
	reason = excluded.reason, created = excluded.created, expires = excluded.expires,
	times = excluded.times, event_id = excluded.event_id`,
		int64(n.scope), e.Address, int64(n.stream), string(e.Reason), e.Created.Unix(), exp, e.Times, e.EventID)
	if err != nil {
		return err
	}
	res.Changed, res.Entry = true, e
	return nil
}

func (d *DB) unsuppressTx(ctx context.Context, tx pgx.Tx, ch store.Change, n ids, res *store.Result) error {
	if !n.found {
		return nil
	}
	ct, err := tx.Exec(ctx, "DELETE FROM suppressions WHERE scope_id = $1 AND address = $2 AND stream_id = $3",
		int64(n.scope), ch.Address, int64(n.stream))
	if err != nil {
		return err
	}
	res.Changed = ct.RowsAffected() > 0
	return nil
}

func (d *DB) softBounceTx(ctx context.Context, tx pgx.Tx, ev store.Event, eventID int64, ch store.Change, n ids, res *store.Result) error {
	// This send's own delivery did not deliver after all: what it ended
	// is the streak again.
	_, err := tx.Exec(ctx, "UPDATE bounce_streaks SET reset_by = NULL WHERE scope_id = $1 AND address = $2 AND reset_by = $3",
		int64(n.scope), ch.Address, int64(ev.SendID))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO bounce_streaks (scope_id, address, send_id, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
		int64(n.scope), ch.Address, int64(ev.SendID), ev.At.Unix())
	if err != nil {
		return err
	}
	var count int
	var first, last int64
	err = tx.QueryRow(ctx, "SELECT count(*), coalesce(min(at), 0), coalesce(max(at), 0) FROM bounce_streaks WHERE scope_id = $1 AND address = $2 AND reset_by IS NULL",
		int64(n.scope), ch.Address).Scan(&count, &first, &last)
	if err != nil {
		return err
	}
	res.Streak = store.Streak{Sends: count, First: time.Unix(first, 0).UTC(), Last: time.Unix(last, 0).UTC()}
	if count < ch.MinBounces || time.Duration(last-first)*time.Second < ch.MinSpan {
		return nil
	}
	sup := ch
	sup.Op, sup.Reason = store.Suppress, store.SoftBounce
	return d.suppressTx(ctx, tx, ev.At, eventID, sup, n, res)
}

// pauseTx puts the change's scope on hold with event eventID as the
// cause, unless it is on hold already (the first cause is kept).
func (d *DB) pauseTx(ctx context.Context, tx pgx.Tx, eventID int64, n ids, res *store.Result) error {
	ct, err := tx.Exec(ctx, "INSERT INTO pauses (scope_id, event_id) VALUES ($1, $2) ON CONFLICT (scope_id) DO NOTHING",
		int64(n.scope), eventID)
	if err != nil {
		return err
	}
	res.Changed = ct.RowsAffected() > 0
	return nil
}

func (d *DB) resumeTx(ctx context.Context, tx pgx.Tx, n ids, res *store.Result) error {
	if !n.found {
		return nil
	}
	ct, err := tx.Exec(ctx, "DELETE FROM pauses WHERE scope_id = $1", int64(n.scope))
	if err != nil {
		return err
	}
	res.Changed = ct.RowsAffected() > 0
	return nil
}

// importSQL appends an Imported event and lists its entry unless the
// address is listed already; it affects one row when the entry was added.
const importSQL = `WITH ev AS (
	INSERT INTO events (at, type, scope_id, stream_id, address, reason, diagnostic, source, relay)
	VALUES ($1, 'imported', $2, $3, $4, $5, $6, $7, $8)
	RETURNING id
)
INSERT INTO suppressions (scope_id, address, stream_id, reason, created, expires, times, event_id)
SELECT $2, $4, $9::integer, $5, $10::bigint, $11::bigint, $12::integer, ev.id FROM ev
ON CONFLICT DO NOTHING`

// Import implements store.Store. The entries go in pipelined batches, in
// one transaction.
func (d *DB) Import(ctx context.Context, entries []store.Suppression, at time.Time) (int, error) {
	for _, e := range entries {
		if e.Scope == "" || e.Address == "" || !e.Reason.Valid() || e.Created.IsZero() {
			return 0, fmt.Errorf("%w: import entry %+v", store.ErrInvalid, e)
		}
	}
	type nid struct {
		scope, stream uint32
	}
	nids := make([]nid, len(entries))
	for i, e := range entries {
		var err error
		if nids[i].scope, err = d.ID(ctx, store.ScopeName, e.Scope); err != nil {
			return 0, err
		}
		if e.Stream != "" {
			if nids[i].stream, err = d.ID(ctx, store.StreamName, e.Stream); err != nil {
				return 0, err
			}
		}
	}
	var added int
	err := d.write(ctx, func(tx pgx.Tx) error {
		added = 0
		if err := lockEventLog(ctx, tx); err != nil {
			return err
		}
		const batch = 1000
		for start := 0; start < len(entries); start += batch {
			b := &pgx.Batch{}
			end := min(start+batch, len(entries))
			for i := start; i < end; i++ {
				e := entries[i]
				var cause store.Event
				if e.Cause != nil {
					cause = *e.Cause
				}
				var exp any
				if !e.Expires.IsZero() {
					exp = e.Expires.Unix()
				}
				b.Queue(importSQL, at.Unix(), int64(nids[i].scope), nullName(nids[i].stream, nids[i].stream != 0), e.Address,
					string(e.Reason), cause.Diagnostic, cause.Source, d.relay, int64(nids[i].stream), e.Created.Unix(), exp, max(e.Times, 1))
			}
			br := tx.SendBatch(ctx, b)
			for i := start; i < end; i++ {
				ct, err := br.Exec()
				if err != nil {
					br.Close()
					return err
				}
				added += int(ct.RowsAffected())
			}
			if err := br.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, d.fail("import", err)
	}
	return added, nil
}
