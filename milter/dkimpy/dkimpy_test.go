package dkimpy

import "testing"

func TestRecords(t *testing.T) {
	zone := "; a comment\ns1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=AAA\"\n\t\"BBB\" )\n" +
		"e._domainkey.example.com. IN TXT \"v=DKIM1; k=ed25519; p=CCC\"\n"
	got := Records(zone)
	if len(got) != 2 || got["s1._domainkey.example.com"] != "v=DKIM1; k=rsa; p=AAABBB" || got["e._domainkey.example.com"] != "v=DKIM1; k=ed25519; p=CCC" {
		t.Errorf("Records = %q", got)
	}
}
