package conf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Loader builds the running state from the configuration: the Config
// itself and whatever is read along with it (token keys, DKIM keys). It
// returns the files and directories whose change calls for a reload.
// A Loader that fails leaves the previous state in force, so everything
// that can be wrong with a reload must be found inside it.
type Loader[T any] func() (T, []string, error)

// Watcher holds the current state and replaces it, whole or not at all,
// when the files it came from change or Reload is called (on SIGHUP).
type Watcher[T any] struct {
	load     Loader[T]
	log      *slog.Logger
	cur      atomic.Pointer[T]
	mu       sync.Mutex // serialises reloads
	paths    []string
	subs     []func(T)
	changed  chan struct{}
	failures atomic.Int64
	// snap is what the files looked like just before the state in
	// force was loaded: a change made before Run watches them (at
	// start, or while a reload ran) is found by comparing.
	snap string
}

// debounce lets a burst of file events (an editor's write, rename and
// chmod) settle into one reload.
const debounce = 150 * time.Millisecond

// NewWatcher loads the initial state; it fails if that does.
func NewWatcher[T any](load Loader[T], log *slog.Logger) (*Watcher[T], error) {
	v, paths, err := load()
	if err != nil {
		return nil, err
	}
	w := &Watcher[T]{load: load, log: log, paths: paths, changed: make(chan struct{}, 1), snap: snapshot(paths)}
	w.cur.Store(&v)
	return w, nil
}

// Current returns the state in force.
func (w *Watcher[T]) Current() T { return *w.cur.Load() }

// Failures counts reloads that were refused.
func (w *Watcher[T]) Failures() int64 { return w.failures.Load() }

// OnChange registers f to be called, from the reloading goroutine, with
// each new state after it is in force. Register before Run.
func (w *Watcher[T]) OnChange(f func(T)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs = append(w.subs, f)
}

// Reload loads the state again. On error the previous state stays in
// force and the error is logged and returned.
func (w *Watcher[T]) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, paths, err := w.load()
	if err != nil {
		w.failures.Add(1)
		w.log.Error("configuration reload failed; keeping the previous configuration", "err", err)
		return err
	}
	w.cur.Store(&v)
	old := w.paths
	w.paths = paths
	w.snap = snapshot(paths)
	if !samePaths(old, paths) {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	for _, f := range w.subs {
		f(v)
	}
	w.log.Info("configuration reloaded")
	return nil
}

func samePaths(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Run watches the state's files until ctx ends. It watches their
// directories, not the files, so that an editor's save by rename is seen.
func (w *Watcher[T]) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("conf: watch files: %w", err)
	}
	defer fw.Close()
	// dirs are state paths that are directories: any change inside
	// counts. files are state paths that are files: only they count,
	// though their directory is what is watched.
	var dirs, files, watched map[string]bool
	rewatch := func() {
		w.mu.Lock()
		paths := w.paths
		w.mu.Unlock()
		dirs, files = map[string]bool{}, map[string]bool{}
		want := map[string]bool{}
		for _, p := range paths {
			p = filepath.Clean(p)
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				dirs[p], want[p] = true, true
			} else {
				files[p], want[filepath.Dir(p)] = true, true
			}
		}
		for d := range watched {
			if !want[d] {
				fw.Remove(d)
			}
		}
		for d := range want {
			if !watched[d] {
				if err := fw.Add(d); err != nil {
					w.log.Warn("cannot watch directory; changes there need a SIGHUP", "dir", d, "err", err)
				}
			}
		}
		watched = want
	}
	rewatch()
	var timer *time.Timer
	var fire <-chan time.Time
	// A change made before the watch was in place (between the load and
	// now) has sent no event: compare, and reload at once if so.
	w.mu.Lock()
	missed := snapshot(w.paths) != w.snap
	w.mu.Unlock()
	if missed {
		timer = time.NewTimer(0)
		fire = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
			rewatch()
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if name := filepath.Clean(ev.Name); !files[name] && !dirs[filepath.Dir(name)] {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("file watch error", "err", err)
		case <-fire:
			fire = nil
			w.Reload()
		}
	}
}

// snapshot describes the state's files as they are now: each file's and
// each directory entry's size, modification time, mode and inode, so
// that two snapshots differ when anything a reload would read changed.
func snapshot(paths []string) string {
	var b strings.Builder
	stat := func(p string) {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p, err)
			return
		}
		fmt.Fprintf(&b, "%s %d %d %v %d\n", p, fi.Size(), fi.ModTime().UnixNano(), fi.Mode(), inode(fi))
		if fi.IsDir() {
			ents, _ := os.ReadDir(p)
			for _, e := range ents {
				if info, err := e.Info(); err == nil {
					fmt.Fprintf(&b, "%s/%s %d %d %d\n", p, e.Name(), info.Size(), info.ModTime().UnixNano(), inode(info))
				}
			}
		}
	}
	for _, p := range paths {
		stat(filepath.Clean(p))
	}
	return b.String()
}
