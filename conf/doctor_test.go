package conf

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheckSection(t *testing.T) {
	c, err := Parse([]byte(`[check]
sending_addresses = ["192.0.2.25", "::ffff:192.0.2.26", "2001:DB8::25"]
helo_name = "Mail.Acme.Example."
from_domains = ["Acme.Example", "bücher.example"]
resolver = "127.0.0.1"
timeout = "2s"
`), "check.toml")
	if err != nil {
		t.Fatal(err)
	}
	ck := &c.Check
	want := []netip.Addr{netip.MustParseAddr("192.0.2.25"), netip.MustParseAddr("192.0.2.26"), netip.MustParseAddr("2001:db8::25")}
	if !slices.Equal(ck.Sending(), want) {
		t.Errorf("sending %v, want %v", ck.Sending(), want)
	}
	// Without inbound_addresses, the MX must reach the sending addresses.
	if !slices.Equal(ck.Inbound(), want) {
		t.Errorf("inbound %v, want %v", ck.Inbound(), want)
	}
	if ck.HELOName != "mail.acme.example" {
		t.Errorf("helo_name %q", ck.HELOName)
	}
	if !slices.Equal(ck.FromDomains, []string{"acme.example", "xn--bcher-kva.example"}) {
		t.Errorf("from_domains %q", ck.FromDomains)
	}
	if ck.ResolverAddr() != "127.0.0.1:53" {
		t.Errorf("resolver %q", ck.ResolverAddr())
	}

	c, err = Parse([]byte("[check]\nsending_addresses = [\"192.0.2.25\"]\ninbound_addresses = [\"198.51.100.1\"]\nresolver = \"[::1]:5353\"\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Check.Inbound(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.51.100.1")}) {
		t.Errorf("inbound %v", got)
	}
	if c.Check.ResolverAddr() != "[::1]:5353" {
		t.Errorf("resolver %q", c.Check.ResolverAddr())
	}
	if d, _ := Load(""); d.Check.ResolverAddr() != "" || d.Check.Timeout.D().String() != "5s" || len(d.Check.Sending()) != 0 {
		t.Errorf("default [check]: %+v", d.Check)
	}
}

func TestCheckSectionErrors(t *testing.T) {
	bad := `[check]
sending_addresses = ["192.0.2.25", "mail.acme.example", "0.0.0.0"]
inbound_addresses = ["fe80::1%eth0"]
helo_name = "localhost"
from_domains = ["not a domain"]
resolver = "dns.example:53"
timeout = "0s"
`
	_, err := Parse([]byte(bad), "bad.toml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("no Errors: %v", err)
	}
	got := errs.Error()
	for _, want := range []string{
		`bad.toml:2: check.sending_addresses[1]: "mail.acme.example" is not an IP address`,
		`bad.toml:2: check.sending_addresses[2]: "0.0.0.0" is not the address of a host`,
		`bad.toml:3: check.inbound_addresses[0]: "fe80::1%eth0" is not an IP address`,
		`bad.toml:4: check.helo_name: "localhost" is not a fully qualified domain name`,
		`bad.toml:5: check.from_domains[0]:`,
		`bad.toml:6: check.resolver: "dns.example:53": want an IP address or IP:PORT`,
		`bad.toml:7: check.timeout: 0s is outside 100ms to 5m`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
	if len(errs) != 7 {
		t.Errorf("%d errors, want 7:\n%s", len(errs), got)
	}
}
