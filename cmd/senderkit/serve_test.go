package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
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
		return fmt.Sprintf("state_dir = %q\n[bounce]\ndomain = %q\n[milter]\nlisten = \"\"\n[policy]\nlisten = \"\"\n[http]\nlisten = \"\"\n[metrics]\nlisten = \"\"\n", state, domain)
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

// TestServeUnsubscribeEndpoint: serve answers the one-click POST at the
// URL the milter writes, with the key it created itself.
func TestServeUnsubscribeEndpoint(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	addr, maddr := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, dir, "senderkit.toml", fmt.Sprintf(`state_dir = %q
[milter]
listen = ""
[policy]
listen = ""
[http]
listen = %q
base_url = "http://%s/u/"
[metrics]
listen = %q
`, state, addr, addr, maddr))
	ctx, cancel := context.WithCancel(context.Background())
	log := &lockedBuffer{}
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "-c", cfg}, strings.NewReader(""), log, log) }()
	defer func() { cancel(); <-done }()
	waitLog(t, log, "unsubscribe endpoint listening")

	c, _ := conf.Load(cfg)
	keys, err := token.LoadKeyring(c.KeyDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bg := context.Background()
	sc, _ := st.ID(bg, store.ScopeName, "default")
	sm, _ := st.ID(bg, store.StreamName, "bulk")
	st.AddSend(bg, store.Send{ID: 77, Scope: "default", Stream: "bulk", Recipient: "bob@example.com", At: time.Now()})
	tok, _ := keys.Encode(token.Token{Kind: token.Copy, Time: time.Now(), SendID: 77, Scope: sc, Stream: sm})

	get, err := http.Get("http://" + addr + "/u/" + tok)
	if err != nil || get.StatusCode != 200 {
		t.Fatalf("GET: %v %v", get, err)
	}
	get.Body.Close()
	resp, err := http.Post("http://"+addr+"/u/"+tok, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, ok, _ := st.Lookup(bg, store.Query{Scope: "default", Address: "bob@example.com", At: time.Now()}); !ok {
		t.Error("the one-click POST to serve did not unsubscribe")
	}
	other, _ := token.NewKeyring(token.Key{ID: 1, Secret: []byte(strings.Repeat("x", 32))})
	ftok, _ := other.Encode(token.Token{Kind: token.Copy, Time: time.Now(), SendID: 77, Scope: sc, Stream: sm})
	forged, _ := http.Get("http://" + addr + "/u/" + ftok)
	forged.Body.Close()
	// The metrics count exactly what happened: one unsubscribe (by the
	// endpoint, and as a store event), one page, one bad link.
	m := scrapeMetrics(t, maddr)
	for k, want := range map[string]string{
		"senderkit_http_unsubscribes_total":             "1",
		"senderkit_http_pages_total":                    "1",
		"senderkit_http_malformed_total":                "0",
		"senderkit_http_forged_tokens_total":            "1",
		`senderkit_unsubscribes_total{scope="default"}`: "1",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %s", k, m[k], want)
		}
	}
}

// scrapeMetrics reads serve's /metrics into name{labels} -> value.
func scrapeMetrics(t *testing.T, addr string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}
