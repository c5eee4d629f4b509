package dkim

// The cost of one RSA signature (SHA-256, PKCS #1 v1.5), by OpenSSL and
// by crypto/rsa, one at a time and from every core at once:
//
//	go test -run '^$' -bench '^BenchmarkRSASign' ./milter/dkim
//
// `openssl speed rsa2048` is the reference for the OpenSSL figure.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"
)

func BenchmarkRSASign(b *testing.B) {
	for _, bits := range []int{1024, 2048, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			b.Fatal(err)
		}
		d := testDigests(1)[2]
		for _, impl := range []string{"openssl", "go"} {
			var s *rsaSigner
			if impl == "go" {
				old := testingGoRSA.Swap(true)
				s = newRSASigner(k, nil)
				testingGoRSA.Store(old)
			} else {
				needLibcrypto(b)
				s = newRSASigner(k, nil)
			}
			b.Run(fmt.Sprintf("%s/%d", impl, bits), func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Sign(rand.Reader, d, crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%d/parallel", impl, bits), func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.Sign(rand.Reader, d, crypto.SHA256); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
