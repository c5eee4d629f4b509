package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
)

// result is one run of the command line.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// lockedBuffer collects the log of a command running in a goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestUsageAndVersion(t *testing.T) {
	if r := runCLI(t, ""); r.code != exitUsage || !strings.Contains(r.stderr, "suppress") {
		t.Errorf("no arguments: %+v", r)
	}
	if r := runCLI(t, "", "frobnicate"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %+v", r)
	}
	if r := runCLI(t, "", "version"); r.code != exitOK || !strings.HasPrefix(r.stdout, "senderkit dev (go") {
		t.Errorf("version: %+v", r)
	}
}
