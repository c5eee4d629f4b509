package pgstore

import (
	"context"
	"testing"

	"github.com/senderkit/senderkit/internal/pgtest"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/storetest"
)

func open(t testing.TB, dsn string, o Options) *DB {
	t.Helper()
	d, err := Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSuite runs the backend-independent suite on a real PostgreSQL, one
// fresh database per test.
func TestSuite(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, srv.NewDatabase(t), Options{})
	})
}

// TestShared runs the suite's tests of several handles (relays, and
// writers at once) on one database.
func TestShared(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunShared(t, func(t *testing.T) func(relay string) store.Store {
		dsn := srv.NewDatabase(t)
		return func(relay string) store.Store { return open(t, dsn, Options{Relay: relay, MaxConns: 4}) }
	})
}
