package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func waitLog(t *testing.T, log *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in the log:\n%s", want, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeKeyAndReload: serve creates the token key, reloads a changed
// file, keeps the old configuration when the new one is broken, and
// reloads on SIGHUP.
func TestServeKeyAndReload(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgText := func(domain string) string {
		return fmt.Sprintf("state_dir = %q\n[bounce]\ndomain = %q\n[milter]\nlisten = \"\"\n[policy]\nlisten = \"\"\n[http]\nlisten = \"\"\n", state, domain)
	}
	cfg := writeFile(t, dir, "senderkit.toml", cfgText("bounces.one.example"))
	ctx, cancel := context.WithCancel(context.Background())
	log := &lockedBuffer{}
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "-c", cfg}, strings.NewReader(""), log, log) }()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d:\n%s", code, log.String())
		}
	}()
	waitLog(t, log, "senderkit serve started")
	if !strings.Contains(log.String(), "bounce_domain=bounces.one.example") || !strings.Contains(log.String(), `msg="created a token key"`) {
		t.Errorf("start log:\n%s", log.String())
	}
	fi, err := os.Stat(filepath.Join(state, "keys", "1.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token key: %v, mode %v", err, fi.Mode())
	}

	// An edit takes effect.
	tmp := cfg + ".new"
	os.WriteFile(tmp, []byte(cfgText("bounces.two.example")), 0o644)
	os.Rename(tmp, cfg)
	waitLog(t, log, "bounce_domain=bounces.two.example")

	// A broken file is refused, with the reason, and the old one stays.
	os.WriteFile(cfg, []byte(cfgText("bounces.two.example")+"[[scope]]\nname = \"bad name\"\n"), 0o644)
	waitLog(t, log, "configuration reload failed; keeping the previous configuration")
	if !strings.Contains(log.String(), `scope[0].name: \"bad name\"`) {
		t.Errorf("the refusal does not name the key:\n%s", log.String())
	}

	// SIGHUP reloads a fixed file.
	os.WriteFile(cfg, []byte(cfgText("bounces.three.example")), 0o644)
	time.Sleep(300 * time.Millisecond) // let the file watcher's own reload pass first
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, log, "SIGHUP: reloading")
	waitLog(t, log, "bounce_domain=bounces.three.example")

	// A new token key in the key directory is picked up.
	os.WriteFile(filepath.Join(state, "keys", "2.key"), []byte(strings.Repeat("ab", 32)), 0o600)
	waitLog(t, log, "signing_key=2")
}

func TestServeRefusesBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "senderkit.toml", "state_dir = \"relative\"\n")
	r := runCLI(t, "", "serve", "-c", cfg)
	if r.code != exitFailure || !strings.Contains(r.stderr, `senderkit.toml:1: state_dir: "relative" is not an absolute path`) {
		t.Errorf("serve with a broken file: %+v", r)
	}
}
