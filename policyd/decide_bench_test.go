package policyd

import (
	"bufio"
	"context"
	"strings"
	"testing"
)

// BenchmarkDecide: one RCPT decision for a recipient the filter rules
// out, without the network.
func BenchmarkDecide(b *testing.B) {
	f := newFixture(b, "")
	f.suppress(b, "acme", "", "bob@dest.example", "unsubscribe", 0)
	f.policy.Filter.Refresh(context.Background(), f.store)
	req := rcpt("news@acme.example", "carol@dest.example")
	for b.Loop() {
		if f.policy.Decide(context.Background(), req) != "DUNNO" {
			b.Fatal("not DUNNO")
		}
	}
}

// BenchmarkReadRequest: parsing Postfix's 31-attribute request.
func BenchmarkReadRequest(b *testing.B) {
	r := strings.NewReader(postfixRequest)
	br := bufio.NewReaderSize(r, 8193)
	var req Request
	for b.Loop() {
		r.Reset(postfixRequest)
		br.Reset(r)
		if err := ReadRequest(br, &req, Limits{MaxLine: 8192, MaxAttributes: 100}); err != nil {
			b.Fatal(err)
		}
	}
}
