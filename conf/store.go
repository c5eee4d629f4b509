package conf

import (
	"os"
	"strings"
)

// StoreShared holds the settings of a store shared by a fleet of relays
// (PostgreSQL). Its keys are written in the [store] table, beside the
// SQLite ones.
type StoreShared struct {
	// DSN makes the store a PostgreSQL database that every relay of a
	// fleet shares, so that a bounce, complaint or unsubscribe taken in
	// by any relay stops the next send from all of them: a connection
	// string, "postgres://senderkit@db.example.net/senderkit?sslmode=verify-full"
	// or "host=db.example.net dbname=senderkit user=senderkit". Keep the
	// password out of it (passfile=, ~/.pgpass or PGPASSWORD). The schema
	// is created and migrated on first use. busy_timeout then bounds how
	// long a call keeps trying an unreachable database or a lock before
	// the milter tempfails and the bounce pipe exits 75. Empty: the
	// SQLite file at path. Default "".
	DSN string `toml:"dsn"`
	// Relay names this host in a fleet: the sends, events and throttle
	// state it writes carry the name, and reports can split the fleet by
	// it. Letters, digits, '.', '_' and '-'. Default: the host name.
	Relay string `toml:"relay"`
	// MaxConns caps each process's connections to PostgreSQL. Default 8.
	MaxConns int `toml:"max_conns"`
}

func defaultStoreShared() StoreShared { return StoreShared{MaxConns: 8} }

// Shared reports whether the store is a PostgreSQL database.
func (s *Store) Shared() bool { return s.DSN != "" }

// RelayName is the name this host writes under: store.relay, else the
// host name (up to its first dot), else "relay".
func (c *Config) RelayName() string {
	if c.Store.Relay != "" {
		return c.Store.Relay
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "relay"
	}
	h, _, _ = strings.Cut(h, ".")
	if !nameRE.MatchString(h) {
		return "relay"
	}
	return h
}

// StoreName says where the store is, for logs: the SQLite file, or the
// PostgreSQL host and database (never the password).
func (c *Config) StoreName() string {
	if !c.Store.Shared() {
		return c.StorePath()
	}
	return "postgres:" + redactDSN(c.Store.DSN)
}

// redactDSN drops what may be secret from a connection string.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, _, _ := strings.Cut(rest[:at], ":")
			rest = user + "@" + rest[at+1:]
		}
		rest, _, _ = strings.Cut(rest, "?")
		return dsn[:i+3] + rest
	}
	var kept []string
	for _, f := range strings.Fields(dsn) {
		k, _, _ := strings.Cut(f, "=")
		switch k {
		case "host", "hostaddr", "port", "dbname", "user":
			kept = append(kept, f)
		}
	}
	return strings.Join(kept, " ")
}

func (s *StoreShared) complete(l *errorList) {
	if s.DSN != "" && !strings.HasPrefix(s.DSN, "postgres://") && !strings.HasPrefix(s.DSN, "postgresql://") && !strings.Contains(s.DSN, "=") {
		l.add("store.dsn", "want a postgres:// URL or key=value pairs")
	}
	if s.Relay != "" && !nameRE.MatchString(s.Relay) {
		l.add("store.relay", "%q: want letters, digits, '.', '_' and '-'", s.Relay)
	}
	if s.MaxConns < 1 || s.MaxConns > 1000 {
		l.add("store.max_conns", "%d is outside 1 to 1000", s.MaxConns)
	}
}
