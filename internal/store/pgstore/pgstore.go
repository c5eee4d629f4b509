// Package pgstore is the PostgreSQL backend of store.Store: the store a
// fleet of Postfix relays shares, so that a bounce taken in by one relay,
// a complaint reaching another and an unsubscribe served by a third stop
// the next send from any of them at once.
//
// It keeps SQLite's semantics (package sqlitestore) under many processes
// on many hosts:
//
//   - Every transaction that appends events (Record, Import) first takes
//     one transaction-level advisory lock and holds it until it commits.
//     Event ids are therefore given, and made visible, in commit order:
//     "the events after id N" (the policy server's suppression filter,
//     the metrics) is a cursor that never skips an event that committed
//     late with a smaller id, as a plain sequence under concurrency
//     would. The same lock makes each Record's read-modify-write of a
//     suppression and of a soft-bounce streak atomic, so no count is lost
//     or doubled whatever the isolation level (READ COMMITTED is used).
//     Sends (the milter's hot path) and names do not take it. A Record
//     whose change reads nothing first (the log follower's deliveries
//     and deferrals) sends the lock and one statement in one pipeline,
//     an implicit transaction, so the lock is held for one round trip.
//   - The idempotency key is a unique column inserted with ON CONFLICT DO
//     NOTHING: the second event with a key changes nothing and gives
//     store.ErrDuplicate.
//   - A name gets its id from one identity column capped at 2^21-1 (what
//     a token carries); a name that two relays intern at once gets one id,
//     the same on every relay.
//   - Migrations run on Open under an advisory lock, so relays started
//     together migrate once.
//
// Failures that pass (the database cannot be reached, a connection was
// lost, the server is shutting down or starting, a lock is not granted
// within the timeout) are retried until Options.Timeout, then reported as
// store.ErrBusy: every plug-in takes that as a temporary failure (the
// milter tempfails, the bounce pipe exits 75, the policy server follows
// policy.on_store_error). The connection pool reconnects by itself when
// the database comes back. A transaction is never retried once its COMMIT
// may have reached the server: a lost reply to COMMIT is reported as
// ErrBusy, and the caller's retry is made harmless by the event key.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/senderkit/senderkit/internal/store"
)

// Options configure Open.
type Options struct {
	// Timeout is how long a call keeps retrying an unreachable database
	// or waiting for a lock before failing with store.ErrBusy. Default 5s.
	Timeout time.Duration
	// MaxConns caps the connection pool. Default 8.
	MaxConns int
	// Relay is the name the sends, events and throttle state written
	// through this handle carry. Default "".
	Relay string
	// Logger gets one line per migration and per retry; nil is silent.
	Logger *slog.Logger
}

// DB is a store.Store on a PostgreSQL database.
type DB struct {
	pool    *pgxpool.Pool
	where   string // host:port/database, for messages (never the password)
	relay   string
	timeout time.Duration
	log     *slog.Logger
	names   nameCache
}

var _ store.Store = (*DB)(nil)

// Advisory lock keys (the two-int4 form, a key space of its own): class
// lockClass, and the object.
const (
	lockClass   = 0x534b5354 // "SKST"
	lockEvents  = 1          // held by every transaction that appends events
	lockMigrate = 2          // held while migrating
	keyClass    = 0x534b4d4b // "SKMK": one lock per message key, hashed
)

// Open connects to the database dsn names ("postgres://user@host/db" or
// "host=... dbname=..."), bringing its schema up to date.
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password and all.
		return nil, fmt.Errorf("pgstore: the store DSN does not parse (want postgres://USER@HOST/DB or key=value pairs)")
	}
	cc := cfg.ConnConfig
	where := fmt.Sprintf("%s/%s", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database)
	cfg.MaxConns = int32(o.MaxConns)
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 10 * time.Second
	if cc.ConnectTimeout == 0 || cc.ConnectTimeout > o.Timeout {
		cc.ConnectTimeout = o.Timeout
	}
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	// A lock not granted within the timeout fails the statement (SQLSTATE
	// 55P03), which is retried like any passing failure until the same
	// timeout: then the caller gets ErrBusy instead of waiting for ever.
	cc.RuntimeParams["lock_timeout"] = strconv.FormatInt(o.Timeout.Milliseconds(), 10)
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "senderkit"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", where, err)
	}
	d := &DB{pool: pool, where: where, relay: o.Relay, timeout: o.Timeout, log: o.Logger.With("store", where)}
	d.names.init()
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the pool.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// Relay implements store.Store.
func (d *DB) Relay() string { return d.relay }

// Where names the database for messages: host:port/database.
func (d *DB) Where() string { return d.where }

// Version returns the schema version of the database.
func (d *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := d.pool.QueryRow(ctx, "SELECT version FROM senderkit_schema").Scan(&v)
	return v, err
}

func (d *DB) migrate(ctx context.Context) error {
	// Most opens find the schema current: check without the lock.
	var v int
	err := d.retry(ctx, func() error {
		err := d.pool.QueryRow(ctx, "SELECT version FROM senderkit_schema").Scan(&v)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" || errors.Is(err, pgx.ErrNoRows) { // undefined_table
			v, err = 0, nil
		}
		return err
	})
	if err != nil {
		return d.fail("read schema version", err)
	}
	if v == len(migrations) {
		return nil
	}
	err = d.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockMigrate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS senderkit_schema (version integer NOT NULL)"); err != nil {
			return err
		}
		var v int
		err := tx.QueryRow(ctx, "SELECT version FROM senderkit_schema").Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			v, err = 0, nil
			if _, err := tx.Exec(ctx, "INSERT INTO senderkit_schema (version) VALUES (0)"); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("pgstore: %s has schema version %d, newer than this senderkit knows (%d)", d.where, v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("pgstore: migrate %s to version %d: %w", d.where, i+1, err)
			}
			d.log.Info("store schema migrated", "version", i+1)
		}
		_, err = tx.Exec(ctx, "UPDATE senderkit_schema SET version = $1", len(migrations))
		return err
	})
	if err != nil {
		return d.fail("migrate", err)
	}
	return nil
}

// errAmbiguous marks a COMMIT whose reply was lost: the transaction may
// or may not have been applied, so it is not run again.
type errAmbiguous struct{ err error }

func (e errAmbiguous) Error() string {
	return "the connection was lost while committing; the change may or may not have been made: " + e.err.Error()
}
func (e errAmbiguous) Unwrap() error { return e.err }

// transient reports whether err is a failure that passes: the database
// cannot be reached or went away, or refused for now.
func transient(err error) bool {
	if err == nil || errors.As(err, new(errAmbiguous)) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03", // lock_not_available (lock_timeout)
			"53300", // too_many_connections
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now (starting up, shutting down)
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed")
}

// retry runs f until it succeeds, fails for good, or the timeout passes
// with f still failing in a way that passes.
func (d *DB) retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(d.timeout)
	pause := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if !transient(err) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: PostgreSQL at %s: still failing after %v: %v", store.ErrBusy, d.where, d.timeout, err)
		}
		d.log.Debug("store unavailable, retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: PostgreSQL at %s: %v (gave up: %v)", store.ErrBusy, d.where, err, ctx.Err())
		case <-time.After(pause + time.Duration(rand.Int64N(int64(pause)))):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// write runs f in a transaction, retrying the whole transaction while it
// fails in a way that passes, up to its COMMIT. f must be safe to run
// again.
func (d *DB) write(ctx context.Context, f func(tx pgx.Tx) error) error {
	return d.retry(ctx, func() error {
		tx, err := d.pool.Begin(ctx)
		if err != nil {
			return err
		}
		if err := f(tx); err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		return afterCommit(tx.Commit(ctx))
	})
}

// afterCommit classifies the error of work that may have committed: as it
// is when the server refused it or it was never sent (nothing was made,
// so it may run again), else as errAmbiguous (it may have been made).
func afterCommit(err error) error {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	if err == nil || errors.As(err, &pe) || errors.As(err, &ce) || errors.Is(err, pgx.ErrTxCommitRollback) || pgconn.SafeToRetry(err) {
		return err
	}
	return errAmbiguous{err}
}

// fail wraps an error with what failed, unless it is one of the store's
// own, and makes a lost commit an ErrBusy.
func (d *DB) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrDuplicate) ||
		errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound) {
		return err
	}
	if errors.As(err, new(errAmbiguous)) || transient(err) {
		return fmt.Errorf("%w: pgstore: %s at %s: %v", store.ErrBusy, op, d.where, err)
	}
	if strings.HasPrefix(err.Error(), "pgstore:") {
		return err
	}
	return fmt.Errorf("pgstore: %s at %s: %w", op, d.where, err)
}

// lockEventLog takes the lock every appender of events holds until it
// commits (see the package comment).
func lockEventLog(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockEvents)
	return err
}

// nameCache maps names to ids and back. Only committed ids are cached;
// an id never changes once given, on any relay.
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

const maxNameID = 1<<21 - 1 // what a token can carry

func checkName(kind store.NameKind, name string) error {
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\x00\r\n") {
		return fmt.Errorf("%w: %v name %q", store.ErrInvalid, kind, name)
	}
	return nil
}

// ID implements store.Store. A name is looked up first and inserted only
// when missing, so that the identity sequence (capped at what a token
// carries) is not spent on names that exist.
func (d *DB) ID(ctx context.Context, kind store.NameKind, name string) (uint32, error) {
	if err := checkName(kind, name); err != nil {
		return 0, err
	}
	if id, ok := d.names.get(kind, name); ok {
		return id, nil
	}
	var id int32
	err := d.retry(ctx, func() error {
		err := d.pool.QueryRow(ctx, "SELECT id FROM names WHERE kind = $1 AND name = $2", int(kind), name).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Two relays may insert the same name at once: the second waits
		// for the first, inserts nothing, and reads the first one's id.
		err = d.pool.QueryRow(ctx, "INSERT INTO names (kind, name) VALUES ($1, $2) ON CONFLICT (kind, name) DO NOTHING RETURNING id",
			int(kind), name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			err = d.pool.QueryRow(ctx, "SELECT id FROM names WHERE kind = $1 AND name = $2", int(kind), name).Scan(&id)
		}
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "2200H" { // sequence_generator_limit_exceeded
		return 0, fmt.Errorf("%w: more than %d names", store.ErrInvalid, maxNameID)
	}
	if err != nil {
		return 0, d.fail(fmt.Sprintf("intern %v %q", kind, name), err)
	}
	d.names.put(kind, name, uint32(id))
	return uint32(id), nil
}

// findID looks a name up without creating it.
func (d *DB) findID(ctx context.Context, kind store.NameKind, name string) (uint32, bool, error) {
	if id, ok := d.names.get(kind, name); ok {
		return id, true, nil
	}
	var id int32
	err := d.retry(ctx, func() error {
		return d.pool.QueryRow(ctx, "SELECT id FROM names WHERE kind = $1 AND name = $2", int(kind), name).Scan(&id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, d.fail(fmt.Sprintf("look up %v %q", kind, name), err)
	}
	d.names.put(kind, name, uint32(id))
	return uint32(id), true, nil
}

// Name implements store.Store.
func (d *DB) Name(ctx context.Context, kind store.NameKind, id uint32) (string, error) {
	if n, ok := d.names.name(id); ok {
		return n, nil
	}
	var n string
	err := d.retry(ctx, func() error {
		return d.pool.QueryRow(ctx, "SELECT name FROM names WHERE kind = $1 AND id = $2", int(kind), int64(id)).Scan(&n)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: %v id %d", store.ErrNotFound, kind, id)
	}
	if err != nil {
		return "", d.fail(fmt.Sprintf("name of %v %d", kind, id), err)
	}
	d.names.put(kind, n, id)
	return n, nil
}
