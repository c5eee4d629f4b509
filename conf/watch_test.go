package conf

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// saveAtomic writes path the way editors do: a new file renamed over it.
func saveAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "senderkit.toml")
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o700)
	saveAtomic(t, path, "[log]\nlevel = \"info\"\n")

	var loads int
	var mu sync.Mutex
	load := func() (*Config, []string, error) {
		mu.Lock()
		loads++
		mu.Unlock()
		c, err := Load(path)
		return c, []string{path, keys}, err
	}
	logs := &syncBuffer{}
	w, err := NewWatcher(load, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	w.OnChange(func(c *Config) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c.Log.Level)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // let Run add its watches

	// A valid change, saved by rename, takes effect.
	saveAtomic(t, path, "[log]\nlevel = \"debug\"\n")
	waitFor(t, "level debug", func() bool { return w.Current().Log.Level == "debug" })

	// A broken file is refused and the previous value stays.
	saveAtomic(t, path, "[log]\nlevel = \"loud\"\n")
	waitFor(t, "a refused reload", func() bool { return w.Failures() == 1 })
	if got := w.Current().Log.Level; got != "debug" {
		t.Errorf("after a broken file the level is %q, want the previous debug", got)
	}
	if !strings.Contains(logs.String(), `keeping the previous configuration`) || !strings.Contains(logs.String(), `log.level: level \"loud\"`) {
		t.Errorf("the refusal was not logged with its reason:\n%s", logs.String())
	}

	// Writing in place works too.
	if err := os.WriteFile(path, []byte("[log]\nlevel = \"warn\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "level warn", func() bool { return w.Current().Log.Level == "warn" })

	// A change in a watched directory (a new token key) reloads as well.
	mu.Lock()
	before := loads
	mu.Unlock()
	os.WriteFile(filepath.Join(keys, "2.key"), []byte("00"), 0o600)
	waitFor(t, "reload on key directory change", func() bool { mu.Lock(); defer mu.Unlock(); return loads > before })

	// Files beside the config that are not ours do not trigger reloads.
	mu.Lock()
	before = loads
	mu.Unlock()
	os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("x"), 0o644)
	time.Sleep(3 * debounce)
	mu.Lock()
	if loads != before {
		t.Errorf("an unrelated file caused %d reloads", loads-before)
	}
	if strings.Join(seen, ",") != "debug,warn,warn" {
		t.Errorf("subscribers saw %v", seen)
	}
	mu.Unlock()

	// Reload (SIGHUP) with a broken file keeps the old state too.
	os.WriteFile(path, []byte("not toml ["), 0o644)
	time.Sleep(3 * debounce)
	if err := w.Reload(); err == nil {
		t.Error("Reload of a broken file succeeded")
	}
	if w.Current().Log.Level != "warn" {
		t.Errorf("level after broken reload: %q", w.Current().Log.Level)
	}
}

func TestWatcherInitialLoadMustSucceed(t *testing.T) {
	_, err := NewWatcher(func() (*Config, []string, error) {
		c, err := Parse([]byte("state_dir = \"x\""), "x.toml")
		return c, nil, err
	}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Error("NewWatcher accepted a broken initial configuration")
	}
}

// A change made after the state was loaded but before Run watches the
// files (serve starting while an administrator saves) is not lost.
func TestWatcherChangeBeforeRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "senderkit.toml")
	saveAtomic(t, path, "[log]\nlevel = \"info\"\n")
	load := func() (*Config, []string, error) {
		c, err := Load(path)
		return c, []string{path}, err
	}
	w, err := NewWatcher(load, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	saveAtomic(t, path, "[log]\nlevel = \"warn\"\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the change saved before Run", func() bool { return w.Current().Log.Level == "warn" })
}
