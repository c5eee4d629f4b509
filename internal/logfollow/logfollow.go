// Package logfollow follows a log, line by line, wherever the system puts
// it: a file that logrotate may rename or copy-and-truncate (File), or the
// systemd journal (Journal). Each follower keeps the position it reached
// in a small state file, written only after the lines before it were
// handled, so that a restart resumes where the last run stopped: no line
// is skipped, and after a clean stop none is read twice. (After a crash,
// the lines handled since the last save are read again; callers make their
// effects idempotent.)
package logfollow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Handler gets each complete line, without its line end, and says
// whether it handled it. A handler that cannot (it waited for its store
// until the follower's context ended) returns false: the follower then
// stops before that line, saving the position that leaves it unread, so
// the next start reads it again.
type Handler func(line string) bool

// Follower follows one log until ctx ends.
type Follower interface {
	Follow(ctx context.Context, h Handler) error
}

// Position is where a follower stands.
type Position struct {
	// File: the inode of the file being read and the offset after the
	// last line handled.
	Inode  uint64 `json:"inode,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	// Tail is the end of the last line handled, to recognise a file
	// that was truncated and written past Offset again.
	Tail string `json:"tail,omitempty"`
	// Journal: the cursor of the last entry handled.
	Cursor string `json:"cursor,omitempty"`
}

// saveEvery bounds how often a position is written while lines flow.
const saveEvery = time.Second

// maxLine caps a line; a longer one is cut (the rest is dropped).
const maxLine = 64 << 10

// loadPosition reads a state file; a missing file is the zero position.
func loadPosition(path string) (Position, error) {
	var p Position
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("logfollow: read position: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Position{}, fmt.Errorf("logfollow: position file %s: %w", path, err)
	}
	return p, nil
}

// savePosition writes a state file atomically (write, fsync, rename).
func savePosition(path string, p Position) error {
	b, _ := json.Marshal(p)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("logfollow: save position: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("logfollow: save position to %s: %w", path, err)
	}
	return nil
}

// saver writes positions no more often than saveEvery, and always on
// flush.
type saver struct {
	path  string
	last  Position
	saved time.Time
}

func (s *saver) save(p Position, force bool) error {
	if p == s.last || (!force && time.Since(s.saved) < saveEvery) {
		return nil
	}
	if err := savePosition(s.path, p); err != nil {
		return err
	}
	s.last, s.saved = p, time.Now()
	return nil
}
