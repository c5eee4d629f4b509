package dkim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// needLibcrypto makes sure OpenSSL's libcrypto.so.3 loads for a test of
// the OpenSSL path. When it does not, it installs Debian's openssl,
// which brings libssl3 (the package of libcrypto.so.3), and tries again;
// what still fails skips the test, or fails it in CI (CI=true).
func needLibcrypto(t testing.TB) {
	t.Helper()
	if _, err := libcryptoOpenName(libcryptoName); err == nil {
		return
	}
	postfixlab.EnsurePackages(t, map[string]string{"openssl": "openssl"})
	if _, err := libcryptoOpenName(libcryptoName); err != nil {
		postfixlab.Unavailable(t, "no libcrypto: %v", err)
	}
}

// forceGoRSA makes the signers a test makes use crypto/rsa.
func forceGoRSA(t testing.TB) {
	t.Helper()
	old := testingGoRSA.Swap(true)
	t.Cleanup(func() { testingGoRSA.Store(old) })
}

// rsaTestKeys are generated keys of the sizes DKIM sees (RFC 8301 §3.2:
// 1024 at least, 2048 usual; 3072 and 4096 for the cautious), and the
// sample keys of testdata/dkim.
func rsaTestKeys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	sizes := []int{1024, 1024, 1024, 2048, 2048, 2048, 2048, 3072, 4096}
	if testing.Short() {
		sizes = []int{1024, 2048, 2048, 3072}
	}
	keys := make([]*rsa.PrivateKey, len(sizes))
	var wg sync.WaitGroup
	for i, bits := range sizes {
		wg.Go(func() {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	pems, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "dkim", "keys", "*.pem"))
	for _, p := range pems {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParsePrivateKey(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r, ok := k.(*rsa.PrivateKey); ok {
			keys = append(keys, r)
		}
	}
	return keys
}

// testDigests are SHA-256 digests of random data, and the extreme ones.
func testDigests(n int) [][]byte {
	ds := [][]byte{make([]byte, sha256.Size), bytes.Repeat([]byte{0xff}, sha256.Size)}
	for i := range n {
		d := sha256.Sum256(fmt.Appendf(nil, "message %d", i))
		ds = append(ds, d[:])
	}
	return ds
}

// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) is deterministic: for every key and
// digest, OpenSSL's signature is byte for byte crypto/rsa's.
func TestOpenSSLSignsAsGo(t *testing.T) {
	needLibcrypto(t)
	keys := rsaTestKeys(t)
	digests := testDigests(40)
	for _, k := range keys {
		s := newRSASigner(k, nil)
		if s.pkey == nil {
			t.Fatalf("%s: no EVP_PKEY, although libcrypto is loaded", Describe(k))
		}
		for _, d := range digests {
			got, err := s.Sign(rand.Reader, d, crypto.SHA256)
			if err != nil {
				t.Fatalf("%s: %v", Describe(k), err)
			}
			want, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, digest %x: OpenSSL signs\n%x\ncrypto/rsa\n%x", Describe(k), d, got, want)
			}
		}
	}
	t.Logf("%d keys x %d digests, identical; %s", len(keys), len(digests), RSAImplementation())
}

// One signer signs from many goroutines at once (one EVP_PKEY, a
// context per signature), each signature right; run with -race.
func TestOpenSSLConcurrent(t *testing.T) {
	needLibcrypto(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := newRSASigner(k, nil)
	digests := testDigests(16)
	want := make([][]byte, len(digests))
	for i, d := range digests {
		want[i], _ = rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range digests {
				i := (i + g) % len(digests)
				got, err := s.Sign(nil, digests[i], crypto.SHA256)
				if err != nil || !bytes.Equal(got, want[i]) {
					t.Errorf("goroutine %d, digest %d: %x, %v", g, i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A message signed through go-msgauth with the OpenSSL signer verifies,
// and its DKIM-Signature field is the one crypto/rsa makes (the same t=
// given, RFC 6376 §3.5).
func TestDKIMSignatureSameWithOpenSSL(t *testing.T) {
	needLibcrypto(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ossl := newRSASigner(k, nil)
	header := "From: Bob <bob@example.com>\r\nTo: alice@example.net\r\nSubject: the news\r\n\r\n"
	body := "a line of the body  \r\n\r\n"
	sign := func(key crypto.Signer) string {
		sg, err := Start([]Choice{{Domain: "example.com", Selector: "r", Key: key}}, HeaderKeys([]string{"From", "To", "Subject"}), []byte(header))
		if err != nil {
			t.Fatal(err)
		}
		sg.Write([]byte(body))
		v, err := sg.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	var a, b string
	for range 5 { // go-msgauth writes t= from its own clock: retry across a second's turn
		a, b = sign(ossl), sign(k)
		if a == b {
			break
		}
	}
	if a != b {
		t.Errorf("OpenSSL's signature field\n%s\ndiffers from crypto/rsa's\n%s", a, b)
	}
	msg := "DKIM-Signature:" + a + "\r\n" + header + body
	vs, err := msgauth.VerifyWithOptions(strings.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: lookup(t, map[string]crypto.Signer{"r._domainkey.example.com": ossl}),
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verification: %v, %+v", err, vs)
	}
}

// Load gives every RSA key of the tables, and those found per message
// (a "%" path), a signer that uses OpenSSL when libcrypto loads and Go
// when it does not (the second case is run by hiding libcrypto, see
// the report of this change); Ed25519 keys stay as they are. Either
// way, the signatures of a message verify.
func TestSetSigns(t *testing.T) {
	_, noLib := openLibcrypto()
	t.Logf("RSA: %s", RSAImplementation())
	dir := sampleDir(t)
	s := load(t, Options{KeyTable: "refile:KeyTable", SigningTable: "refile:SigningTable", Dir: dir,
		Multiple: true, ProviderKeys: []string{"provider"}})
	txt := map[string]crypto.Signer{}
	for _, from := range []string{"bob@example.com", "z@customer1.test", "ceo@example.org"} {
		user, domain, _ := strings.Cut(from, "@")
		choices, _, err := s.Select(user, domain)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range choices {
			txt[c.Selector+"._domainkey."+c.Domain] = c.Key
			switch k := c.Key.(type) {
			case *rsaSigner:
				if (k.pkey != nil) != (noLib == nil) {
					t.Errorf("%s: d=%s s=%s: EVP_PKEY %v, libcrypto error %v", from, c.Domain, c.Selector, k.pkey, noLib)
				}
			case *rsa.PrivateKey:
				t.Errorf("%s: d=%s s=%s is a bare *rsa.PrivateKey", from, c.Domain, c.Selector)
			}
		}
		header := "From: <" + from + ">\r\nSubject: hi\r\n\r\n"
		sg, err := Start(choices, HeaderKeys([]string{"From", "Subject"}), []byte(header))
		if err != nil {
			t.Fatal(err)
		}
		values, err := sg.Finish()
		if err != nil {
			t.Fatal(err)
		}
		var msg strings.Builder
		for _, v := range values {
			msg.WriteString("DKIM-Signature:" + v + "\r\n")
		}
		msg.WriteString(header)
		vs, err := msgauth.VerifyWithOptions(strings.NewReader(msg.String()), &msgauth.VerifyOptions{LookupTXT: lookup(t, txt)})
		if err != nil || len(vs) != len(choices) {
			t.Fatalf("%s: %d verifications of %d signatures: %v", from, len(vs), len(choices), err)
		}
		for _, v := range vs {
			if v.Err != nil {
				t.Errorf("%s: d=%s: %v", from, v.Domain, v.Err)
			}
		}
	}
}

// With the test switch, and for whatever OpenSSL is not asked to do
// (PSS, other hashes), crypto/rsa signs, and the signatures verify.
func TestGoFallback(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := testDigests(0)[0]
	t.Run("switch", func(t *testing.T) {
		forceGoRSA(t)
		if !strings.Contains(RSAImplementation(), "SENDERKIT_TESTING__GO_RSA") {
			t.Errorf("RSAImplementation() = %q", RSAImplementation())
		}
		s := newRSASigner(k, nil)
		if s.pkey != nil {
			t.Fatal("an EVP_PKEY despite the switch")
		}
		got, err := s.Sign(rand.Reader, d, crypto.SHA256)
		want, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Go path: %x, %v", got, err)
		}
	})
	t.Run("other-schemes", func(t *testing.T) {
		s := newRSASigner(k, nil)
		pss := &rsa.PSSOptions{Hash: crypto.SHA256}
		sig, err := s.Sign(rand.Reader, d, pss)
		if err != nil || rsa.VerifyPSS(&k.PublicKey, crypto.SHA256, d, sig, pss) != nil {
			t.Errorf("PSS: %v", err)
		}
		for _, h := range []struct {
			hash crypto.Hash
			sum  []byte
		}{{crypto.SHA1, sha1.New().Sum(nil)}, {crypto.SHA512, sha512.New().Sum(nil)}} {
			sig, err := s.Sign(rand.Reader, h.sum, h.hash)
			if err != nil || rsa.VerifyPKCS1v15(&k.PublicKey, h.hash, h.sum, sig) != nil {
				t.Errorf("%v: %v", h.hash, err)
			}
		}
		if _, err := s.Sign(rand.Reader, d[:20], crypto.SHA256); err == nil {
			t.Error("a 20-byte SHA-256 digest was signed")
		}
	})
	t.Run("dkim", func(t *testing.T) {
		forceGoRSA(t)
		s := newRSASigner(k, nil)
		header := "From: bob@example.com\r\nSubject: hi\r\n\r\n"
		sg, err := Start([]Choice{{Domain: "example.com", Selector: "g", Key: s}}, HeaderKeys([]string{"From", "Subject"}), []byte(header))
		if err != nil {
			t.Fatal(err)
		}
		v, err := sg.Finish()
		if err != nil {
			t.Fatal(err)
		}
		vs, err := msgauth.VerifyWithOptions(strings.NewReader("DKIM-Signature:"+v[0]+"\r\n"+header), &msgauth.VerifyOptions{
			LookupTXT: lookup(t, map[string]crypto.Signer{"g._domainkey.example.com": s}),
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("verification: %v, %+v", err, vs)
		}
	})
}

// When OpenSSL fails to sign, crypto/rsa signs instead: here an
// EVP_PKEY of a 2048-bit key, given a 1024-bit key's signature buffer,
// makes EVP_PKEY_sign fail.
func TestOpenSSLFailureFallsBack(t *testing.T) {
	needLibcrypto(t)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	big := newRSASigner(mustKey(t, 2048), nil)
	d := testDigests(1)[2]
	if _, err := libcryptoSign(big.pkey, d, make([]byte, 128)); err == nil || !strings.HasPrefix(err.Error(), "EVP_PKEY_sign: ") {
		t.Errorf("a 2048-bit signature into 128 bytes: %v", err)
	} else {
		t.Logf("as expected: %v", err)
	}
	wrong := &rsaSigner{key: small, pkey: big.pkey, size: 128, log: big.log}
	got, err := wrong.Sign(nil, d, crypto.SHA256)
	want, _ := rsa.SignPKCS1v15(nil, small, crypto.SHA256, d)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("after OpenSSL failed: %x, %v; want crypto/rsa's %x", got, err, want)
	}
	if _, err := libcryptoKey([]byte("not DER")); err == nil || !strings.HasPrefix(err.Error(), "d2i_PrivateKey: ") {
		t.Errorf("a broken key: %v", err)
	}
	// A library that is not there, or that is not libcrypto, leaves the
	// loaded one as it was.
	for _, name := range []string{"libcrypto-none.so.9", "libc.so.6"} {
		_, err := libcryptoOpenName(name)
		t.Logf("%s: %v", name, err)
		if err == nil {
			t.Errorf("%s loaded as libcrypto", name)
		}
	}
	if got, _ := big.Sign(nil, d, crypto.SHA256); !bytes.Equal(got, mustSign(t, big.key, d)) {
		t.Error("libcrypto broken by the failed loads")
	}
}

func mustKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t testing.TB, k *rsa.PrivateKey, d []byte) []byte {
	t.Helper()
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
