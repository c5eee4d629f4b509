package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/pgstore"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// DefaultConfigFile is read when -c is not given and the file exists;
// otherwise the built-in default applies.
const DefaultConfigFile = "/etc/senderkit/senderkit.toml"

// configFlags are the flags every command that reads the configuration
// takes.
type configFlags struct {
	file     string
	stateDir string
}

func (f *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "c", "", "configuration `file` (default "+DefaultConfigFile+" if it exists, else the built-in default)")
	fs.StringVar(&f.stateDir, "state-dir", "", "state `directory`, overriding state_dir in the configuration")
}

// path returns the file to read: -c, else the default file if present,
// else "" for the built-in configuration.
func (f *configFlags) path() string {
	if f.file != "" {
		return f.file
	}
	if _, err := os.Stat(DefaultConfigFile); err == nil {
		return DefaultConfigFile
	}
	return ""
}

// load reads the configuration and applies -state-dir.
func (f *configFlags) load() (*conf.Config, error) {
	c, err := conf.Load(f.path())
	if err != nil {
		return nil, err
	}
	if f.stateDir != "" {
		abs, err := filepath.Abs(f.stateDir)
		if err != nil {
			return nil, fmt.Errorf("state directory %q: %w", f.stateDir, err)
		}
		c.StateDir = abs
	}
	return c, nil
}

// openStore opens the database the configuration names: PostgreSQL when
// store.dsn is set (a fleet's shared store), else the SQLite file. The
// store writes under this host's relay name. The state directory must
// exist: it says where the state is, and creating it in the wrong place
// by accident would hide the real list.
func openStore(ctx context.Context, c *conf.Config) (store.Store, error) {
	if _, err := os.Stat(c.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("state directory %s does not exist: run senderkit serve once, create it, or pass -state-dir", c.StateDir)
	}
	if c.Store.Shared() {
		return pgstore.Open(ctx, c.Store.DSN, pgstore.Options{
			Timeout:  c.Store.BusyTimeout.D(),
			MaxConns: c.Store.MaxConns,
			Relay:    c.RelayName(),
		})
	}
	return sqlitestore.Open(ctx, c.StorePath(), sqlitestore.Options{
		BusyTimeout: c.Store.BusyTimeout.D(),
		Synchronous: c.Store.Synchronous,
		Relay:       c.RelayName(),
		NoMmap:      !c.Store.Mmap,
	})
}

// storeTimeout bounds a CLI command's use of the store.
const storeTimeout = 5 * time.Minute

var (
	_ store.Store = (*sqlitestore.DB)(nil)
	_ store.Store = (*pgstore.DB)(nil)
)
