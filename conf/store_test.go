package conf

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestStoreShared(t *testing.T) {
	c, err := Parse([]byte(`[store]
dsn = "postgres://senderkit:s3cret@db.example.net:5433/senderkit?sslmode=verify-full&passfile=/x"
relay = "mx1"
max_conns = 4
`), "fleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Store.Shared() || c.RelayName() != "mx1" || c.Store.MaxConns != 4 {
		t.Errorf("store = %+v, relay %q", c.Store, c.RelayName())
	}
	if got := c.StoreName(); got != "postgres:postgres://senderkit@db.example.net:5433/senderkit" {
		t.Errorf("StoreName = %q (the password and options must not show)", got)
	}
	c.Store.DSN = "host=db dbname=senderkit user=sk password=s3cret sslmode=require"
	if got := c.StoreName(); got != "postgres:host=db dbname=senderkit user=sk" {
		t.Errorf("StoreName = %q", got)
	}

	d, _ := Load("")
	if d.Store.Shared() || d.StoreName() != d.StorePath() {
		t.Errorf("the default store is not the SQLite file: %q", d.StoreName())
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	if host != "" && nameRE.MatchString(host) && d.RelayName() != host {
		t.Errorf("default relay %q, want the host name %q", d.RelayName(), host)
	}

	_, err = Parse([]byte("[store]\ndsn = \"db.example.net\"\nrelay = \"mx 1\"\nmax_conns = 0\n"), "bad.toml")
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("bad store settings: %v", err)
	}
	for i, want := range []string{"bad.toml:2: store.dsn", "bad.toml:3: store.relay", "bad.toml:4: store.max_conns"} {
		if !strings.HasPrefix(errs[i].Error(), want) {
			t.Errorf("error %d = %q, want %q...", i, errs[i], want)
		}
	}
}
