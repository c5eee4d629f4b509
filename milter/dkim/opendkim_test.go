package dkim

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// fromAddresses are the From addresses the sample tables are tried on:
// one for every kind of rule, and a few that match none of the specific
// ones.
var fromAddresses = []string{
	"ceo@example.org", "someone@example.org", "Bob@EXAMPLE.com", "a@news.example.com",
	"y@example.net", "z@customer1.test", "z@customer2.test", "q@elsewhere.test", "ceo@example.org.evil.test",
}

// OpenDKIM itself, running with the sample KeyTable and SigningTable,
// signs each From address with the same d=, s= and i= that Select
// chooses: for both kinds of SigningTable (refile: and file:), with and
// without MultipleSignatures.
//
// OpenDKIM 2.11 makes every signature with one SignatureAlgorithm, so
// this test gives it RSA keys in place of the sample's Ed25519 ones: the
// choice of d= and s= does not depend on the key type.
func TestSameChoiceAsOpenDKIM(t *testing.T) {
	postfixlab.NeedRoot(t, "running OpenDKIM (it drops to its own user)")
	postfixlab.EnsurePackages(t, map[string]string{"opendkim": "opendkim"})
	dir := sampleDir(t)
	for _, k := range []string{"example.com-ed.pem", "provider.test.pem"} {
		key, err := GenerateKey("rsa", 1024)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := MarshalPrivateKey(key)
		os.WriteFile(filepath.Join(dir, "keys", k), b, 0o600)
	}
	u, err := user.Lookup("opendkim")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // opendkim runs as its own user
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*.pem"))
	for _, k := range keys {
		os.Chown(k, uid, gid)
	}

	for _, c := range []struct {
		table    string
		multiple bool
	}{
		{"refile:SigningTable", true}, {"refile:SigningTable", false},
		{"file:SigningTable.file", true}, {"file:SigningTable.file", false},
	} {
		t.Run(fmt.Sprintf("%s,multiple=%v", c.table, c.multiple), func(t *testing.T) {
			s := load(t, Options{KeyTable: "refile:KeyTable", SigningTable: c.table, Dir: dir, Multiple: c.multiple, ProviderKeys: []string{"provider"}})
			got := openDKIMChoices(t, dir, c.table, c.multiple)
			for _, from := range fromAddresses {
				user, domain, _ := strings.Cut(from, "@")
				ours, _, err := s.Select(user, strings.ToLower(domain))
				if err != nil {
					t.Errorf("%s: %v", from, err)
				}
				want := sigs(ours)
				// OpenDKIM up to 2.11.0~beta2 (Debian 12) loses every
				// signing request between the first and the last
				// (dkimf_add_signrequest never advances its list's tail;
				// fixed by trusteddomainproject/OpenDKIM#274): with three
				// or more matches it signs with the first and the last
				// only. senderkit signs with all of them, as
				// MultipleSignatures means.
				var buggy []sig
				if len(want) >= 3 {
					buggy = []sig{want[0], want[len(want)-1]}
					slices.SortFunc(buggy, compareSig)
				}
				slices.SortFunc(want, compareSig)
				switch {
				case slices.Equal(got[from], want):
				case buggy != nil && slices.Equal(got[from], buggy):
					t.Logf("%s: OpenDKIM signs %v, the first and last of %v (its bug, OpenDKIM#274)", from, got[from], want)
				default:
					t.Errorf("%s: OpenDKIM signs %v, senderkit %v", from, got[from], want)
				}
			}
		})
	}
}

func compareSig(a, b sig) int { return strings.Compare(a.d+a.s+a.i, b.d+b.s+b.i) }

// openDKIMChoices runs OpenDKIM with the sample tables and, playing
// the MTA's part of the milter protocol (go-milter's client), gives it
// one message per From address from 127.0.0.1 (an internal host, whose
// mail OpenDKIM signs); it returns the signatures OpenDKIM adds to each.
func openDKIMChoices(t *testing.T, dir, table string, multiple bool) map[string][]sig {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	kind, file, _ := strings.Cut(table, ":")
	conf := fmt.Sprintf(`Syslog no
Background no
Mode s
BaseDirectory %s
KeyTable refile:%s
SigningTable %s:%s
MultipleSignatures %v
Canonicalization relaxed/relaxed
Socket inet:%d@127.0.0.1
PidFile %s
UserID opendkim:opendkim
RequireSafeKeys no
`, dir, filepath.Join(dir, "KeyTable"), kind, filepath.Join(dir, file), multiple, port, filepath.Join(t.TempDir(), "opendkim.pid"))
	confFile := filepath.Join(dir, "opendkim.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("opendkim", "-x", confFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill() // the one we started
		cmd.Wait()
		if t.Failed() {
			t.Logf("opendkim said:\n%s", out.String())
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("opendkim does not listen on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	client := milter.NewClient("tcp", addr)
	got := map[string][]sig{}
	for i, from := range fromAddresses {
		macros := milter.NewMacroBag()
		macros.Set(milter.MacroMTAFQDN, "lab.example.test")
		macros.Set(milter.MacroDaemonName, "smtpd")
		macros.Set(milter.MacroQueueId, fmt.Sprintf("Q%d", i))
		sess, err := client.Session(macros)
		if err != nil {
			t.Fatalf("%s: %v\n%s", from, err, out.String())
		}
		must := func(act *milter.Action, err error) {
			t.Helper()
			if err != nil || act.StopProcessing() {
				t.Fatalf("%s: opendkim: %v %v\n%s", from, act, err, out.String())
			}
		}
		must(sess.Conn("localhost", milter.FamilyInet, 40000, "127.0.0.1"))
		must(sess.Helo("client.example.test"))
		must(sess.Mail("<sender@elsewhere.example>", ""))
		must(sess.Rcpt("<r@dest.example>", ""))
		must(sess.DataStart())
		must(sess.HeaderField("From", " <"+from+">", nil))
		must(sess.HeaderField("To", " <r@dest.example>", nil))
		must(sess.HeaderField("Subject", " "+from, nil))
		must(sess.HeaderEnd())
		acts, act, err := sess.BodyReadFrom(strings.NewReader("body\r\n"))
		must(act, err)
		sess.Close()
		var ss []sig
		for _, a := range acts {
			if (a.Type != milter.ActionInsertHeader && a.Type != milter.ActionAddHeader) || !strings.EqualFold(a.HeaderName, "DKIM-Signature") {
				continue
			}
			tags := map[string]string{}
			for _, kv := range strings.Split(strings.Join(strings.Fields(a.HeaderValue), ""), ";") {
				k, val, _ := strings.Cut(kv, "=")
				tags[k] = val
			}
			ss = append(ss, sig{tags["d"], tags["s"], tags["i"]})
		}
		slices.SortFunc(ss, compareSig)
		got[from] = ss
	}
	return got
}
