package addr

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPlainASCII: whenever the fast path takes a domain, IDNA takes it
// too and gives the same name.
func TestPlainASCII(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcxyzABCXYZ0189-_."
	for range 200_000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		d := b.String()
		fast, ok := plainASCII(d)
		if !ok {
			continue
		}
		slow, err := idnaProfile.ToASCII(d)
		if err != nil || strings.ToLower(slow) != fast {
			t.Fatalf("%q: fast path %q, IDNA %q %v", d, fast, slow, err)
		}
	}
	for _, d := range []string{"xn--bcher-kva.example", "ab--cd.example", "-a.example", "a-.example", "a..b", "bücher.example"} {
		if _, ok := plainASCII(d); ok {
			t.Errorf("%q took the fast path", d)
		}
	}
}
