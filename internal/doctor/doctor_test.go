package doctor

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/doctor/doctortest"
	"github.com/senderkit/senderkit/milter/dkim"
)

// root is the prepared test world: zones, DKIM tables and keys, and the
// configuration template.
const root = "../../testdata/dns"

// runWorld runs the doctor as senderkit check --dns does, against w.
func runWorld(t *testing.T, w *doctortest.World) Report {
	t.Helper()
	cfg := w.Config
	set, err := dkim.Load(dkim.Options{
		KeyTable: cfg.Milter.KeyTable, SigningTable: cfg.Milter.SigningTable, Dir: cfg.StateDir,
		Multiple: cfg.Milter.MultipleSignatures, ProviderKeys: cfg.Milter.ProviderKeys,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(cfg.Check.ResolverAddr(), cfg.Check.Timeout.D())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Servers) != 1 || r.Servers[0] != w.DNS.Addr {
		t.Fatalf("resolver asks %v, not only the test server %s", r.Servers, w.DNS.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := Run(ctx, Options{Config: cfg, DKIM: set, Resolver: r, HELOName: cfg.Check.HELOName, RootCAs: w.CA.Pool()})
	var b strings.Builder
	rep.Write(&b)
	t.Logf("senderkit check --dns:\n%s", b.String())
	return rep
}

// key names a result in expectations: its What, but the unsubscribe
// check (whose What carries the test's random port) is "unsubscribe".
func key(r Result) string {
	if r.Check == CheckUnsubscribe {
		return "unsubscribe"
	}
	return r.What
}

// everyCheck is what the doctor checks in the test world, in order.
var everyCheck = []string{
	"SPF bounces.acme.example 192.0.2.25",
	"SPF bounces.acme.example 2001:db8::25",
	"PTR 192.0.2.25",
	"HELO mail.acme.example 192.0.2.25",
	"PTR 2001:db8::25",
	"HELO mail.acme.example 2001:db8::25",
	"MX bounces.acme.example",
	"DKIM s2024._domainkey.acme.example",
	"DKIM ed2024._domainkey.acme.example",
	"DMARC acme.example (scope acme)",
	"DKIM gx._domainkey.globex.example",
	"DMARC globex.example (scope globex)",
	"DMARC news.acme.example (scope acme)",
	"unsubscribe",
}

func TestCorrectZonesPass(t *testing.T) {
	w := doctortest.StartWorld(t, root, doctortest.WorldOptions{})
	rep := runWorld(t, w)
	var got []string
	for _, r := range rep {
		got = append(got, key(r))
		if r.Status != Pass {
			t.Errorf("%s: %s %s (fix: %s)", r.What, r.Status, r.Detail, r.Fix)
		}
		if r.Detail == "" {
			t.Errorf("%s: no detail", r.What)
		}
	}
	if !slices.Equal(got, everyCheck) {
		t.Errorf("checks made:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(everyCheck, "\n"))
	}
	// Every lookup went to the test server, the HTTPS host's address too:
	// nothing fell back to the system's resolver.
	asked := w.DNS.Asked()
	for _, q := range []string{
		"bounces.acme.example. TXT udp",
		"25.2.0.192.in-addr.arpa. PTR udp",
		"5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR udp",
		"mail.acme.example. AAAA udp",
		"bounces.acme.example. MX udp",
		"s2024._domainkey.acme.example. TXT udp",
		"_dmarc.news.acme.example. TXT udp",
		"_dmarc.acme.example. TXT udp",
		"unsub.acme.example. A udp",
	} {
		if !slices.Contains(asked, q) {
			t.Errorf("the DNS server was not asked %q", q)
		}
	}
}

// expect is what one check must say.
type expect struct {
	status Status
	detail string // substring of Detail
	fix    string // substring of Fix
}

// s2024Record is the zone record of the configured RSA key, which the
// fixes for that key must give.
const s2024Record = `s2024._domainkey.acme.example. IN TXT ( "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlthoS/CXc1rBQHeNiYLKfGb7Mamu9rlXty3xJA/aD/5m6pK9mXOn08mPMOINoQ3iwkmYPvdvxbRBug+BmvDIjqiaQ4ZLuu+M2F218Ktm8mLkkDORILxSCujDuhzfV8Pj8gBoE93YfZsQsxdKbm195tfdyXwJYmbVaW1dmImoeusIuRc/WImGh1CqGjYu5MO4F"
	"9zXoD81Rm5eLU5SPmT6pu8n8Zu2uBvPGjmrure5Y1ZKxzms1zMunAUxLqkAtW+xloDJ7tRUcaLPi+e4GDJ0Upd6YPzhKFljdeoD40hFH0BFTDyc1kejB1RTphAjhsaryV0C/7NA6u6KolKWRRR8KQIDAQAB" )`

const spfFix = `publish bounces.acme.example. IN TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"`

// brokenCases break one record each (testdata/dns/broken/*.patch) and
// say what every check that does not pass must report; every other
// check must pass.
var brokenCases = []struct {
	patch string
	want  map[string]expect
}{
	{"01-spf-missing-ip", map[string]expect{
		"SPF bounces.acme.example 192.0.2.25": {Fail, `fail: "v=spf1 ip6:2001:db8::25 -all" does not allow 192.0.2.25`, spfFix},
	}},
	{"02-spf-too-many-lookups", map[string]expect{
		"SPF bounces.acme.example 192.0.2.25":   {Fail, "needs more than 10 DNS lookups before it reaches 192.0.2.25 (RFC 7208 §4.6.4)", spfFix},
		"SPF bounces.acme.example 2001:db8::25": {Fail, "needs more than 10 DNS lookups before it reaches 2001:db8::25", "at most 10 DNS lookups"},
		// SPF no longer passes, but DKIM still aligns everywhere.
	}},
	{"03-dkim-key-mismatch", map[string]expect{
		"DKIM s2024._domainkey.acme.example": {Fail, "the published key (RSA 2048) is not the configured one (RSA 2048)", "publish " + s2024Record},
		// news.acme.example is signed with that key only: SPF still
		// aligns, but nothing survives forwarding.
		"DMARC news.acme.example (scope acme)": {Warn, "aligned by SPF bounces.acme.example only", "publish the key record the DKIM line above gives"},
	}},
	{"04-dkim-record-missing", map[string]expect{
		"DKIM s2024._domainkey.acme.example":   {Fail, "no key record", "publish " + s2024Record},
		"DMARC news.acme.example (scope acme)": {Warn, "aligned by SPF bounces.acme.example only", "publish the key record"},
	}},
	{"05-dmarc-missing", map[string]expect{
		"DMARC acme.example (scope acme)":      {Fail, "no DMARC record at _dmarc.acme.example", `publish _dmarc.acme.example. IN TXT "v=DMARC1; p=none"`},
		"DMARC news.acme.example (scope acme)": {Fail, "no DMARC record at _dmarc.news.acme.example nor at _dmarc.acme.example", `publish _dmarc.acme.example. IN TXT "v=DMARC1; p=none"`},
	}},
	{"06-dmarc-misaligned", map[string]expect{
		"DMARC news.acme.example (scope acme)": {Fail,
			"does not align: DKIM d=acme.example does not align (adkim=s); SPF bounces.acme.example does not align (aspf=s)",
			`_dmarc.acme.example. IN TXT "v=DMARC1; p=reject; adkim=r; aspf=s; rua=mailto:dmarc-reports@acme.example"`},
	}},
	{"07-ptr-missing", map[string]expect{
		"PTR 192.0.2.25":                    {Fail, "no PTR record at 25.2.0.192.in-addr.arpa.", "25.2.0.192.in-addr.arpa. IN PTR mail.acme.example."},
		"HELO mail.acme.example 192.0.2.25": {Warn, "the PTR of 192.0.2.25 does not confirm it", "25.2.0.192.in-addr.arpa. IN PTR mail.acme.example."},
	}},
	{"08-ptr-helo-mismatch", map[string]expect{
		"PTR 192.0.2.25":                    {Fail, "names mail.acme.example, which does not resolve back to 192.0.2.25", "mail.acme.example. IN A 192.0.2.25"},
		"HELO mail.acme.example 192.0.2.25": {Fail, "resolves to 192.0.2.99, 2001:db8::25, not 192.0.2.25", "publish mail.acme.example. IN A 192.0.2.25"},
		// The MX host still answers over IPv6, but IPv4 senders go astray.
		"MX bounces.acme.example": {Warn, "mail.acme.example also resolves to 192.0.2.99", "bounces.acme.example. IN MX 10 mail.acme.example."},
	}},
	{"09-ptr-generic", map[string]expect{
		"HELO mail.acme.example 192.0.2.25": {Warn, "the PTR names vps-25.hoster.example", "set smtp_helo_name = vps-25.hoster.example"},
	}},
	{"10-mx-missing", map[string]expect{
		"MX bounces.acme.example": {Fail, "no MX record and no address record", "publish bounces.acme.example. IN MX 10 mail.acme.example."},
	}},
	{"11-mx-elsewhere", map[string]expect{
		"MX bounces.acme.example": {Fail, "the MX hosts mx.elsewhere.example (198.51.100.77) do not lead to this Postfix (192.0.2.25, 2001:db8::25)",
			"publish bounces.acme.example. IN MX 10 mail.acme.example."},
	}},
	{"12-null-mx", map[string]expect{
		"MX bounces.acme.example": {Fail, "a null MX (RFC 7505)", "replace it: bounces.acme.example. IN MX 10 mail.acme.example."},
	}},
	{"13-unsubscribe-down", map[string]expect{
		"unsubscribe": {Fail, "nothing answers at 127.0.0.2:", "run senderkit serve with http.listen set"},
	}},
	{"14-dmarc-p-none", map[string]expect{
		"DMARC acme.example (scope acme)":      {Warn, "p=none asks receivers to do nothing", `_dmarc.acme.example. IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@acme.example"`},
		"DMARC news.acme.example (scope acme)": {Warn, "p=none asks receivers to do nothing", `p=quarantine`},
	}},
	{"15-dkim-testing", map[string]expect{
		"DKIM ed2024._domainkey.acme.example": {Warn, "t=y says DKIM is being tested",
			`publish ed2024._domainkey.acme.example. IN TXT "v=DKIM1; k=ed25519; p=wJlTKFsuGD6JisziTSdVBoAs3Az1LmCAScXciirxi8U="`},
	}},
	{"16-mx-implicit", map[string]expect{
		"MX bounces.acme.example": {Warn, "no MX record; mail reaches 192.0.2.25 only through its address record", "publish bounces.acme.example. IN MX 10 mail.acme.example."},
	}},
	{"17-spf-two-records", map[string]expect{
		"SPF bounces.acme.example 192.0.2.25":   {Fail, "permerror: bounces.acme.example publishes more than one SPF record (RFC 7208 §4.5)", "publish exactly one: " + spfFix},
		"SPF bounces.acme.example 2001:db8::25": {Fail, "publishes more than one SPF record", `(in place of "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all" and "v=spf1 include:_spf.crm.example -all"`},
	}},
	{"18-dkim-revoked", map[string]expect{
		"DKIM ed2024._domainkey.acme.example": {Fail, "the published key is revoked (empty p=)",
			`publish ed2024._domainkey.acme.example. IN TXT "v=DKIM1; k=ed25519; p=wJlTKFsuGD6JisziTSdVBoAs3Az1LmCAScXciirxi8U="`},
	}},
}

func TestBrokenRecords(t *testing.T) {
	for _, tc := range brokenCases {
		t.Run(tc.patch, func(t *testing.T) {
			w := doctortest.StartWorld(t, root, doctortest.WorldOptions{Patch: filepath.Join(root, "broken", tc.patch+".patch")})
			checkReport(t, runWorld(t, w), tc.want)
		})
	}
}

// checkReport compares a report with expectations: the checks named in
// want say what it says, every other check passes.
func checkReport(t *testing.T, rep Report, want map[string]expect) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rep {
		k := key(r)
		seen[k] = true
		w, ok := want[k]
		if !ok {
			if r.Status != Pass {
				t.Errorf("%s: %s %s, want pass", r.What, r.Status, r.Detail)
			}
			continue
		}
		if r.Status != w.status {
			t.Errorf("%s: %s, want %s (%s)", r.What, r.Status, w.status, r.Detail)
		}
		if !strings.Contains(r.Detail, w.detail) {
			t.Errorf("%s: detail %q lacks %q", r.What, r.Detail, w.detail)
		}
		if !strings.Contains(r.Fix, w.fix) {
			t.Errorf("%s: fix %q lacks %q", r.What, r.Fix, w.fix)
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("no check %q in the report", k)
		}
	}
	if len(rep) != len(everyCheck) {
		t.Errorf("%d checks, want %d", len(rep), len(everyCheck))
	}
}

func TestUnsubscribeURL(t *testing.T) {
	cases := []struct {
		name string
		o    doctortest.WorldOptions
		want expect
	}{
		{"http only", doctortest.WorldOptions{BaseURL: func(port string) string { return "http://unsub.acme.example:" + port + "/u/" }},
			expect{Fail, "http.base_url is not https: RFC 8058 §3.1", `set http.base_url = "https://unsub.acme.example/u/"`}},
		{"certificate for another host", doctortest.WorldOptions{CertHost: "www.acme.example"},
			expect{Fail, "the certificate is not valid for unsub.acme.example", "install a certificate for unsub.acme.example"}},
		{"certificate about to expire", doctortest.WorldOptions{CertNotAfter: time.Now().Add(3*24*time.Hour + time.Hour)},
			expect{Warn, "it expires in 3 day(s)", "renew the certificate for unsub.acme.example"}},
		{"another web server", doctortest.WorldOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<h1>It works!</h1>")
		})}, expect{Warn, "answers 200 OK to a token that is not valid", "route base_url (its host and path) to senderkit serve"}},
		{"a redirect", doctortest.WorldOptions{Handler: http.RedirectHandler("https://www.acme.example/", http.StatusFound)},
			expect{Warn, "a redirect to https://www.acme.example/", "without a redirect"}},
		{"failing endpoint", doctortest.WorldOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "store locked", http.StatusServiceUnavailable)
		})}, expect{Fail, "answers 503 Service Unavailable", "read senderkit serve's log"}},
		{"host without address", doctortest.WorldOptions{BaseURL: func(port string) string { return "https://nowhere.acme.example:" + port + "/u/" }},
			expect{Fail, "nowhere.acme.example has no address record", "publish nowhere.acme.example. IN A ADDRESS"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := doctortest.StartWorld(t, root, tc.o)
			checkReport(t, runWorld(t, w), map[string]expect{"unsubscribe": tc.want})
		})
	}
}

// TestNothingConfigured: the built-in configuration says where it falls
// short before any DNS answer matters.
func TestNothingConfigured(t *testing.T) {
	srv := startZones(t, "")
	cfg, err := conf.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewResolver(srv.Addr, 2*time.Second)
	rep := Run(context.Background(), Options{Config: cfg, Resolver: r})
	want := map[string]expect{
		"config check.sending_addresses": {Fail, "no sending address is configured", "[check] sending_addresses"},
		"MX bounces.example.test":        {Fail, "no inbound address is configured", "[check] inbound_addresses"},
		"config From domains":            {Warn, "no From domain is known", "[check] from_domains"},
		"unsubscribe":                    {Fail, "http.base_url is not https", `set http.base_url = "https://127.0.0.1/u/"`},
	}
	if len(rep) != len(want) {
		t.Errorf("%d results, want %d", len(rep), len(want))
	}
	for _, res := range rep {
		w, ok := want[key(res)]
		if !ok {
			t.Errorf("unexpected %s: %s %s", res.What, res.Status, res.Detail)
			continue
		}
		if res.Status != w.status || !strings.Contains(res.Detail, w.detail) || !strings.Contains(res.Fix, w.fix) {
			t.Errorf("%s: %s %q fix %q, want %s %q fix %q", res.What, res.Status, res.Detail, res.Fix, w.status, w.detail, w.fix)
		}
	}
	// The HELO name is checked per sending address: none here.
	if rep.Worst() != Fail {
		t.Errorf("worst %s", rep.Worst())
	}
}

// TestKeyOnlyForSubdomains: a key that signs only subdomains' mail is
// still checked, and a From domain that no key signs does not align.
func TestKeyOnlyForSubdomains(t *testing.T) {
	w := doctortest.StartWorld(t, root, doctortest.WorldOptions{SigningTable: "" +
		"*@acme.example acme-rsa\n*@acme.example acme-ed\n*@news.acme.example acme-rsa\n" +
		"*@*.globex.example globex\n"})
	rep := runWorld(t, w)
	checkReport(t, rep, map[string]expect{
		"DMARC globex.example (scope globex)": {Fail,
			"does not align: no DKIM key signs its mail; SPF bounces.acme.example does not align (aspf=r)",
			"sign mail from globex.example with a key whose d= is globex.example or its parent domain: senderkit dkim keygen -d globex.example"},
	})
	// The key for globex's subdomains comes after the From domains.
	if n := len(rep); n < 2 || rep[n-2].What != "DKIM gx._domainkey.globex.example" || rep[n-2].Status != Pass {
		t.Errorf("the subdomain key was not checked last: %+v", rep[n-2])
	}
}

func TestReportWrite(t *testing.T) {
	rep := Report{
		{Check: CheckSPF, What: "SPF b.example 192.0.2.1", Status: Pass, Detail: "pass", Fix: "never shown"},
		{Check: CheckMX, What: "MX b.example", Status: Fail, Detail: "no MX", Fix: "publish b.example. IN MX 10 mx.b.example.\nand mx.b.example. IN A 192.0.2.1"},
		{Check: CheckDMARC, What: "DMARC a.example", Status: Warn, Detail: "p=none", Fix: "raise it"},
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"pass  SPF b.example 192.0.2.1  pass\n" +
		"fail  MX b.example             no MX\n" +
		"      fix: publish b.example. IN MX 10 mx.b.example.\n" +
		"           and mx.b.example. IN A 192.0.2.1\n" +
		"warn  DMARC a.example          p=none\n" +
		"      fix: raise it\n" +
		"checks: 1 pass, 1 warn, 1 fail\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if rep.Worst() != Fail || (Report{}).Worst() != Pass || rep[:1].Worst() != Pass || rep[2:].Worst() != Warn {
		t.Errorf("Worst is wrong")
	}
}
