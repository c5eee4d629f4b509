package logfollow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// File follows a log file across rotations:
//   - rename and create (logrotate's default, Postfix's "postfix
//     logrotate"): the old file is read to its end, then the new one from
//     its start; a rotation that happened while senderkit was stopped is
//     found by the inode in the state file, among the files of the same
//     directory;
//   - copytruncate: the file shrinks below the position; it is read again
//     from its start (lines written between logrotate's copy and its
//     truncation are lost to every reader: that is copytruncate's flaw).
//
// It waits for changes with fsnotify on the directory, and also checks
// every Poll in case a notification is missed (network file systems).
type File struct {
	Path  string // the log file
	State string // the position file
	// Poll is the fallback check interval; default 1s.
	Poll time.Duration
	Log  *slog.Logger
}

// fileState is the open file being read.
type fileState struct {
	f       *os.File
	inode   uint64
	offset  int64  // after the last complete line handled
	partial []byte // the start (up to maxLine bytes) of an incomplete line
	pending int64  // the length of that incomplete line so far
	buf     []byte
	// tail holds the last bytes before offset, to tell a file that was
	// truncated and written past offset again from one that grew.
	tail []byte
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// Follow implements Follower.
func (fl *File) Follow(ctx context.Context, h Handler) error {
	log := fl.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	poll := fl.Poll
	if poll <= 0 {
		poll = time.Second
	}
	pos, err := loadPosition(fl.State)
	if err != nil {
		return err
	}
	sv := &saver{path: fl.State, last: pos, saved: time.Now()}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("logfollow: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(fl.Path)); err != nil {
		return fmt.Errorf("logfollow: watch %s: %w", filepath.Dir(fl.Path), err)
	}

	var cur *fileState
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	// Resume.
	if pos.Inode != 0 {
		cur = fl.resume(pos, log)
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if cur == nil {
			cur = fl.open(0, log)
		}
		if cur != nil {
			if fi, err := os.Stat(fl.Path); err == nil && inodeOf(fi) != cur.inode {
				// Renamed away and a new file in its place: finish the
				// old one, then start the new one from the top.
				if !fl.drain(cur, h, true) {
					return fl.stop(sv, cur, log)
				}
				log.Info("log file rotated", "path", fl.Path)
				cur.f.Close()
				cur = nil
				continue
			}
			if cur.truncated() {
				log.Info("log file truncated; reading it from the start", "path", fl.Path, "offset", cur.offset)
				cur.offset, cur.partial, cur.pending, cur.tail = 0, nil, 0, nil
				if _, err := cur.f.Seek(0, io.SeekStart); err != nil {
					log.Error("log file", "path", fl.Path, "err", err)
				}
			}
			if !fl.drain(cur, h, false) {
				return fl.stop(sv, cur, log)
			}
			if err := sv.save(cur.position(), false); err != nil {
				log.Error("saving the log position failed", "err", err)
			}
		}
		// Nothing to do until something changes.
		select {
		case <-ctx.Done():
			if cur != nil {
				if err := sv.save(cur.position(), true); err != nil {
					log.Error("saving the log position failed", "err", err)
				}
			}
			return nil
		case <-tick.C:
		case <-w.Events: // any change in the directory: look again
		case err := <-w.Errors:
			log.Warn("file notifications", "err", err)
		}
	}
}

// open opens Path and seeks to offset, or returns nil.
func (fl *File) open(offset int64, log *slog.Logger) *fileState {
	f, err := os.Open(fl.Path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Error("opening the log file", "path", fl.Path, "err", err)
		}
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		log.Error("opening the log file", "path", fl.Path, "err", err)
		return nil
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		log.Error("opening the log file", "path", fl.Path, "err", err)
		return nil
	}
	return &fileState{f: f, inode: inodeOf(fi), offset: offset}
}

// resume reopens the file of a saved position: Path if it is still the
// same file, else the rotated file with the saved inode in Path's
// directory. It returns nil when it is gone (Path is then read from its
// start).
func (fl *File) resume(pos Position, log *slog.Logger) *fileState {
	if fi, err := os.Stat(fl.Path); err == nil && inodeOf(fi) == pos.Inode {
		cur := fl.open(pos.Offset, log)
		if cur != nil {
			cur.tail = []byte(pos.Tail)
			if cur.truncated() {
				log.Info("log file truncated while stopped; reading it from the start", "path", fl.Path)
				cur.f.Close()
				return fl.open(0, log)
			}
		}
		return cur
	}
	dir := filepath.Dir(fl.Path)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || inodeOf(fi) != pos.Inode || fi.Size() < pos.Offset {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			break
		}
		if _, err := f.Seek(pos.Offset, io.SeekStart); err != nil {
			f.Close()
			break
		}
		log.Info("log file rotated while stopped; finishing the rotated file first", "path", p)
		return &fileState{f: f, inode: pos.Inode, offset: pos.Offset, tail: []byte(pos.Tail)}
	}
	log.Warn("the log file read last is gone; lines written to it after the last stop are lost", "path", fl.Path, "inode", pos.Inode)
	return nil
}

// drain reads cur to its end and hands over each complete line. At a
// rotation (final), a last line without its line end is handed over too:
// nothing will complete it.
// stop saves the position of a handler that could not handle a line
// (the line is read again at the next start) and ends Follow.
func (fl *File) stop(sv *saver, cur *fileState, log *slog.Logger) error {
	if err := sv.save(cur.position(), true); err != nil {
		log.Error("saving the log position failed", "err", err)
	}
	return nil
}

// drain hands every complete line read to h. It returns false when h
// could not handle one: the position then stays before that line.
func (fl *File) drain(cur *fileState, h Handler, final bool) bool {
	if cur.buf == nil {
		cur.buf = make([]byte, 64<<10)
	}
	for {
		n, err := cur.f.Read(cur.buf)
		if n > 0 {
			data := cur.buf[:n]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					cur.partial = appendMax(cur.partial, data)
					cur.pending += int64(len(data))
					break
				}
				line := appendMax(cur.partial, data[:i])
				consumed := cur.pending + int64(i) + 1
				if !h(string(bytes.TrimSuffix(line, []byte("\r")))) {
					return false // cur.offset is still before the line
				}
				cur.partial, cur.pending = nil, 0
				cur.offset += consumed
				end := n - len(data) + i + 1 // in cur.buf
				cur.tail = append(cur.tail[:0], cur.buf[max(0, end-tailLen):end]...)
				data = data[i+1:]
			}
		}
		if err != nil || n == 0 {
			break
		}
	}
	if final && cur.pending > 0 {
		if !h(string(cur.partial)) {
			return false
		}
		cur.offset += cur.pending
		cur.partial, cur.pending = nil, 0
	}
	return true
}

const tailLen = 64

func (cur *fileState) position() Position {
	return Position{Inode: cur.inode, Offset: cur.offset, Tail: string(cur.tail)}
}

// truncated reports whether the file shrank below the offset, or no
// longer holds the bytes that were read before it (truncated, then
// written past the offset again).
func (cur *fileState) truncated() bool {
	fi, err := cur.f.Stat()
	if err != nil || fi.Size() < cur.offset {
		return err == nil
	}
	if len(cur.tail) == 0 || cur.offset < int64(len(cur.tail)) {
		return false
	}
	b := make([]byte, len(cur.tail))
	n, _ := cur.f.ReadAt(b, cur.offset-int64(len(b)))
	return !bytes.Equal(b[:n], cur.tail)
}

// appendMax appends b to line, keeping at most maxLine bytes: the rest
// of an overlong line is dropped.
func appendMax(line, b []byte) []byte {
	if room := maxLine - len(line); room < len(b) {
		b = b[:max(room, 0)]
	}
	return append(line, b...)
}
