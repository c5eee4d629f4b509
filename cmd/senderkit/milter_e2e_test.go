package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/milter/dkimpy"
)

// keygen runs `senderkit dkim keygen` and returns the TXT records and
// the KeyTable line it printed.
func keygen(t *testing.T, dir, domain, selector, alg string) (records map[string]string, keyTableLine string) {
	t.Helper()
	r := runCLI(t, "", "dkim", "keygen", "-d", domain, "-s", selector, "-a", alg, "-o", filepath.Join(dir, selector+".pem"))
	if r.code != exitOK {
		t.Fatalf("dkim keygen: %+v", r)
	}
	m := regexp.MustCompile(`(?m)^; KeyTable line:\n; (.*)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("dkim keygen printed no KeyTable line:\n%s", r.stdout)
	}
	return dkimpy.Records(r.stdout), m[1]
}

// contribMilter reads contrib/postfix/milter.main.cf and
// milter.master.cf as an administrator installs them, with this test's
// ports.
func contribMilter(t *testing.T, milterAddr, copyAddr string) postfixlab.Options {
	t.Helper()
	fix := strings.NewReplacer("127.0.0.1:10026", milterAddr, "127.0.0.1:10029", copyAddr)
	o := postfixlab.Options{Main: map[string]string{}}
	b, err := os.ReadFile("../../contrib/postfix/milter.main.cf")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(fix.Replace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			o.Main[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	b, err = os.ReadFile("../../contrib/postfix/milter.master.cf")
	if err != nil {
		t.Fatal(err)
	}
	o.MasterLines = strings.Split(strings.TrimRight(fix.Replace(string(b)), "\n"), "\n")
	return o
}

// `senderkit serve` as INSTALL.md sets it up: keys made with `senderkit
// dkim keygen` and listed in OpenDKIM tables, the Postfix lines of
// contrib/postfix. Mail submitted by SMTP and by sendmail(1) leaves
// VERPed, with one-click List-Unsubscribe and Feedback-ID, and an RSA
// and an Ed25519 signature that python3-dkim verifies against the TXT
// records keygen printed. A new key written into the KeyTable is in
// force for the next message, without a restart.
func TestServeMilterEndToEnd(t *testing.T) {
	postfixlab.EnsurePackages(t, dkimpy.Packages)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o750)
	records, rsaLine := keygen(t, dir, "example.com", "rsa2026", "rsa")
	edRecords, edLine := keygen(t, dir, "example.com", "ed2026", "ed25519")
	for k, v := range edRecords {
		records[k] = v
	}
	writeFile(t, dir, "KeyTable", rsaLine+"\n"+edLine+"\n")
	writeFile(t, dir, "SigningTable", "*@example.com rsa2026._domainkey.example.com\n*@example.com ed2026._domainkey.example.com\n")

	milterAddr, copyAddr := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, dir, "senderkit.toml", fmt.Sprintf(`state_dir = %q
[bounce]
domain = "bounces.example.net"
[milter]
listen = "inet:%s"
copy_service = %q
key_table = "refile:%s"
signing_table = "refile:%s"
multiple_signatures = true
[policy]
listen = ""
[http]
listen = ""
base_url = "https://unsub.example.net/u/"
[metrics]
listen = ""
[[scope]]
name = "acme"
sender_domains = ["example.com"]
`, state, milterAddr, copyAddr, filepath.Join(dir, "KeyTable"), filepath.Join(dir, "SigningTable")))

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
	waitLog(t, log, "milter listening")

	lab := postfixlab.Start(t, contribMilter(t, milterAddr, copyAddr))
	msg := func(to string) []byte {
		return []byte("From: News <news@example.com>\r\nTo: <" + to + ">\r\nSubject: hello " + to + "\r\n\r\nHello.\r\n")
	}
	if err := lab.Send("news@example.com", []string{"a@dest.example"}, msg("a@dest.example")); err != nil {
		t.Fatal(err)
	}
	if err := lab.Sendmail("news@example.com", []string{"b@dest.example"}, msg("b@dest.example")); err != nil {
		t.Fatal(err)
	}
	check := func(m postfixlab.Message, want ...string) {
		t.Helper()
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Data)))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^b\+[a-z2-7]{42,48}@bounces\.example\.net$`).MatchString(m.From) {
			t.Errorf("%v: envelope sender %q is not VERP", m.To, m.From)
		}
		tok := strings.TrimSuffix(strings.TrimPrefix(m.From, "b+"), "@bounces.example.net")
		if lu := h.Get("List-Unsubscribe"); lu != "<mailto:unsubscribe+"+tok+"@bounces.example.net>, <https://unsub.example.net/u/"+tok+">" ||
			h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Errorf("%v: List-Unsubscribe %q, -Post %q", m.To, lu, h.Get("List-Unsubscribe-Post"))
		}
		if f := h.Get("Feedback-ID"); f != "bulk:acme:bulk:bounces.example.net" {
			t.Errorf("%v: Feedback-ID %q", m.To, f)
		}
		rs, err := dkimpy.Verify(t.TempDir(), m.Data, records)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			if !r.OK {
				t.Errorf("%v: dkimpy fails d=%s s=%s", m.To, r.Domain, r.Selector)
			}
			got = append(got, r.Selector)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%v: signatures by %v, want %v", m.To, got, want)
		}
	}
	for _, m := range lab.Sink.Wait(t, 2, time.Minute) {
		check(m, "ed2026", "rsa2026")
	}

	// A new RSA key replaces the old one in the KeyTable: the next
	// message is signed with it (and verifies only against its record).
	newRecords, newLine := keygen(t, dir, "example.com", "rsa2027", "rsa")
	for k, v := range newRecords {
		records[k] = v
	}
	delete(records, "rsa2026._domainkey.example.com")
	writeFile(t, dir, "KeyTable.new", newLine+"\n"+edLine+"\n")
	writeFile(t, dir, "SigningTable.new", "*@example.com rsa2027._domainkey.example.com\n*@example.com ed2026._domainkey.example.com\n")
	os.Rename(filepath.Join(dir, "KeyTable.new"), filepath.Join(dir, "KeyTable"))
	os.Rename(filepath.Join(dir, "SigningTable.new"), filepath.Join(dir, "SigningTable"))
	waitLog(t, log, "configuration reloaded")
	lab.Sink.Reset()
	if err := lab.Send("news@example.com", []string{"c@dest.example"}, msg("c@dest.example")); err != nil {
		t.Fatal(err)
	}
	check(lab.Sink.Wait(t, 1, time.Minute)[0], "ed2026", "rsa2027")

	// A broken key table is refused: the keys in force stay.
	writeFile(t, dir, "SigningTable", "*@example.com no-such-key\n")
	waitLog(t, log, `configuration reload failed`)
	if !strings.Contains(log.String(), `key \"no-such-key\" is not in KeyTable`) {
		t.Errorf("the refused reload does not say why:\n%s", log.String())
	}
	lab.Sink.Reset()
	if err := lab.Send("news@example.com", []string{"d@dest.example"}, msg("d@dest.example")); err != nil {
		t.Fatal(err)
	}
	check(lab.Sink.Wait(t, 1, time.Minute)[0], "ed2026", "rsa2027")
}

func TestDKIMExplain(t *testing.T) {
	src := "../../testdata/dkim"
	dir := t.TempDir()
	kt, err := os.ReadFile(filepath.Join(src, "KeyTable"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "keys"), 0o755)
	keys, _ := filepath.Glob(filepath.Join(src, "keys", "*.pem"))
	for _, k := range keys {
		b, _ := os.ReadFile(k)
		os.WriteFile(filepath.Join(dir, "keys", filepath.Base(k)), b, 0o600)
	}
	writeFile(t, dir, "KeyTable", strings.ReplaceAll(string(kt), "/etc/opendkim/keys/", filepath.Join(dir, "keys")+"/"))
	st, _ := os.ReadFile(filepath.Join(src, "SigningTable"))
	writeFile(t, dir, "SigningTable", string(st))
	cfg := writeFile(t, dir, "senderkit.toml", fmt.Sprintf(`state_dir = %q
[milter]
key_table = "KeyTable"
signing_table = "refile:SigningTable"
multiple_signatures = true
provider_keys = ["provider"]
`, dir))
	r := runCLI(t, "", "dkim", "explain", "-c", cfg, "Someone@Example.ORG")
	for _, want := range []string{
		"From Someone@example.org (domain example.org)",
		`SigningTable line 5 "*@example.org" -> key "news.example.org"`,
		"sign: d=example.org s=news i=@news.example.org a=rsa-sha256 (RSA 2048), aligned with example.org",
		"sign: d=provider.test s=p1 a=ed25519-sha256 (Ed25519), the provider's signature",
		"2 signature(s): d=example.org s=news; d=provider.test s=p1;",
	} {
		if r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("dkim explain: %+v\nwant a line with %q", r, want)
		}
	}
	os.Remove(filepath.Join(dir, "keys", "customer2.test.pem"))
	r = runCLI(t, "", "dkim", "explain", "-c", cfg, "x@customer2.test")
	if !strings.Contains(r.stdout, "refused: ") || !strings.Contains(r.stdout, "customer2.test.pem") || !strings.Contains(r.stdout, "tempfailed until this is fixed") {
		t.Errorf("dkim explain for a missing %% key: %+v", r)
	}
	r = runCLI(t, "", "dkim", "dns", "-c", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "ceo._domainkey.example.org. IN TXT ( \"v=DKIM1; k=rsa; p=") ||
		!strings.Contains(r.stdout, `ed2026._domainkey.example.com. IN TXT "v=DKIM1; k=ed25519; p=`) {
		t.Errorf("dkim dns: %+v", r)
	}
	// keygen never overwrites a key.
	if r := runCLI(t, "", "dkim", "keygen", "-d", "example.com", "-s", "x", "-o", filepath.Join(dir, "keys", "provider.test.pem")); r.code == exitOK {
		t.Errorf("keygen overwrote a key: %+v", r)
	}
	if r := runCLI(t, "", "dkim"); r.code != exitUsage {
		t.Errorf("dkim without a command: %+v", r)
	}
}
