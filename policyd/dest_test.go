package policyd

import (
	"context"
	"testing"
	"time"

	"github.com/senderkit/senderkit/policyd/dnstest"
)

// TestGrouperDNS groups domains by their primary MX host's registered
// domain, asking a DNS server on loopback, and caches the answers.
func TestGrouperDNS(t *testing.T) {
	srv := dnstest.Start(t, map[string][]string{
		"gmail.com":         {"5 gmail-smtp-in.l.google.com", "10 alt1.gmail-smtp-in.l.google.com"},
		"hosted.example":    {"1 aspmx.l.google.com", "5 alt1.aspmx.l.google.com"},
		"yahoo.com":         {"1 mta5.am0.yahoodns.net", "1 mta6.am0.yahoodns.net"},
		"hotmail.co.uk":     {"10 eur.olc.protection.outlook.com"},
		"mixed.example":     {"20 backup.other.example", "10 mx.primary.co.uk"},
		"nullmx.example":    {"0 ."},
		"noservice.example": {},
	})
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	g := &Grouper{Resolver: &DNSResolver{Server: srv.Addr}, Static: func(d string) string {
		if d == "googlemail.com" {
			return "google.com"
		}
		return ""
	}, Now: func() time.Time { return now }}
	ctx := context.Background()
	for domain, want := range map[string]string{
		"gmail.com":            "google.com",
		"hosted.example":       "google.com",
		"googlemail.com":       "google.com", // by configuration, without DNS
		"yahoo.com":            "yahoodns.net",
		"hotmail.co.uk":        "outlook.com",
		"mixed.example":        "primary.co.uk", // the lowest preference wins
		"nullmx.example":       "nullmx.example",
		"noservice.example":    "noservice.example", // no MX: the implicit MX
		"sub.nxdomain.example": "nxdomain.example",
	} {
		if got := g.Group(ctx, domain); got != want {
			t.Errorf("Group(%s) = %s, want %s", domain, got, want)
		}
	}
	n := srv.Queries()
	g.Group(ctx, "gmail.com")
	if srv.Queries() != n {
		t.Error("a cached answer was asked again")
	}
	now = now.Add(6 * time.Minute) // past the MX records' 300 s TTL
	g.Group(ctx, "gmail.com")
	if srv.Queries() != n+1 {
		t.Errorf("an expired answer was not asked again (%d queries, want %d)", srv.Queries(), n+1)
	}
}

// TestGrouperFailure: an unreachable DNS server groups a domain by its
// own registered domain, without blocking beyond the context.
func TestGrouperFailure(t *testing.T) {
	g := &Grouper{Resolver: &DNSResolver{Server: "127.0.0.1:1", Timeout: 200 * time.Millisecond}, Static: func(string) string { return "" }, Now: time.Now}
	if got := g.Group(context.Background(), "mail.example.co.uk"); got != "example.co.uk" {
		t.Errorf("Group with a dead resolver: %s", got)
	}
}
