package dkim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"runtime"
	"sync"
	"testing"
	"time"
)

// settleKeys collects garbage until the count of live EVP_PKEYs is
// want, or stops changing when want < 0; it returns the count.
func settleKeys(t *testing.T, want int64) int64 {
	t.Helper()
	last := int64(-1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		runtime.GC() // cleanups run after, in their own goroutine
		time.Sleep(20 * time.Millisecond)
		n := liveKeys.Load()
		if n == want || want < 0 && n == last {
			return n
		}
		last = n
	}
	t.Fatalf("%d EVP_PKEYs live, want %d", liveKeys.Load(), want)
	return 0
}

// opensslKeys counts the signers of s that hold an EVP_PKEY.
func opensslKeys(s *Set) int64 {
	var n int64
	count := func(k any) {
		if r, ok := k.(*rsaSigner); ok && r.pkey != nil {
			n++
		}
	}
	for _, k := range s.static {
		count(k)
	}
	s.dynamic.Range(func(_, k any) bool { count(k); return true })
	return n
}

// Reloads leak no EVP_PKEY: after 20 loads of the sample tables, only
// the keys of the last Set are live, and once it is dropped none are.
func TestReloadFreesKeys(t *testing.T) {
	needLibcrypto(t)
	dir := sampleDir(t)
	base := settleKeys(t, -1)
	var s *Set
	for range 20 {
		s = load(t, Options{KeyTable: "refile:KeyTable", SigningTable: "refile:SigningTable", Dir: dir,
			Multiple: true, ProviderKeys: []string{"provider"}})
		if _, _, err := s.Select("z", "customer1.test"); err != nil { // loads a "%" key
			t.Fatal(err)
		}
	}
	per := opensslKeys(s)
	if per < 5 {
		t.Fatalf("%d OpenSSL keys in the sample Set, want 5 (4 loaded, 1 per message)", per)
	}
	settleKeys(t, base+per)
	runtime.KeepAlive(s)
	s = nil
	settleKeys(t, base)
}

// A signer dropped while others sign is freed without disturbing them,
// and one still signing is not freed under it (-race; a use after free
// would crash or sign wrong).
func TestSignersDroppedWhileSigning(t *testing.T) {
	needLibcrypto(t)
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	d := testDigests(0)[1]
	want := mustSign(t, k, d)
	base := settleKeys(t, -1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				s := newRSASigner(k, nil) // garbage after its one signature
				got, err := s.Sign(nil, d, crypto.SHA256)
				if err != nil || string(got) != string(want) {
					t.Errorf("goroutine %d, signer %d: %x, %v", g, i, got, err)
					return
				}
				if i%10 == 0 {
					runtime.GC()
				}
			}
		})
	}
	wg.Wait()
	settleKeys(t, base)
}
