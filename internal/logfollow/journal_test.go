package logfollow

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// writeJournal writes entries to a journal file with
// systemd-journal-remote (Journal Export Format on stdin), as journald
// would. Each entry is a Postfix message at its own second.
func writeJournal(t *testing.T, path string, first int, msgs ...string) {
	t.Helper()
	var b strings.Builder
	for i, m := range msgs {
		n := first + i
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n", int64(1795000000+n)*1_000_000, n)
		fmt.Fprintf(&b, "_HOSTNAME=lab\nSYSLOG_FACILITY=2\nSYSLOG_IDENTIFIER=postfix/smtp\nSYSLOG_PID=%d\nMESSAGE=%s\n\n", 100+n, m)
	}
	// A kernel line (facility 0) that the follower must not see.
	fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\nSYSLOG_FACILITY=0\nSYSLOG_IDENTIFIER=kernel\nMESSAGE=not mail\n\n",
		int64(1795000000+first+len(msgs))*1_000_000, first+len(msgs))
	cmd := exec.Command(journalRemote(), "--output="+path, "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, out)
	}
}

func journalRemote() string {
	for _, p := range []string{"/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "systemd-journal-remote"
}

func needJournalTools(t *testing.T) {
	// EnsurePackages looks commands up in $PATH; the journal writer lives
	// in systemd's library directory.
	t.Setenv("PATH", os.Getenv("PATH")+":/lib/systemd:/usr/lib/systemd")
	postfixlab.EnsurePackages(t, map[string]string{"journalctl": "systemd", "systemd-journal-remote": "systemd-journal-remote"})
}

func entry(n int) string { return fmt.Sprintf("Q%05d: to=<u%d@dest.example>, status=sent (ok)", n, n) }

func want(n int) string {
	return time.Unix(int64(1795000000+n), 0).UTC().Format("2006-01-02T15:04:05.000000Z07:00") +
		fmt.Sprintf(" lab postfix/smtp[%d]: ", 100+n) + entry(n)
}

// TestJournal: journalctl's entries arrive as syslog lines, new journal
// files are followed, and a restart resumes after the saved cursor.
func TestJournal(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	os.Mkdir(jdir, 0o755)
	writeJournal(t, filepath.Join(jdir, "a.journal"), 1, entry(1), entry(2))
	j := &Journal{State: filepath.Join(dir, "cursor"), Args: []string{"--directory=" + jdir}, Since: "2020-01-01", Restart: 100 * time.Millisecond}
	c := start(t, j, nil)
	c.expect(want(1), want(2))
	writeJournal(t, filepath.Join(jdir, "b.journal"), 3, entry(3))
	c.expect(want(3))
	all := c.stop()

	writeJournal(t, filepath.Join(jdir, "c.journal"), 4, entry(4), entry(5))
	c = start(t, j, all)
	c.expect(want(4), want(5))
	// Give a repeat of old entries the time to show up, were there one.
	time.Sleep(300 * time.Millisecond)
	all = c.stop()
	if len(all) != 5 {
		t.Errorf("%d lines, want 5: %q", len(all), all)
	}
}
