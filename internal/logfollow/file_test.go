package logfollow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// collector runs a follower and gathers the lines it hands over.
type collector struct {
	t      *testing.T
	lines  chan string
	all    []string
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, f Follower, all []string) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{t: t, lines: make(chan string, 1000), all: all, cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- f.Follow(ctx, func(l string) bool { c.lines <- l; return true }) }()
	t.Cleanup(cancel)
	return c
}

// expect waits for exactly the given lines, in order.
func (c *collector) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		select {
		case got := <-c.lines:
			c.all = append(c.all, got)
			if got != w {
				c.t.Fatalf("got line %q, want %q (all so far: %q)", got, w, c.all)
			}
		case <-time.After(10 * time.Second):
			c.t.Fatalf("no line %q after 10s (all so far: %q)", w, c.all)
		}
	}
}

// stop stops the follower and checks that no line came that was not
// expected.
func (c *collector) stop() []string {
	c.t.Helper()
	c.cancel()
	if err := <-c.done; err != nil {
		c.t.Fatalf("Follow: %v", err)
	}
	close(c.lines)
	for l := range c.lines {
		c.t.Errorf("unexpected line %q", l)
	}
	return c.all
}

func appendTo(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
}

func line(i int) string {
	return fmt.Sprintf("Nov 23 15:09:%02d lab postfix/smtp[1]: line %d %s", i%60, i, strings.Repeat("x", i))
}

// TestFileRotationAndRestart: every line is handed over exactly once
// through partial writes, rename-and-create rotation, copytruncate
// rotation, a restart, and a rotation while stopped.
func TestFileRotationAndRestart(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "mail.log"), filepath.Join(dir, "mail.pos")
	f := &File{Path: path, State: state, Poll: 50 * time.Millisecond}
	appendTo(t, path, line(1)+"\n", line(2)+"\n", line(3)+"\n")
	c := start(t, f, nil)
	c.expect(line(1), line(2), line(3))

	// A line written in two parts is handed over once complete.
	appendTo(t, path, line(4)+"\n", line(5)[:10])
	c.expect(line(4))
	appendTo(t, path, line(5)[10:]+"\n")
	c.expect(line(5))

	// Rename and create: a writer still holding the old file finishes
	// its line there; the follower reads it before moving on.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", line(6)+"\n")
	c.expect(line(6))
	appendTo(t, path, line(7)+"\n")
	c.expect(line(7))

	// copytruncate, then the writer goes on at once, past the old offset.
	old, _ := os.ReadFile(path)
	os.WriteFile(path+".2", old, 0o644)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, line(40)+"\n")
	c.expect(line(40))
	all := c.stop()

	// A restart resumes after the last line handled.
	appendTo(t, path, line(41)+"\n", line(42)+"\n")
	c = start(t, f, all)
	c.expect(line(41), line(42))
	all = c.stop()

	// Rotated while stopped: the rest of the old file, then the new one.
	appendTo(t, path, line(43)+"\n")
	os.Rename(path, path+".3")
	appendTo(t, path, line(44)+"\n")
	c = start(t, f, all)
	c.expect(line(43), line(44))
	all = c.stop()

	// Truncated and rewritten past the offset while stopped.
	os.WriteFile(path, []byte(line(50)+"\n"+line(51)+"\n"), 0o644)
	c = start(t, f, all)
	c.expect(line(50), line(51))
	all = c.stop()

	want := []int{1, 2, 3, 4, 5, 6, 7, 40, 41, 42, 43, 44, 50, 51}
	if len(all) != len(want) {
		t.Fatalf("%d lines handed over, want %d: %q", len(all), len(want), all)
	}
	for i, n := range want {
		if all[i] != line(n) {
			t.Errorf("line %d = %q, want %q", i, all[i], line(n))
		}
	}
}

// TestFileOverlongLine: a line longer than maxLine is cut, and the lines
// after it are intact.
func TestFileOverlongLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	long := strings.Repeat("y", 3*maxLine)
	appendTo(t, path, long+"\n", "after\n")
	c := start(t, &File{Path: path, State: filepath.Join(dir, "pos"), Poll: 50 * time.Millisecond}, nil)
	c.expect(long[:maxLine], "after")
	c.stop()
	pos, err := loadPosition(filepath.Join(dir, "pos"))
	if err != nil || pos.Offset != int64(len(long)+1+len("after\n")) {
		t.Errorf("saved position %+v, %v; want offset %d", pos, err, len(long)+1+len("after\n"))
	}
}

// TestFileMissingAtStart: following a log that does not exist yet waits
// for it.
func TestFileMissingAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	c := start(t, &File{Path: path, State: filepath.Join(dir, "pos"), Poll: 50 * time.Millisecond}, nil)
	time.Sleep(100 * time.Millisecond)
	appendTo(t, path, line(1)+"\n")
	c.expect(line(1))
	c.stop()
}

// TestRefusedLineIsReadAgain: a handler that cannot handle a line stops
// the follower before it; the next start begins with that line.
func TestRefusedLineIsReadAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o644)
	f := &File{Path: path, State: filepath.Join(dir, "pos"), Poll: 20 * time.Millisecond}
	var got []string
	err := f.Follow(context.Background(), func(l string) bool {
		if l == "two" {
			return false // the store is down and serve is stopping
		}
		got = append(got, l)
		return true
	})
	if err != nil || strings.Join(got, ",") != "one" {
		t.Fatalf("first run: %v, lines %q", err, got)
	}
	c := start(t, f, nil)
	c.expect("two", "three")
	c.stop()
}
