package postfixlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AptLockFile is the file EnsurePackages locks (flock) while it installs,
// so that parallel test binaries do not run apt-get at the same time.
const AptLockFile = "/tmp/senderkit-apt.lock"

// aptTimeout bounds one apt-get invocation.
const aptTimeout = 10 * time.Minute

// installMu serialises installs within one test binary; the flock on
// AptLockFile serialises them across binaries.
var installMu sync.Mutex

// updated records whether this process already ran apt-get update.
var updated bool

// EnsurePackages makes sure each command in cmds exists, installing the
// Debian package it maps to with apt-get when it is missing. cmds maps a
// command name to its package, e.g. {"postfix": "postfix", "swaks": "swaks"}.
//
// Installing runs "apt-get update" once per process, then "apt-get install"
// with DEBIAN_FRONTEND=noninteractive; for postfix it first presets debconf
// to "No configuration", so that nothing is configured or started.
// Concurrent installs from parallel test binaries are serialised with a
// flock on AptLockFile, and the commands are looked up again once the lock
// is held.
//
// When a command is missing and cannot be installed (not root, apt-get
// fails), EnsurePackages fails the test if the environment variable CI is
// "true" (a missing dependency is a failure in CI) and skips it otherwise.
func EnsurePackages(t TB, cmds map[string]string) {
	t.Helper()
	if err := ensurePackages(t, cmds); err != nil {
		Unavailable(t, "postfixlab: %v", err)
	}
}

// NeedRoot skips the test unless it runs as root, which what needs (an
// end-to-end test: a private Postfix, pipe(8) users); with CI=true it
// fails it instead.
func NeedRoot(t TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "postfixlab: %s needs root (euid %d)", what, os.Geteuid())
	}
}

// Unavailable skips the test for want of what format says, or fails it
// when CI=true: in CI a missing dependency is a failure, never a skip.
func Unavailable(t TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

func ensurePackages(t TB, cmds map[string]string) error {
	if len(missing(cmds)) == 0 {
		return nil
	}
	installMu.Lock()
	defer installMu.Unlock()
	miss := missing(cmds)
	if len(miss) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("commands %s are missing and installing needs root (euid %d)",
			strings.Join(miss, ", "), os.Geteuid())
	}

	f, err := os.OpenFile(AptLockFile, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return fmt.Errorf("opening apt lock file: %v", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %v", AptLockFile, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	// Another binary may have installed them while we waited for the lock.
	miss = missing(cmds)
	if len(miss) == 0 {
		return nil
	}
	pkgSet := map[string]bool{}
	for _, c := range miss {
		pkgSet[cmds[c]] = true
	}
	var pkgs []string
	for p := range pkgSet {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	t.Logf("postfixlab: commands %s missing, installing packages %s", strings.Join(miss, ", "), strings.Join(pkgs, " "))

	var updateErr error
	if !updated {
		updateErr = apt(t, "update")
		updated = updateErr == nil
	}
	if pkgSet["postfix"] {
		sel := "postfix postfix/main_mailer_type select No configuration\n"
		cmd := exec.Command("debconf-set-selections")
		cmd.Stdin = strings.NewReader(sel)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("debconf-set-selections %q: %v: %s", strings.TrimSpace(sel), err, out)
		}
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	if err := apt(t, args...); err != nil {
		if updateErr != nil {
			return fmt.Errorf("%v (apt-get update failed before: %v)", err, updateErr)
		}
		return err
	}
	if miss := missing(cmds); len(miss) > 0 {
		return fmt.Errorf("installed %s but commands %s are still missing", strings.Join(pkgs, " "), strings.Join(miss, ", "))
	}
	return nil
}

// apt runs apt-get non-interactively, waiting for the dpkg lock if another
// apt-get (not going through AptLockFile) holds it.
func apt(t TB, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), aptTimeout)
	defer cancel()
	full := append([]string{"-q", "-o", "DPkg::Lock::Timeout=300"}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", full...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, tail(out.String(), 20))
	}
	t.Logf("postfixlab: apt-get %s: ok in %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return nil
}

// missing returns the sorted names of the commands in cmds that cannot be found.
func missing(cmds map[string]string) []string {
	var miss []string
	for c := range cmds {
		if _, err := lookCmd(c); err != nil {
			miss = append(miss, c)
		}
	}
	sort.Strings(miss)
	return miss
}

// lookCmd finds a command in $PATH or in the sbin directories, which are
// often missing from a non-root $PATH.
func lookCmd(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: %w", name, exec.ErrNotFound)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
