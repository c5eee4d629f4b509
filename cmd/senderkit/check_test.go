package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.toml", "state_dir = \""+dir+"\"\n[[scope]]\nname = \"acme\"\nsender_domains = [\"acme.example\"]\n")
	if r := runCLI(t, "", "check", "-c", good); r.code != exitOK || !strings.Contains(r.stdout, "good.toml: ok (1 scope(s)") {
		t.Errorf("good file: %+v", r)
	}
	bad := writeFile(t, dir, "bad.toml", "[bounce]\ndomain = \"not a domain\"\n\n[[scope]]\nname = \"acme\"\nclients = [\"10.0.0.1/8\"]\n[[scope.stream]]\nname = \"x\"\nkind = \"weekly\"\n")
	r := runCLI(t, "", "check", "-c", bad)
	if r.code != exitFailure {
		t.Errorf("bad file: exit %d", r.code)
	}
	for _, want := range []string{
		bad + `:2: bounce.domain: addr: bad domain`,
		bad + `:6: scope[0].clients[0]: "10.0.0.1/8" has host bits set`,
		bad + `:9: scope[0].stream[0].kind: "weekly"`,
		"senderkit check: 3 error(s)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stderr)
		}
	}
	// A key directory that cannot be used is reported too.
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o700)
	writeFile(t, keys, "1.key", "not hex")
	if r := runCLI(t, "", "check", "-c", good); r.code != exitFailure || !strings.Contains(r.stderr, "tokens.key_dir") {
		t.Errorf("bad key: %+v", r)
	}
	if r := runCLI(t, "", "check", "-example"); r.code != exitOK || !strings.Contains(r.stdout, "[[scope]]") {
		t.Errorf("check -example: %+v", r)
	}
	if r := runCLI(t, "", "check", "-c", filepath.Join(dir, "missing.toml")); r.code != exitFailure {
		t.Errorf("missing file: %+v", r)
	}
}
