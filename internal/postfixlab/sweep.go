package postfixlab

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// A lab directory holds a lock file that its test binary keeps locked
// (flock) while the lab exists. The kernel drops the lock when the
// process dies, so a lab whose lock can be taken, and whose lock file is
// not brand new (the owner may be between creating and locking it), was
// left behind by a test binary that died without its cleanups.

const lockName = "owner.lock"

// lockDir creates and locks dir's lock file.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating lab lock file: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %v", f.Name(), err)
	}
	return f, nil
}

// sweep stops the Postfix of, and removes, the labs left behind by dead
// test binaries.
func sweep(t TB) {
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
		t.Logf("postfixlab: removing lab %s left behind by a dead test binary", dir)
		if err := stopPostfix(dir); err != nil {
			t.Logf("postfixlab: %v", err)
		}
		os.RemoveAll(dir)
		f.Close()
	}
}
