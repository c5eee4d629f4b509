package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/senderkit/senderkit/internal/doctor/doctortest"
	"github.com/senderkit/senderkit/internal/postfixlab"
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

// dnsWorld is the prepared world of the doctor's tests (testdata/dns).
const dnsWorld = "../../testdata/dns"

func TestCheckDNS(t *testing.T) {
	w := doctortest.StartWorld(t, dnsWorld, doctortest.WorldOptions{})
	r := runCLI(t, "", "check", "-c", w.ConfigFile, "-dns", "-testing__root-ca", w.CAFile)
	if r.code != exitOK {
		t.Fatalf("check -dns on the correct zones: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"senderkit.toml: ok (2 scope(s), bounce domain bounces.acme.example)\n",
		"pass  SPF bounces.acme.example 192.0.2.25 ",
		"pass  DKIM s2024._domainkey.acme.example ",
		"pass  DMARC globex.example (scope globex) ",
		"pass  unsubscribe https://unsub.acme.example:",
		"checks: 14 pass, 0 warn, 0 fail\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	// Without the test CA, the system's roots judge the certificate.
	r = runCLI(t, "", "check", "-c", w.ConfigFile, "-dns")
	if r.code != exitFailure || !strings.Contains(r.stdout, "fail  unsubscribe https://unsub.acme.example:") ||
		!strings.Contains(r.stdout, "the certificate is not valid for unsub.acme.example") ||
		!strings.Contains(r.stderr, "senderkit check: 1 check(s) failed") {
		t.Errorf("check -dns without the test CA: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestCheckDNSBroken(t *testing.T) {
	w := doctortest.StartWorld(t, dnsWorld, doctortest.WorldOptions{Patch: filepath.Join(dnsWorld, "broken", "04-dkim-record-missing.patch")})
	r := runCLI(t, "", "check", "-c", w.ConfigFile, "-dns", "-testing__root-ca", w.CAFile)
	if r.code != exitFailure {
		t.Errorf("exit %d, want %d", r.code, exitFailure)
	}
	for _, want := range []string{
		"fail  DKIM s2024._domainkey.acme.example ",
		"no key record: receivers cannot verify",
		"      fix: publish s2024._domainkey.acme.example. IN TXT ( \"v=DKIM1; k=rsa; p=MIIB",
		"warn  DMARC news.acme.example (scope acme) ",
		"checks: 12 pass, 1 warn, 1 fail\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "senderkit check: 1 check(s) failed") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestCheckDNSHELOName: with check.helo_name empty, the doctor asks
// Postfix (postconf, reading the main.cf that MAIL_CONFIG names) which
// name it says in EHLO.
func TestCheckDNSHELOName(t *testing.T) {
	postfixlab.EnsurePackages(t, map[string]string{"postconf": "postfix"})
	w := doctortest.StartWorld(t, dnsWorld, doctortest.WorldOptions{})
	cfg := strings.Replace(readFile(t, w.ConfigFile), `helo_name = "mail.acme.example"`, "", 1)
	file := writeFile(t, w.Dir, "no-helo.toml", cfg)
	for _, tc := range []struct{ mainCF, want string }{
		{"myhostname = mail.acme.example\n", "pass  HELO mail.acme.example 192.0.2.25 "},
		{"myhostname = mail.acme.example\nsmtp_helo_name = vps-25.hoster.example\n", "warn  HELO vps-25.hoster.example 192.0.2.25 "},
	} {
		dir := t.TempDir()
		writeFile(t, dir, "main.cf", tc.mainCF)
		t.Setenv("MAIL_CONFIG", dir)
		r := runCLI(t, "", "check", "-c", file, "-dns", "-testing__root-ca", w.CAFile)
		if !strings.Contains(r.stdout, tc.want) {
			t.Errorf("main.cf %q: no line %q:\n%s", tc.mainCF, tc.want, r.stdout)
		}
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckDKIMTables: check loads the DKIM tables and keys as serve
// would, and names what is wrong.
func TestCheckDKIMTables(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "KeyTable"), []byte("k example.com:s1:"+filepath.Join(dir, "missing.pem")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "SigningTable"), []byte("*@example.com k\n"), 0o644)
	cfg := writeFile(t, dir, "c.toml", "state_dir = \""+dir+"\"\n[milter]\nkey_table = \""+filepath.Join(dir, "KeyTable")+"\"\nsigning_table = \"refile:"+filepath.Join(dir, "SigningTable")+"\"\n")
	r := runCLI(t, "", "check", "-c", cfg)
	if r.code != exitFailure || !strings.Contains(r.stderr, "milter.key_table") || !strings.Contains(r.stderr, "missing.pem") {
		t.Errorf("missing key: %+v", r)
	}
	if r := runCLI(t, "", "dkim", "keygen", "-d", "example.com", "-s", "s1", "-o", filepath.Join(dir, "missing.pem")); r.code != exitOK {
		t.Fatalf("keygen: %+v", r)
	}
	if r := runCLI(t, "", "check", "-c", cfg); r.code != exitOK {
		t.Errorf("with the key: %+v", r)
	}
}
