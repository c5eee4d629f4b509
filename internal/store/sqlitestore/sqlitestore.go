// Package sqlitestore is the embedded SQLite backend of store.Store.
//
// One file serves the long-running `senderkit serve` and the short
// `senderkit bouncepipe` processes that Postfix starts, all at once. The
// database runs in WAL mode, so readers never wait for writers; every write
// is a BEGIN IMMEDIATE transaction (taking the write lock up front, so two
// writers can never deadlock upgrading a read lock), waits for the lock
// through SQLite's busy handler and, should SQLite still report it busy,
// is retried until the configured timeout. Only after that does a caller
// see an error, and it wraps store.ErrBusy.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/store"
)

// Options configure Open.
type Options struct {
	// BusyTimeout is how long a write waits for another process's lock
	// before failing with store.ErrBusy. Default 5s.
	BusyTimeout time.Duration
	// Synchronous is SQLite's synchronous setting: "full" (default:
	// a committed unsubscribe survives a power cut) or "normal" (faster;
	// survives a crash of the process but not of the machine).
	Synchronous string
	// ReadConns is the number of concurrent readers. Default 4.
	ReadConns int
	// Logger gets one line per migration and per lock retry; nil is
	// silent.
	Logger *slog.Logger
	// Relay is the name the sends, events and throttle state written
	// through this handle carry (store.Store.Relay). Default "".
	Relay string
	// NoMmap reads the file with read(2) only, never memory-mapped (see
	// driverName for what the mapping is for, and its price).
	NoMmap bool
}

// DB is a store.Store on one SQLite file.
type DB struct {
	path    string
	relay   string
	w       *sql.DB // one connection: in-process writers queue here
	r       *sql.DB // readers
	timeout time.Duration
	log     *slog.Logger
	names   nameCache
	lookup  *sql.Stmt
	addSend *sql.Stmt // on w: prepared once, not per transaction
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the store at path and brings its schema
// up to date.
func Open(ctx context.Context, path string, o Options) (*DB, error) {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	syncMode := strings.ToUpper(o.Synchronous)
	switch syncMode {
	case "":
		syncMode = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlitestore: synchronous %q: want full or normal", o.Synchronous)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
		}
	}
	d := &DB{path: path, relay: o.Relay, timeout: o.BusyTimeout, log: o.Logger.With("store", path)}
	driver := driverName
	if o.NoMmap {
		driver = driverNoMmap
	}
	d.names.init()

	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(o.BusyTimeout.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", syncMode)
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	var err error
	// The journal-mode pragma may itself meet a lock on a brand-new file
	// that another process is creating; retry it like any write.
	err = d.retry(ctx, func() error {
		w, err := sql.Open(driver, "file:"+escapePath(path)+"?"+wq.Encode())
		if err != nil {
			return err
		}
		w.SetMaxOpenConns(1)
		w.SetConnMaxLifetime(0)
		if err := w.PingContext(ctx); err != nil {
			w.Close()
			return err
		}
		d.w = w
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := d.migrate(ctx); err != nil {
		d.w.Close()
		return nil, err
	}
	q.Set("_query_only", "true")
	d.r, err = sql.Open(driver, "file:"+escapePath(path)+"?"+q.Encode())
	if err != nil {
		d.w.Close()
		return nil, fmt.Errorf("sqlitestore: open %s for reading: %w", path, err)
	}
	d.r.SetMaxOpenConns(o.ReadConns)
	d.r.SetMaxIdleConns(o.ReadConns)
	d.lookup, err = d.r.PrepareContext(ctx, lookupSQL)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("sqlitestore: prepare lookup: %w", err)
	}
	d.addSend, err = d.w.PrepareContext(ctx, addSendSQL)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("sqlitestore: prepare add send: %w", err)
	}
	return d, nil
}

// driverName is go-sqlite3 with a connect hook that sets what the DSN
// cannot:
//
//   - a 64 MiB page cache per connection (the default is 2 MiB), so that
//     the inner pages of a 10-million-row suppression list stay in memory;
//   - memory-mapped reads of the first mmapSize bytes of the file.
//
// The mapping is what keeps suppression lookups fast on a host that
// reclaims memory proactively (DAMON, as on this project's CI machines):
// such a host pages out file pages that no process maps within seconds
// of their last read, so that with read(2) a lookup at 10 million rows
// waited for the disk often enough to put it in the p99. Mapped pages
// stay resident, and are shared by every connection and process that
// opens the store. The price, as SQLite documents it: a disk that fails
// a read of a mapped page kills the process with SIGBUS instead of
// returning an I/O error. driverNoMmap (Options.NoMmap) reads with
// read(2) only.
const (
	driverName   = "sqlite3_senderkit"
	driverNoMmap = "sqlite3_senderkit_nommap"
)

// mmapSize is how much of the store each connection maps. SQLite clamps
// it to its compiled-in maximum (2 GiB); the rest of a larger file is
// read with read(2).
const mmapSize = 1 << 31

func init() {
	for name, mmap := range map[string]int64{driverName: mmapSize, driverNoMmap: 0} {
		pragmas := fmt.Sprintf("PRAGMA cache_size = -65536; PRAGMA mmap_size = %d", mmap)
		sql.Register(name, &sqlite3.SQLiteDriver{
			ConnectHook: func(c *sqlite3.SQLiteConn) error {
				_, err := c.Exec(pragmas, nil)
				return err
			},
		})
	}
}

func escapePath(p string) string {
	return strings.NewReplacer("?", "%3f", "#", "%23").Replace(p)
}

// Path returns the database file name.
func (d *DB) Path() string { return d.path }

// Relay implements store.Store.
func (d *DB) Relay() string { return d.relay }

// Close releases the database.
func (d *DB) Close() error {
	var errs []error
	if d.lookup != nil {
		errs = append(errs, d.lookup.Close())
	}
	if d.addSend != nil {
		errs = append(errs, d.addSend.Close())
	}
	if d.r != nil {
		errs = append(errs, d.r.Close())
	}
	if d.w != nil {
		errs = append(errs, d.w.Close())
	}
	return errors.Join(errs...)
}

func (d *DB) migrate(ctx context.Context) error {
	// Most opens find the schema current: check with a plain read, so
	// that the many short bounce pipes do not each take the write lock.
	var v int
	err := d.retry(ctx, func() error { return d.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v) })
	if err != nil {
		return fmt.Errorf("sqlitestore: read schema version of %s: %w", d.path, err)
	}
	if v == len(migrations) {
		return nil
	}
	return d.write(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return fmt.Errorf("sqlitestore: read schema version: %w", err)
		}
		if v > len(migrations) {
			return fmt.Errorf("sqlitestore: %s has schema version %d, newer than this senderkit knows (%d)", d.path, v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("sqlitestore: migrate %s to version %d: %w", d.path, i+1, err)
			}
			d.log.Info("store schema migrated", "version", i+1)
		}
		if v < len(migrations) {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
				return fmt.Errorf("sqlitestore: set schema version: %w", err)
			}
		}
		return nil
	})
}

// isBusy reports whether err is SQLite saying another connection holds
// a lock.
func isBusy(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return false
}

// retry runs f until it succeeds, fails with something other than a busy
// lock, or the busy timeout passes.
func (d *DB) retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(d.timeout)
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !isBusy(err) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %s stayed locked by another writer for more than %v: %v", store.ErrBusy, d.path, d.timeout, err)
		}
		d.log.Debug("store locked, retrying", "attempt", attempt, "err", err)
		pause := time.Duration(5+rand.IntN(20)) * time.Millisecond
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqlitestore: %w while waiting for a lock on %s", ctx.Err(), d.path)
		case <-time.After(pause):
		}
	}
}

// write runs f in a write transaction, retrying the whole transaction
// while the database is locked. f must be safe to run again.
func (d *DB) write(ctx context.Context, f func(tx *sql.Tx) error) error {
	return d.retry(ctx, func() error {
		tx, err := d.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := f(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

// nameCache maps names to ids and back. Only ids known to be committed
// are cached; a miss goes to the database.
type nameCache struct {
	mu   sync.RWMutex
	ids  map[store.NameKind]map[string]uint32
	byID map[uint32]string
}

func (c *nameCache) init() {
	c.ids = map[store.NameKind]map[string]uint32{store.ScopeName: {}, store.StreamName: {}}
	c.byID = map[uint32]string{}
}

func (c *nameCache) get(kind store.NameKind, name string) (uint32, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.ids[kind][name]
	return id, ok
}

func (c *nameCache) name(id uint32) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.byID[id]
	return n, ok
}

func (c *nameCache) put(kind store.NameKind, name string, id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids[kind][name] = id
	c.byID[id] = name
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// findID looks a name up without creating it.
func (d *DB) findID(ctx context.Context, q queryer, kind store.NameKind, name string) (uint32, bool, error) {
	if id, ok := d.names.get(kind, name); ok {
		return id, true, nil
	}
	var id uint32
	err := q.QueryRowContext(ctx, "SELECT id FROM names WHERE kind = ? AND name = ?", int(kind), name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("sqlitestore: look up %v %q: %w", kind, name, err)
	}
	d.names.put(kind, name, id)
	return id, true, nil
}

// pendingNames collects names created inside a transaction, to be cached
// once it commits.
type pendingNames []struct {
	kind store.NameKind
	name string
	id   uint32
}

// idTx returns the id of name, creating it inside tx.
func (d *DB) idTx(ctx context.Context, tx *sql.Tx, kind store.NameKind, name string, pend *pendingNames) (uint32, error) {
	if err := checkName(kind, name); err != nil {
		return 0, err
	}
	if id, ok := d.names.get(kind, name); ok {
		return id, nil
	}
	var id uint32
	err := tx.QueryRowContext(ctx, "SELECT id FROM names WHERE kind = ? AND name = ?", int(kind), name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, "INSERT INTO names (kind, name) VALUES (?, ?) RETURNING id", int(kind), name).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: intern %v %q: %w", kind, name, err)
	}
	if id > maxNameID {
		return 0, fmt.Errorf("%w: more than %d names", store.ErrInvalid, maxNameID)
	}
	*pend = append(*pend, struct {
		kind store.NameKind
		name string
		id   uint32
	}{kind, name, id})
	return id, nil
}

const maxNameID = 1<<21 - 1 // what a token can carry

func (d *DB) commitNames(p pendingNames) {
	for _, n := range p {
		d.names.put(n.kind, n.name, n.id)
	}
}

func checkName(kind store.NameKind, name string) error {
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\x00\r\n") {
		return fmt.Errorf("%w: %v name %q", store.ErrInvalid, kind, name)
	}
	return nil
}

// ID implements store.Store.
func (d *DB) ID(ctx context.Context, kind store.NameKind, name string) (uint32, error) {
	if id, ok := d.names.get(kind, name); ok {
		return id, nil
	}
	var id uint32
	var pend pendingNames
	err := d.write(ctx, func(tx *sql.Tx) error {
		pend = pend[:0]
		var err error
		id, err = d.idTx(ctx, tx, kind, name, &pend)
		return err
	})
	if err != nil {
		return 0, err
	}
	d.commitNames(pend)
	return id, nil
}

// Name implements store.Store.
func (d *DB) Name(ctx context.Context, kind store.NameKind, id uint32) (string, error) {
	if n, ok := d.names.name(id); ok {
		return n, nil
	}
	var n string
	err := d.r.QueryRowContext(ctx, "SELECT name FROM names WHERE kind = ? AND id = ?", int(kind), id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %v id %d", store.ErrNotFound, kind, id)
	}
	if err != nil {
		return "", fmt.Errorf("sqlitestore: name of %v %d: %w", kind, id, err)
	}
	d.names.put(kind, n, id)
	return n, nil
}

// AddSend implements store.Store.
func (d *DB) AddSend(ctx context.Context, s store.Send) error {
	_, err := d.AddSends(ctx, []store.Send{s}, 0)
	return err
}

// addSendSQL inserts a send unless the key ?8 (when not empty) was
// recorded for the same recipient at or after ?9. (The test that
// message_key is not empty lets SQLite use the partial index on it: it
// cannot tell that a parameter is not empty.)
const addSendSQL = `INSERT INTO sends (id, scope_id, stream_id, recipient, queue_id, at, message_key, relay)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?10
WHERE ?8 = '' OR NOT EXISTS (SELECT 1 FROM sends WHERE message_key = ?8 AND message_key != '' AND recipient = ?4 AND at >= ?9)`

// AddSends implements store.Store.
func (d *DB) AddSends(ctx context.Context, sends []store.Send, window time.Duration) ([]bool, error) {
	for _, s := range sends {
		if s.ID == 0 || s.ID > 1<<63-1 || s.At.IsZero() {
			return nil, fmt.Errorf("%w: send %+v", store.ErrInvalid, s)
		}
	}
	var pend pendingNames
	added := make([]bool, len(sends))
	err := d.write(ctx, func(tx *sql.Tx) error {
		pend = pend[:0]
		ins := tx.StmtContext(ctx, d.addSend)
		defer ins.Close()
		for i, s := range sends {
			sc, err := d.idTx(ctx, tx, store.ScopeName, s.Scope, &pend)
			if err != nil {
				return err
			}
			st, err := d.idTx(ctx, tx, store.StreamName, s.Stream, &pend)
			if err != nil {
				return err
			}
			check := s.MessageKey
			if window <= 0 {
				check = ""
			}
			res, err := ins.ExecContext(ctx, int64(s.ID), sc, st, s.Recipient, s.QueueID, s.At.Unix(), s.MessageKey,
				check, s.At.Add(-window).Unix(), d.relay)
			if isConstraint(err) {
				return fmt.Errorf("%w: send id %d", store.ErrDuplicate, s.ID)
			}
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added[i] = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, wrap("add sends", err)
	}
	d.commitNames(pend)
	return added, nil
}

// SendsByMessageKey implements store.Store.
func (d *DB) SendsByMessageKey(ctx context.Context, key string, since time.Time) ([]store.Send, error) {
	if key == "" {
		return nil, nil
	}
	return d.querySends(ctx, "message key "+key, sendsByKeySQL, key, since.Unix())
}

func isConstraint(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrConstraint
}

// wrap adds context to an error unless it is one of the store's own.
func wrap(op string, err error) error {
	if errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrDuplicate) ||
		errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound) {
		return err
	}
	return fmt.Errorf("sqlitestore: %s: %w", op, err)
}

const sendCols = `s.id, sc.name, st.name, s.recipient, s.queue_id, s.at, s.message_key, s.relay
FROM sends s JOIN names sc ON sc.id = s.scope_id JOIN names st ON st.id = s.stream_id`

// The sends of a queue ID, and of a message key since a time. The tests
// that the value is not empty let SQLite use the partial indexes, which
// leave out empty values: it cannot tell that a parameter is not empty.
const (
	sendsByQueueIDSQL = "SELECT " + sendCols + " WHERE s.queue_id = ? AND s.queue_id != '' ORDER BY s.id"
	sendsByKeySQL     = "SELECT " + sendCols + " WHERE s.message_key = ? AND s.message_key != '' AND s.at >= ? ORDER BY s.id"
)

func scanSend(row interface{ Scan(...any) error }) (store.Send, error) {
	var s store.Send
	var id, at int64
	err := row.Scan(&id, &s.Scope, &s.Stream, &s.Recipient, &s.QueueID, &at, &s.MessageKey, &s.Relay)
	s.ID, s.At = uint64(id), time.Unix(at, 0).UTC()
	return s, err
}

// Send implements store.Store.
func (d *DB) Send(ctx context.Context, id uint64) (store.Send, error) {
	s, err := scanSend(d.r.QueryRowContext(ctx, "SELECT "+sendCols+" WHERE s.id = ?", int64(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Send{}, fmt.Errorf("%w: send %d", store.ErrNotFound, id)
	}
	if err != nil {
		return store.Send{}, fmt.Errorf("sqlitestore: send %d: %w", id, err)
	}
	return s, nil
}

// SendsByQueueID implements store.Store.
func (d *DB) SendsByQueueID(ctx context.Context, qid string) ([]store.Send, error) {
	if qid == "" {
		return nil, nil
	}
	return d.querySends(ctx, "queue id "+qid, sendsByQueueIDSQL, qid)
}

// querySends reads the sends a query selects; what names them in errors.
func (d *DB) querySends(ctx context.Context, what, query string, args ...any) ([]store.Send, error) {
	rows, err := d.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: sends of %s: %w", what, err)
	}
	defer rows.Close()
	var out []store.Send
	for rows.Next() {
		s, err := scanSend(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: sends of %s: %w", what, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

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

func nullID(id uint32, ok bool) any {
	if !ok {
		return nil
	}
	return id
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

func bool01(b bool) int {
	if b {
		return 1
	}
	return 0
}

const insertEventSQL = `INSERT INTO events (at, type, scope_id, stream_id, address, send_id, reason, hard,
	status, reply_code, diagnostic, feedback_type, reporting_mta, source, key, relay)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO NOTHING`

// insertEvent appends ev inside tx; it returns ErrDuplicate when ev.Key
// was seen before.
func (d *DB) insertEvent(ctx context.Context, tx *sql.Tx, ev store.Event, pend *pendingNames) (int64, error) {
	var scope, stream any
	if ev.Scope != "" {
		id, err := d.idTx(ctx, tx, store.ScopeName, ev.Scope, pend)
		if err != nil {
			return 0, err
		}
		scope = id
	}
	if ev.Stream != "" {
		id, err := d.idTx(ctx, tx, store.StreamName, ev.Stream, pend)
		if err != nil {
			return 0, err
		}
		stream = id
	}
	res, err := tx.ExecContext(ctx, insertEventSQL, ev.At.Unix(), string(ev.Type), scope, stream, ev.Address,
		nullSend(ev.SendID), ev.Reason, bool01(ev.Hard), ev.Status, ev.ReplyCode, ev.Diagnostic,
		ev.FeedbackType, ev.ReportingMTA, ev.Source, nullString(ev.Key), d.relay)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, fmt.Errorf("%w: event key %q", store.ErrDuplicate, ev.Key)
	}
	return res.LastInsertId()
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
	var res store.Result
	var pend pendingNames
	err := d.write(ctx, func(tx *sql.Tx) error {
		res, pend = store.Result{}, pend[:0]
		id, err := d.insertEvent(ctx, tx, ev, &pend)
		if err != nil {
			return err
		}
		res.EventID = id
		switch ch.Op {
		case store.Suppress:
			return d.suppressTx(ctx, tx, ev.At, id, ch, &res, &pend)
		case store.Unsuppress:
			return d.unsuppressTx(ctx, tx, ch, &res)
		case store.CountSoftBounce:
			return d.softBounceTx(ctx, tx, ev, id, ch, &res, &pend)
		case store.ResetStreak:
			return d.resetStreakTx(ctx, tx, ev, ch, &res)
		case store.PauseScope:
			return d.pauseTx(ctx, tx, id, ch, &res, &pend)
		case store.ResumeScope:
			return d.resumeTx(ctx, tx, ch, &res)
		}
		return nil
	})
	if err != nil {
		return store.Result{}, wrap("record event", err)
	}
	d.commitNames(pend)
	return res, nil
}

func streamID(ctx context.Context, d *DB, tx *sql.Tx, stream string, pend *pendingNames) (uint32, error) {
	if stream == "" {
		return 0, nil
	}
	return d.idTx(ctx, tx, store.StreamName, stream, pend)
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

func (d *DB) suppressTx(ctx context.Context, tx *sql.Tx, at time.Time, eventID int64, ch store.Change, res *store.Result, pend *pendingNames) error {
	sc, err := d.idTx(ctx, tx, store.ScopeName, ch.Scope, pend)
	if err != nil {
		return err
	}
	st, err := streamID(ctx, d, tx, ch.Stream, pend)
	if err != nil {
		return err
	}
	var old struct {
		reason         string
		created, times int64
		expires        sql.NullInt64
		event          int64
	}
	err = tx.QueryRowContext(ctx, "SELECT reason, created, expires, times, event_id FROM suppressions WHERE scope_id = ? AND address = ? AND stream_id = ?",
		sc, ch.Address, st).Scan(&old.reason, &old.created, &old.expires, &old.times, &old.event)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	e := store.Suppression{Scope: ch.Scope, Stream: ch.Stream, Address: ch.Address}
	if found {
		e.Reason, e.Created, e.Times, e.EventID = store.Reason(old.reason), time.Unix(old.created, 0).UTC(), int(old.times), old.event
		if old.expires.Valid {
			e.Expires = time.Unix(old.expires.Int64, 0).UTC()
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
	var expires any
	if !e.Expires.IsZero() {
		expires = e.Expires.Unix()
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO suppressions (scope_id, address, stream_id, reason, created, expires, times, event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (scope_id, address, stream_id) DO UPDATE SET
	reason = excluded.reason, created = excluded.created, expires = excluded.expires,
	times = excluded.times, event_id = excluded.event_id`,
		sc, e.Address, st, string(e.Reason), e.Created.Unix(), expires, e.Times, e.EventID)
	if err != nil {
		return err
	}
	res.Changed, res.Entry = true, e
	return nil
}

func (d *DB) unsuppressTx(ctx context.Context, tx *sql.Tx, ch store.Change, res *store.Result) error {
	sc, ok, err := d.findID(ctx, tx, store.ScopeName, ch.Scope)
	if err != nil || !ok {
		return err
	}
	var st uint32
	if ch.Stream != "" {
		st, ok, err = d.findID(ctx, tx, store.StreamName, ch.Stream)
		if err != nil || !ok {
			return err
		}
	}
	r, err := tx.ExecContext(ctx, "DELETE FROM suppressions WHERE scope_id = ? AND address = ? AND stream_id = ?", sc, ch.Address, st)
	if err != nil {
		return err
	}
	n, _ := r.RowsAffected()
	res.Changed = n > 0
	return nil
}

func (d *DB) softBounceTx(ctx context.Context, tx *sql.Tx, ev store.Event, eventID int64, ch store.Change, res *store.Result, pend *pendingNames) error {
	sc, err := d.idTx(ctx, tx, store.ScopeName, ch.Scope, pend)
	if err != nil {
		return err
	}
	// This send's own delivery did not deliver after all: what it ended
	// is the streak again.
	_, err = tx.ExecContext(ctx, "UPDATE bounce_streaks SET reset_by = NULL WHERE scope_id = ? AND address = ? AND reset_by = ?",
		sc, ch.Address, int64(ev.SendID))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO bounce_streaks (scope_id, address, send_id, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
		sc, ch.Address, int64(ev.SendID), ev.At.Unix())
	if err != nil {
		return err
	}
	var n int
	var first, last int64
	err = tx.QueryRowContext(ctx, "SELECT count(*), coalesce(min(at), 0), coalesce(max(at), 0) FROM bounce_streaks WHERE scope_id = ? AND address = ? AND reset_by IS NULL", sc, ch.Address).
		Scan(&n, &first, &last)
	if err != nil {
		return err
	}
	res.Streak = store.Streak{Sends: n, First: time.Unix(first, 0).UTC(), Last: time.Unix(last, 0).UTC()}
	if n < ch.MinBounces || time.Duration(last-first)*time.Second < ch.MinSpan {
		return nil
	}
	sup := ch
	sup.Op, sup.Reason = store.Suppress, store.SoftBounce
	return d.suppressTx(ctx, tx, ev.At, eventID, sup, res, pend)
}

// resetStreakTx ends the streak with the delivery of send ev.SendID: its
// sends are marked as ended by that one (see migration 8), which takes
// over the marks of earlier deliveries too.
func (d *DB) resetStreakTx(ctx context.Context, tx *sql.Tx, ev store.Event, ch store.Change, res *store.Result) error {
	sc, ok, err := d.findID(ctx, tx, store.ScopeName, ch.Scope)
	if err != nil || !ok {
		return err
	}
	r, err := tx.ExecContext(ctx, "UPDATE bounce_streaks SET reset_by = ? WHERE scope_id = ? AND address = ? AND reset_by IS NULL",
		int64(ev.SendID), sc, ch.Address)
	if err != nil {
		return err
	}
	n, _ := r.RowsAffected()
	res.Changed = n > 0
	_, err = tx.ExecContext(ctx, "UPDATE bounce_streaks SET reset_by = ? WHERE scope_id = ? AND address = ? AND reset_by IS NOT NULL",
		int64(ev.SendID), sc, ch.Address)
	return err
}

// pauseTx puts ch.Scope on hold with event eventID as the cause, unless
// it is on hold already (the first cause is kept).
func (d *DB) pauseTx(ctx context.Context, tx *sql.Tx, eventID int64, ch store.Change, res *store.Result, pend *pendingNames) error {
	sc, err := d.idTx(ctx, tx, store.ScopeName, ch.Scope, pend)
	if err != nil {
		return err
	}
	r, err := tx.ExecContext(ctx, "INSERT INTO pauses (scope_id, event_id) VALUES (?, ?) ON CONFLICT (scope_id) DO NOTHING", sc, eventID)
	if err != nil {
		return err
	}
	n, _ := r.RowsAffected()
	res.Changed = n > 0
	return nil
}

func (d *DB) resumeTx(ctx context.Context, tx *sql.Tx, ch store.Change, res *store.Result) error {
	sc, ok, err := d.findID(ctx, tx, store.ScopeName, ch.Scope)
	if err != nil || !ok {
		return err
	}
	r, err := tx.ExecContext(ctx, "DELETE FROM pauses WHERE scope_id = ?", sc)
	if err != nil {
		return err
	}
	n, _ := r.RowsAffected()
	res.Changed = n > 0
	return nil
}

// Import implements store.Store.
func (d *DB) Import(ctx context.Context, entries []store.Suppression, at time.Time) (int, error) {
	for _, e := range entries {
		if e.Scope == "" || e.Address == "" || !e.Reason.Valid() || e.Created.IsZero() {
			return 0, fmt.Errorf("%w: import entry %+v", store.ErrInvalid, e)
		}
	}
	var added int
	var pend pendingNames
	err := d.write(ctx, func(tx *sql.Tx) error {
		added, pend = 0, pend[:0]
		ins, err := tx.PrepareContext(ctx, `INSERT INTO suppressions (scope_id, address, stream_id, reason, created, expires, times, event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		evs, err := tx.PrepareContext(ctx, insertEventSQL)
		if err != nil {
			return err
		}
		defer evs.Close()
		for _, e := range entries {
			sc, err := d.idTx(ctx, tx, store.ScopeName, e.Scope, &pend)
			if err != nil {
				return err
			}
			st, err := streamID(ctx, d, tx, e.Stream, &pend)
			if err != nil {
				return err
			}
			var cause store.Event
			if e.Cause != nil {
				cause = *e.Cause
			}
			r, err := evs.ExecContext(ctx, at.Unix(), string(store.Imported), sc, nullID(st, st != 0), e.Address, nil,
				string(e.Reason), 0, "", "", cause.Diagnostic, "", "", cause.Source, nil, d.relay)
			if err != nil {
				return err
			}
			evID, err := r.LastInsertId()
			if err != nil {
				return err
			}
			var expires any
			if !e.Expires.IsZero() {
				expires = e.Expires.Unix()
			}
			times := max(e.Times, 1)
			r, err = ins.ExecContext(ctx, sc, e.Address, st, string(e.Reason), e.Created.Unix(), expires, times, evID)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n > 0 {
				added++
			}
		}
		return nil
	})
	if err != nil {
		return 0, wrap("import", err)
	}
	d.commitNames(pend)
	return added, nil
}

// lookupSQL finds the entries in force covering a recipient: ?1 scope id,
// ?2 the AllScopes id, ?3 address, ?4 its domain pattern, ?5 stream id
// (0 when unknown), ?6 now. It is four searches of the primary key, one
// per (scope, address) pair, and Lookup picks the preferred row itself.
// It has no IN list and no ORDER BY on purpose: SQLite builds a temporary
// B-tree for either, with its own page cache, on every run; freeing that
// made glibc trim and refault the heap several times per lookup, which
// was most of the lookup's p99 at 10 million rows. (The + keeps
// stream_id out of the key search, where SQLite would turn the OR into an
// IN list.)
const lookupSQL = `SELECT scope_id, address, stream_id, reason, created, expires, times, event_id
FROM suppressions WHERE scope_id = ?1 AND address = ?3 AND (+stream_id = 0 OR +stream_id = ?5) AND (expires IS NULL OR expires > ?6)
UNION ALL
SELECT scope_id, address, stream_id, reason, created, expires, times, event_id
FROM suppressions WHERE scope_id = ?2 AND address = ?3 AND (+stream_id = 0 OR +stream_id = ?5) AND (expires IS NULL OR expires > ?6)
UNION ALL
SELECT scope_id, address, stream_id, reason, created, expires, times, event_id
FROM suppressions WHERE scope_id = ?1 AND address = ?4 AND (+stream_id = 0 OR +stream_id = ?5) AND (expires IS NULL OR expires > ?6)
UNION ALL
SELECT scope_id, address, stream_id, reason, created, expires, times, event_id
FROM suppressions WHERE scope_id = ?2 AND address = ?4 AND (+stream_id = 0 OR +stream_id = ?5) AND (expires IS NULL OR expires > ?6)`

// lookupRow is one row of lookupSQL.
type lookupRow struct {
	scopeID, streamID uint32
	address, reason   string
	created, times    int64
	expires           sql.NullInt64
	eventID           int64
}

// better reports whether r is preferred to o for a lookup of address in
// scope sc: the exact address over its domain, the scope's own entry over
// one for all scopes, a stream's own entry over the whole scope's.
func (r *lookupRow) better(o *lookupRow, address string, sc uint32) bool {
	if (r.address == address) != (o.address == address) {
		return r.address == address
	}
	if (r.scopeID == sc) != (o.scopeID == sc) {
		return r.scopeID == sc
	}
	return r.streamID > o.streamID
}

// Lookup implements store.Store.
func (d *DB) Lookup(ctx context.Context, q store.Query) (store.Suppression, bool, error) {
	sc, okScope, err := d.findID(ctx, d.r, store.ScopeName, q.Scope)
	if err != nil {
		return store.Suppression{}, false, err
	}
	all, okAll, err := d.findID(ctx, d.r, store.ScopeName, store.AllScopes)
	if err != nil {
		return store.Suppression{}, false, err
	}
	if !okScope && !okAll {
		return store.Suppression{}, false, nil // nothing was ever listed for this scope
	}
	var st uint32
	if q.Stream != "" {
		id, ok, err := d.findID(ctx, d.r, store.StreamName, q.Stream)
		if err != nil {
			return store.Suppression{}, false, err
		}
		if ok {
			st = id
		}
	}
	fail := func(err error) (store.Suppression, bool, error) {
		return store.Suppression{}, false, fmt.Errorf("sqlitestore: look up %s in scope %s: %w", q.Address, q.Scope, err)
	}
	rows, err := d.lookup.QueryContext(ctx, nullIDOr(sc, okScope), nullIDOr(all, okAll), q.Address,
		addr.DomainPattern(q.Address), st, q.At.Unix())
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var best, r lookupRow
	found := false
	for rows.Next() {
		if err := rows.Scan(&r.scopeID, &r.address, &r.streamID, &r.reason, &r.created, &r.expires, &r.times, &r.eventID); err != nil {
			return fail(err)
		}
		if !found || r.better(&best, q.Address, sc) {
			best, found = r, true
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if !found {
		return store.Suppression{}, false, nil
	}
	s := store.Suppression{Address: best.address, Reason: store.Reason(best.reason), EventID: best.eventID,
		Created: time.Unix(best.created, 0).UTC(), Times: int(best.times)}
	if best.expires.Valid {
		s.Expires = time.Unix(best.expires.Int64, 0).UTC()
	}
	if s.Scope, err = d.Name(ctx, store.ScopeName, best.scopeID); err != nil {
		return store.Suppression{}, false, err
	}
	if best.streamID != 0 {
		if s.Stream, err = d.Name(ctx, store.StreamName, best.streamID); err != nil {
			return store.Suppression{}, false, err
		}
	}
	return s, true, nil
}

// nullIDOr returns id, or an id no row has.
func nullIDOr(id uint32, ok bool) int64 {
	if !ok {
		return -1
	}
	return int64(id)
}

const eventCols = `e.id, e.at, e.type, COALESCE(esc.name, ''), COALESCE(est.name, ''), e.address, COALESCE(e.send_id, 0),
	e.reason, e.hard, e.status, e.reply_code, e.diagnostic, e.feedback_type, e.reporting_mta, e.source, COALESCE(e.key, ''),
	COALESCE(e.relay, '')`

const eventJoins = ` LEFT JOIN names esc ON esc.id = e.scope_id LEFT JOIN names est ON est.id = e.stream_id`

func eventDest(ev *store.Event, at, send *int64, hard *int) []any {
	return []any{&ev.ID, at, &ev.Type, &ev.Scope, &ev.Stream, &ev.Address, send, &ev.Reason, hard,
		&ev.Status, &ev.ReplyCode, &ev.Diagnostic, &ev.FeedbackType, &ev.ReportingMTA, &ev.Source, &ev.Key, &ev.Relay}
}

func finishEvent(ev *store.Event, at, send int64, hard int) {
	ev.At, ev.SendID, ev.Hard = time.Unix(at, 0).UTC(), uint64(send), hard != 0
}

// Suppressions implements store.Store.
func (d *DB) Suppressions(ctx context.Context, f store.Filter, fn func(store.Suppression) error) error {
	var where []string
	var args []any
	if f.Scope != "" {
		where = append(where, "sc.name = ?")
		args = append(args, f.Scope)
	}
	if f.Reason != "" {
		where = append(where, "s.reason = ?")
		args = append(args, string(f.Reason))
	}
	if !f.Since.IsZero() {
		where = append(where, "s.created >= ?")
		args = append(args, f.Since.Unix())
	}
	if f.Address != "" {
		where = append(where, "s.address = ?")
		args = append(args, f.Address)
	}
	if !f.Lapsed {
		at := f.At
		if at.IsZero() {
			at = time.Now()
		}
		where = append(where, "(s.expires IS NULL OR s.expires > ?)")
		args = append(args, at.Unix())
	}
	q := `SELECT sc.name, COALESCE(st.name, ''), s.address, s.reason, s.created, s.expires, s.times, s.event_id, ` + eventCols + `
FROM suppressions s JOIN names sc ON sc.id = s.scope_id LEFT JOIN names st ON st.id = s.stream_id
LEFT JOIN events e ON e.id = s.event_id` + eventJoins
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY sc.name, s.address, COALESCE(st.name, '')"
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlitestore: list suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s              store.Suppression
			ev             store.Event
			created, times int64
			expires        sql.NullInt64
			at, send       int64
			hard           int
		)
		dest := append([]any{&s.Scope, &s.Stream, &s.Address, &s.Reason, &created, &expires, &times, &s.EventID},
			eventDest(&ev, &at, &send, &hard)...)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("sqlitestore: list suppressions: %w", err)
		}
		finishEvent(&ev, at, send, hard)
		s.Created, s.Times, s.Cause = time.Unix(created, 0).UTC(), int(times), &ev
		if expires.Valid {
			s.Expires = time.Unix(expires.Int64, 0).UTC()
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: list suppressions: %w", err)
	}
	return nil
}

// eventsQuery returns the query and arguments of Events for f.
func eventsQuery(f store.EventFilter) (string, []any) {
	var where []string
	var args []any
	if f.Scope != "" {
		where = append(where, "esc.name = ?")
		args = append(args, f.Scope)
	}
	if f.Address != "" {
		where = append(where, "e.address IN (?, ?)")
		args = append(args, f.Address, addr.DomainPattern(f.Address))
	}
	if f.SendID != 0 {
		where = append(where, "e.send_id = ?")
		args = append(args, int64(f.SendID))
	}
	lit, isLit := "", false
	if len(f.Types) == 1 {
		lit, isLit = f.Types[0].Literal()
	}
	switch {
	case isLit:
		// So that SQLite may use the partial index of resumes, which
		// the health check reads every minute.
		where = append(where, "e.type = "+lit)
	case len(f.Types) > 0:
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(f.Types)), ", ")
		where = append(where, "e.type IN ("+ph+")")
		for _, t := range f.Types {
			args = append(args, string(t))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "e.at >= ?")
		args = append(args, f.Since.Unix())
	}
	if !f.Until.IsZero() {
		where = append(where, "e.at < ?")
		args = append(args, f.Until.Unix())
	}
	q := "SELECT " + eventCols + " FROM events e" + eventJoins
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.id"
	return q, args
}

// Events implements store.Store.
func (d *DB) Events(ctx context.Context, f store.EventFilter, fn func(store.Event) error) error {
	q, args := eventsQuery(f)
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlitestore: list events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev store.Event
		var at, send int64
		var hard int
		if err := rows.Scan(eventDest(&ev, &at, &send, &hard)...); err != nil {
			return fmt.Errorf("sqlitestore: list events: %w", err)
		}
		finishEvent(&ev, at, send, hard)
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: list events: %w", err)
	}
	return nil
}
