// Package dkimpy checks DKIM signatures with a verifier senderkit did not
// write: python3-dkim (dkimpy), as Debian packages it. Tests use it,
// with a DNS stand-in that answers key queries from the TXT records
// `senderkit dkim keygen` printed.
package dkimpy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Packages maps the command that shows python3-dkim is installed to its
// Debian package, for postfixlab.EnsurePackages.
var Packages = map[string]string{"dkimverify": "python3-dkim"}

// Python is Debian's interpreter, which has the module (a python3
// earlier on PATH may not).
const Python = "/usr/bin/python3"

// script verifies every DKIM-Signature of the message in argv[1],
// answering key queries from the JSON map of TXT records in argv[2].
const script = `
import json, sys, dkim
msg = open(sys.argv[1], 'rb').read()
records = json.load(open(sys.argv[2]))
def dnsfunc(name, timeout=5):
    txt = records.get(name.decode().rstrip('.'))
    return txt.encode() if txt else None
headers, body = dkim.rfc822_parse(msg)
n = sum(1 for k, v in headers if k.lower() == b'dkim-signature')
for i in range(n):
    d = dkim.DKIM(msg)
    ok = d.verify(idx=i, dnsfunc=dnsfunc)
    print(i, (d.domain or b'').decode(), (d.selector or b'').decode(), ok)
`

// Result is dkimpy's verdict on one signature.
type Result struct {
	Domain, Selector string
	OK               bool
}

// Verify runs dkimpy on msg. records maps "selector._domainkey.domain"
// to the TXT record's text. dir is a scratch directory.
func Verify(dir string, msg []byte, records map[string]string) ([]Result, error) {
	mf, rf, sf := filepath.Join(dir, "dkimpy.msg"), filepath.Join(dir, "dkimpy.json"), filepath.Join(dir, "dkimpy.py")
	rj, err := json.Marshal(records)
	if err != nil {
		return nil, err
	}
	for f, b := range map[string][]byte{mf: msg, rf: rj, sf: []byte(script)} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return nil, err
		}
	}
	out, err := exec.Command(Python, sf, mf, rf).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dkimpy: %v\n%s", err, out)
	}
	var rs []Result
	re := regexp.MustCompile(`^(\d+) (\S*) (\S*) (True|False)$`)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil {
			return nil, fmt.Errorf("dkimpy said %q", l)
		}
		rs = append(rs, Result{m[2], m[3], m[4] == "True"})
	}
	return rs, nil
}

// Records reads the TXT records out of zone-file text such as `senderkit
// dkim keygen` prints: "name. IN TXT ( "part" "part" )" becomes
// name -> the parts joined.
func Records(zone string) map[string]string {
	recs := map[string]string{}
	re := regexp.MustCompile(`(?s)(\S+)\.\s+IN\s+TXT\s+(\([^)]*\)|"[^"]*")`)
	str := regexp.MustCompile(`"([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(zone, -1) {
		var b strings.Builder
		for _, s := range str.FindAllStringSubmatch(m[2], -1) {
			b.WriteString(s[1])
		}
		recs[m[1]] = b.String()
	}
	return recs
}
