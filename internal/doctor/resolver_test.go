package doctor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/doctor/doctortest"
)

// startZones serves the test world's zones plus a patch written here.
func startZones(t *testing.T, patch string) *doctortest.Server {
	t.Helper()
	z, err := doctortest.LoadZones(filepath.Join(root, "zones"))
	if err != nil {
		t.Fatal(err)
	}
	if patch != "" {
		p := filepath.Join(t.TempDir(), "test.patch")
		if err := os.WriteFile(p, []byte(patch), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := z.Patch(p); err != nil {
			t.Fatal(err)
		}
	}
	return doctortest.Start(t, z)
}

func TestResolverAnswers(t *testing.T) {
	srv := startZones(t, `
+ alias.acme.example. 300 IN CNAME mail.acme.example.
+ www.acme.example. 300 IN CNAME alias.acme.example.
`)
	r, err := NewResolver(srv.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	as, err := r.LookupNetIP(ctx, "mail.acme.example")
	want := []netip.Addr{netip.MustParseAddr("192.0.2.25"), netip.MustParseAddr("2001:db8::25")}
	if err != nil || !slices.Equal(as, want) {
		t.Errorf("mail.acme.example: %v %v, want %v", as, err, want)
	}
	// Aliases are followed, two deep.
	if as, err := r.LookupNetIP(ctx, "WWW.Acme.Example."); err != nil || !slices.Equal(as, want) {
		t.Errorf("www.acme.example: %v %v, want %v", as, err, want)
	}
	names, err := r.LookupAddr(ctx, "2001:db8::25")
	if err != nil || !slices.Equal(names, []string{"mail.acme.example."}) {
		t.Errorf("PTR 2001:db8::25: %v %v", names, err)
	}
	mxs, err := r.LookupMX(ctx, "bounces.acme.example")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mail.acme.example." || mxs[0].Pref != 10 {
		t.Errorf("MX: %v %v", mxs, err)
	}
	// A TXT record of several character-strings is one string.
	txts, err := r.LookupTXT(ctx, "s2024._domainkey.acme.example")
	if err != nil || len(txts) != 1 || !strings.HasPrefix(txts[0], "v=DKIM1; k=rsa; p=MIIB") || strings.Contains(txts[0], `"`) || len(txts[0]) != len("v=DKIM1; k=rsa; p=")+392 {
		t.Errorf("DKIM TXT: %q %v", txts, err)
	}

	// NXDOMAIN and NODATA are both "not found"; an empty non-terminal
	// exists but has no records.
	for _, name := range []string{"nothing.acme.example", "bounces.acme.example", "_domainkey.acme.example"} {
		_, err := r.LookupNetIP(ctx, name)
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound || de.Temporary() {
			t.Errorf("%s: %v, want a not-found *net.DNSError", name, err)
		}
	}
	if _, err := r.LookupTXT(ctx, "no such name"); err == nil {
		t.Errorf("a name with spaces was looked up")
	}
}

// TestResolverTCP: an answer too large for UDP comes truncated and is
// asked again over TCP (RFC 7766 §5).
func TestResolverTCP(t *testing.T) {
	long := strings.Repeat("x", 250)
	var patch strings.Builder
	for i := 0; i < 8; i++ {
		patch.WriteString(`+ big.acme.example. 300 IN TXT "` + string(rune('a'+i)) + long + `" "` + long + `"` + "\n")
	}
	srv := startZones(t, patch.String())
	r, _ := NewResolver(srv.Addr, 2*time.Second)
	txts, err := r.LookupTXT(context.Background(), "big.acme.example")
	if err != nil || len(txts) != 8 {
		t.Fatalf("%d records, %v", len(txts), err)
	}
	for _, x := range txts {
		if len(x) != 501 {
			t.Errorf("record of %d bytes, want 501", len(x))
		}
	}
	asked := srv.Asked()
	if !slices.Equal(asked, []string{"big.acme.example. TXT udp", "big.acme.example. TXT tcp"}) {
		t.Errorf("queries %v, want the UDP one then the TCP one", asked)
	}
}

// TestResolverDown: a server that does not answer gives temporary
// errors, which every check reports as a DNS failure, not as a missing
// record.
func TestResolverDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there now
	r, _ := NewResolver(addr, 300*time.Millisecond)
	_, err = r.LookupTXT(context.Background(), "acme.example")
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound || !de.Temporary() {
		t.Fatalf("dead server: %v, want a temporary *net.DNSError", err)
	}

	w := doctortest.StartWorld(t, root, doctortest.WorldOptions{})
	w.Config.Check.Timeout = conf.Duration(300 * time.Millisecond) // for the HTTPS request too
	rep := Run(context.Background(), Options{Config: w.Config, Resolver: r, HELOName: "mail.acme.example", RootCAs: w.CA.Pool()})
	if len(rep) == 0 {
		t.Fatal("empty report")
	}
	for _, res := range rep {
		if res.Status != Fail {
			t.Errorf("%s: %s, want fail", res.What, res.Status)
		}
		if res.Check == CheckUnsubscribe {
			if !strings.Contains(res.Detail, "DNS lookup of unsub.acme.example failed") {
				t.Errorf("%s: %s", res.What, res.Detail)
			}
			continue
		}
		if !strings.Contains(res.Detail, "DNS lookup of ") || !strings.Contains(res.Fix, "check.resolver") {
			t.Errorf("%s: detail %q fix %q, want a DNS failure", res.What, res.Detail, res.Fix)
		}
	}
}

func TestNewResolverFromResolvConf(t *testing.T) {
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		t.Skip("no /etc/resolv.conf on this machine")
	}
	r, err := NewResolver("", time.Second)
	if err != nil {
		// A resolv.conf without nameserver lines is a machine's choice.
		if !strings.Contains(err.Error(), "no nameserver") {
			t.Fatal(err)
		}
		return
	}
	for _, s := range r.Servers {
		if _, err := netip.ParseAddrPort(s); err != nil {
			t.Errorf("server %q: %v", s, err)
		}
	}
}
