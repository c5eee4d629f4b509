package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClassify: one JSON line per recipient record, tokens judged with
// the key ring, the store untouched (it is never opened).
func TestClassify(t *testing.T) {
	cfg, dir := newState(t)
	r := runCfg(t, cfg, "", "bouncepipe", "classify",
		"../../bouncepipe/testdata/01-postfix-dsn-failed.eml",
		"../../bouncepipe/testdata/03-dsn-delivered.eml",
		"../../bouncepipe/testdata/11-human-reply.eml")
	if r.code != exitOK {
		t.Fatalf("classify: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 { // 1 + 2 records + 1 line without a record
		t.Fatalf("%d lines:\n%s", len(lines), r.stdout)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"recipient": "rcpt@dest.example.test", "reason": "userunknown", "hard": true, "status": "5.1.1", "reply_code": "550"} {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if !strings.Contains(lines[3], `"recipient":""`) {
		t.Errorf("a message without records: %s", lines[3])
	}
	// No key ring here: said so, and no token counts as verified.
	if !strings.Contains(r.stderr, "tokens are not verified") || strings.Contains(r.stdout, `"token":"verified"`) {
		t.Errorf("stderr %q", r.stderr)
	}
	if r := runCfg(t, cfg, "", "bouncepipe", "classify", dir+"/missing.eml"); r.code != exitFailure {
		t.Errorf("missing file: %+v", r)
	}
}

// TestClassifyMailbox: a saved mailbox of two bounces gives the records of
// both; a file that merely starts like one is still one message.
func TestClassifyMailbox(t *testing.T) {
	cfg, dir := newState(t)
	dsn, err := os.ReadFile("../../bouncepipe/testdata/01-postfix-dsn-failed.eml")
	if err != nil {
		t.Fatal(err)
	}
	const postmark = "From MAILER-DAEMON  Mon Nov 23 10:00:00 2026\n"
	mbox := filepath.Join(dir, "bounces.mbox")
	if err := os.WriteFile(mbox, []byte(postmark+string(dsn)+"\n"+postmark+string(dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "one.eml")
	if err := os.WriteFile(one, []byte(postmark+string(dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCfg(t, cfg, "", "bouncepipe", "classify", mbox, one)
	if r.code != exitOK {
		t.Fatalf("classify: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 2 from the mailbox and 1 from the message:\n%s", len(lines), r.stdout)
	}
	for i, l := range lines {
		if !strings.Contains(l, `"recipient":"rcpt@dest.example.test"`) || !strings.Contains(l, `"reason":"userunknown"`) {
			t.Errorf("line %d: %s", i+1, l)
		}
	}
}
