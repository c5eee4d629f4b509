// Package pgtest runs a throwaway PostgreSQL server on loopback for tests:
// a cluster made with initdb in its own temporary directory, listening on
// 127.0.0.1 only, on a free port, with trust authentication for that
// address alone. Debian's postgresql package is installed with apt-get
// when the server binaries are missing (postfixlab.EnsurePackages: a
// failure in CI, a skip elsewhere).
//
// PostgreSQL refuses to run as root: when the tests run as root, the
// server runs as the postgres user the Debian package creates.
//
// Everything is stopped and removed when the test ends. A test binary
// that dies without its cleanups leaves a cluster behind; the next Start,
// in any test binary, stops and removes it.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// Options configure Start.
type Options struct {
	// Durable keeps fsync and synchronous_commit on, as a production
	// server has them (benchmarks). Off by default: a throwaway cluster
	// need not survive a power cut, and tests run faster without.
	Durable bool
}

// Server is a running throwaway cluster.
type Server struct {
	// Dir holds the cluster: data/ and the server's log, server.log.
	Dir string
	// Addr is "127.0.0.1:port".
	Addr string

	t       testing.TB
	bin     string // directory of initdb, pg_ctl, postgres
	cred    *syscall.Credential
	lock    *os.File
	dbs     atomic.Int64
	mu      sync.Mutex
	stopped bool
}

// dirPrefix starts the name of every cluster directory in os.TempDir().
const dirPrefix = "pgtest-"

// User is the superuser role of the cluster (trust authentication).
const User = "senderkit"

// Start initialises and starts a cluster; it is stopped and removed when
// the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := binDir(t)
	sweep(t, bin)
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			postfixlab.Unavailable(t, "pgtest: the server cannot run as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.Dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if s.lock, err = lockDir(dir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.remove)
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", User, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = ''",
		"max_connections = 300",
		"shared_buffers = 128MB",
		"log_min_messages = warning",
		"log_line_prefix = '%m [%p] '",
	}
	if !o.Durable {
		conf = append(conf, "fsync = off", "synchronous_commit = off", "full_page_writes = off")
	}
	if err := appendFile(filepath.Join(s.data(), "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Trust only loopback TCP; initdb's file also trusts local sockets,
	// which are off.
	hba := "host all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(s.data(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if s.cred != nil {
		os.Chown(filepath.Join(s.data(), "pg_hba.conf"), int(s.cred.Uid), int(s.cred.Gid))
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("pgtest: %v", err)
		}
		t.Logf("pgtest: attempt %d: %v; trying another port", attempt, err)
	}
	return s
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }

// Log returns the server's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return string(b)
}

// start starts the server on s.Addr and waits until it accepts
// connections.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", s.data(), "-l", filepath.Join(s.Dir, "server.log"),
		"-o", "-p "+port)
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, tail(s.Log(), 20))
	}
	s.mu.Lock()
	s.stopped = false
	s.mu.Unlock()
	return nil
}

// Stop stops the server (fast shutdown: open connections are ended), as
// an outage would; Restart starts it again on the same address.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	if out, err := s.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", s.data()); err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	s.stopped = true
	return nil
}

// Restart starts a stopped server again.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.TryRestart(); err != nil {
		s.t.Fatal(err)
	}
}

// TryRestart is Restart for a goroutine other than the test's, which
// must not end the test itself: it returns what failed.
func (s *Server) TryRestart() error {
	if err := s.start(); err != nil {
		return fmt.Errorf("pgtest: %v", err)
	}
	return nil
}

func (s *Server) remove() {
	if err := s.stop(); err != nil {
		s.t.Logf("pgtest: %v", err)
	}
	os.RemoveAll(s.Dir)
	s.lock.Close()
}

// DSN returns the connection string of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", User, s.Addr, db)
}

// NewDatabase creates an empty database and returns its connection
// string.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.DSN(name)
}

// run runs one of the server's programs as the server's user.
func (s *Server) run(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// binDir finds the server's programs, installing Debian's postgresql
// package when there are none.
func binDir(t testing.TB) string {
	t.Helper()
	if d := findBin(); d != "" {
		return d
	}
	// Debian 12 (what CI runs) ships PostgreSQL 15 as "postgresql"; the
	// programs are outside $PATH.
	postfixlab.EnsurePackages(t, map[string]string{"/usr/lib/postgresql/15/bin/initdb": "postgresql"})
	if d := findBin(); d != "" {
		return d
	}
	postfixlab.Unavailable(t, "pgtest: installed postgresql, but found no initdb")
	return ""
}

// findBin returns the directory of the newest installed server: Debian
// keeps each major version in /usr/lib/postgresql/N/bin; elsewhere initdb
// may be on $PATH.
func findBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			d := filepath.Dir(p)
			if isExec(filepath.Join(d, "pg_ctl")) && isExec(filepath.Join(d, "postgres")) {
				return d
			}
		}
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A cluster directory holds a lock file that its test binary keeps
// locked (flock) while the cluster exists; the kernel drops the lock
// when the process dies.
const lockName = "owner.lock"

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating lock file: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %v", f.Name(), err)
	}
	return f, nil
}

// sweep stops and removes the clusters of dead test binaries.
func sweep(t testing.TB, bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || time.Since(fi.ModTime()) < 10*time.Second ||
			syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		t.Logf("pgtest: removing cluster %s left behind by a dead test binary", dir)
		s := &Server{Dir: dir, bin: bin}
		if os.Geteuid() == 0 {
			if u, err := user.Lookup("postgres"); err == nil {
				uid, _ := strconv.Atoi(u.Uid)
				gid, _ := strconv.Atoi(u.Gid)
				s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if out, err := s.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", s.data()); err != nil {
				t.Logf("pgtest: stop %s: %v: %s", dir, err, out)
			}
		}
		os.RemoveAll(dir)
		f.Close()
	}
}
