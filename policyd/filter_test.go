package policyd

import (
	"context"
	"fmt"
	"testing"

	"github.com/senderkit/senderkit/internal/store"
)

// TestFilter: the filter never forgets a listed address (no false
// negatives), grows past what it was sized for, and answers "no" for
// most others.
func TestFilter(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	var fl Filter
	if !fl.MayContain("anyone@example.com") {
		t.Fatal("an unbuilt filter must send every lookup to the store")
	}
	entries := func(from, to int) {
		var es []store.Suppression
		for i := from; i < to; i++ {
			es = append(es, store.Suppression{Scope: "acme", Address: fmt.Sprintf("u%d@dest.example", i), Reason: store.Manual, Created: t0})
		}
		if _, err := f.store.Import(ctx, es, t0); err != nil {
			t.Fatal(err)
		}
	}
	entries(0, 1000)
	if err := fl.Refresh(ctx, f.store); err != nil {
		t.Fatal(err)
	}
	// More than the filter was sized for (2 x 1000, at least 65536):
	// incremental refreshes, then a rebuild.
	for n := 1000; n < 80_000; n += 20_000 {
		entries(n, n+20_000)
		if err := fl.Refresh(ctx, f.store); err != nil {
			t.Fatal(err)
		}
	}
	if b := fl.cur.Load(); b.limit < 80_000 {
		t.Errorf("the filter was not rebuilt larger: sized for %d", b.limit)
	}
	for i := 0; i < 81_000; i++ {
		if !fl.MayContain(fmt.Sprintf("u%d@dest.example", i)) {
			t.Fatalf("u%d@dest.example is listed but the filter says no", i)
		}
	}
	fp := 0
	for i := range 100_000 {
		if fl.MayContain(fmt.Sprintf("other%d@dest.example", i)) {
			fp++
		}
	}
	if fp > 3000 {
		t.Errorf("%d false positives in 100,000 (want about 1%%)", fp)
	}
	t.Logf("false positives: %d in 100,000", fp)
}
