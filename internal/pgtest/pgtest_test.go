package pgtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartStopRestart: the cluster answers on loopback only, stops like
// an outage and comes back on the same address.
func TestStartStopRestart(t *testing.T) {
	s := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := s.NewDatabase(t)
	query := func() (string, error) {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return "", err
		}
		defer c.Close(ctx)
		var listen string
		err = c.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen)
		return listen, err
	}
	listen, err := query()
	if err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" {
		t.Errorf("listen_addresses = %q", listen)
	}
	s.Stop()
	if _, err := query(); err == nil {
		t.Fatal("a stopped server answered")
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a stopped server's port accepts connections")
	}
	s.Restart()
	if _, err := query(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
