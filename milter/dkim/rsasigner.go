package dkim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// RSA signing is most of the work of a signing milter: Go's crypto/rsa
// takes about 0.8 ms for an RSA-2048 signature, OpenSSL 3 about 0.3 ms.
// So an RSA key signs with the system's libcrypto when it can be loaded
// (libcrypto_cgo.go), and with crypto/rsa otherwise. RSASSA-PKCS1-v1_5
// (RFC 8017 §8.2), the only RSA scheme of DKIM (RFC 6376 §3.3.1), is
// deterministic: both make the very same signature, byte for byte.

// testingGoRSA makes every new RSA signer use Go's crypto/rsa. Tests set
// it; so does the environment variable SENDERKIT_TESTING__GO_RSA (any
// value), for comparing the two end to end. Not for production.
var testingGoRSA atomic.Bool

func init() {
	if os.Getenv("SENDERKIT_TESTING__GO_RSA") != "" {
		testingGoRSA.Store(true)
	}
}

// libcrypto is the outcome of loading the library, once per process.
var libcrypto struct {
	once    sync.Once
	version string // OpenSSL_version(OPENSSL_VERSION)
	err     error
}

func openLibcrypto() (string, error) {
	libcrypto.once.Do(func() { libcrypto.version, libcrypto.err = libcryptoOpen() })
	return libcrypto.version, libcrypto.err
}

// RSAImplementation names what makes new RSA signatures: OpenSSL's
// libcrypto with its version, or Go's crypto/rsa and why.
func RSAImplementation() string {
	if testingGoRSA.Load() {
		return "Go crypto/rsa (SENDERKIT_TESTING__GO_RSA is set)"
	}
	v, err := openLibcrypto()
	if err != nil {
		return fmt.Sprintf("Go crypto/rsa (%v)", err)
	}
	return fmt.Sprintf("%s (%s)", v, libcryptoName)
}

// liveKeys counts the EVP_PKEYs not yet freed, for the leak tests.
var liveKeys atomic.Int64

// Each is logged once per process.
var announced, keyFailed, signFailed sync.Once

// rsaSigner is a crypto.Signer for an RSA key that signs SHA-256 digests
// with PKCS #1 v1.5 padding (all DKIM asks, RFC 6376 §3.3.1) by OpenSSL,
// and anything else, or anything OpenSSL fails at, by crypto/rsa. It is
// safe for concurrent use: the EVP_PKEY is only read, and each signature
// has its own EVP_PKEY_CTX. The EVP_PKEY is freed when the signer is
// garbage: once the Set holding it is replaced and the messages signing
// with it are done.
type rsaSigner struct {
	key  *rsa.PrivateKey
	pkey unsafe.Pointer // the EVP_PKEY; nil: crypto/rsa signs
	size int            // the modulus' length in octets, RFC 8017 §8.2.1's k
	log  *slog.Logger
}

// signerOf returns the signer for a parsed key: for an RSA key, one that
// signs with libcrypto when it can; any other key as it is.
func signerOf(k crypto.Signer, log *slog.Logger) crypto.Signer {
	if r, ok := k.(*rsa.PrivateKey); ok {
		return newRSASigner(r, log)
	}
	return k
}

// newRSASigner makes k's signer and, when libcrypto is there, k's
// EVP_PKEY. The first call logs which implementation signs.
func newRSASigner(k *rsa.PrivateKey, log *slog.Logger) *rsaSigner {
	if log == nil {
		log = slog.Default()
	}
	s := &rsaSigner{key: k, size: (k.N.BitLen() + 7) / 8, log: log}
	announced.Do(func() { log.Info("dkim: RSA signatures by " + RSAImplementation()) })
	if testingGoRSA.Load() {
		return s
	}
	if _, err := openLibcrypto(); err != nil {
		return s
	}
	pkey, err := s.newPKey()
	if err != nil {
		keyFailed.Do(func() {
			log.Warn("dkim: OpenSSL cannot sign with an RSA key; Go's crypto/rsa signs with it (said once)",
				"key", Describe(k), "err", err)
		})
		return s
	}
	s.pkey = pkey
	liveKeys.Add(1)
	runtime.AddCleanup(s, freePKey, pkey)
	return s
}

// selfTestDigest is what a new EVP_PKEY signs before it is used.
var selfTestDigest = sha256.Sum256([]byte("senderkit: libcrypto signs as crypto/rsa does"))

// newPKey makes the EVP_PKEY of s.key and proves it: its signature of a
// known digest must verify with crypto/rsa (with the same key and
// digest, a valid RSASSA-PKCS1-v1_5 signature is the only one, RFC 8017
// §8.2.2 step 4). This first signature also lets OpenSSL 3 finish
// setting up the key while it is not yet shared.
func (s *rsaSigner) newPKey() (unsafe.Pointer, error) {
	der := x509.MarshalPKCS1PrivateKey(s.key)
	pkey, err := libcryptoKey(der)
	clear(der)
	if err != nil {
		return nil, err
	}
	sig := make([]byte, s.size)
	n, err := libcryptoSign(pkey, selfTestDigest[:], sig)
	if err == nil {
		err = rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, selfTestDigest[:], sig[:n])
		if err != nil {
			err = fmt.Errorf("self-test: OpenSSL's signature does not verify: %w", err)
		}
	}
	if err != nil {
		libcryptoFree(pkey)
		return nil, err
	}
	return pkey, nil
}

// freePKey is the cleanup of a signer with an EVP_PKEY.
func freePKey(pkey unsafe.Pointer) {
	libcryptoFree(pkey)
	liveKeys.Add(-1)
}

// Public returns the *rsa.PublicKey, as go-msgauth's dkim.NewSigner
// expects of an RSA key.
func (s *rsaSigner) Public() crypto.PublicKey { return &s.key.PublicKey }

// Sign signs digest. A SHA-256 digest with PKCS #1 v1.5 padding
// (RSASSA-PKCS1-v1_5, RFC 8017 §8.2.1) is signed by OpenSSL when the
// key has an EVP_PKEY; everything else, and any signature OpenSSL fails
// to make, by crypto/rsa. rand is not used by the OpenSSL path: the
// scheme is deterministic and OpenSSL blinds with its own generator.
func (s *rsaSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); s.pkey != nil && !pss && opts.HashFunc() == crypto.SHA256 && len(digest) == sha256.Size {
		sig := make([]byte, s.size)
		n, err := libcryptoSign(s.pkey, digest, sig)
		runtime.KeepAlive(s) // its cleanup must not free pkey during the call
		if err == nil && n == s.size {
			return sig, nil
		}
		if err == nil {
			err = fmt.Errorf("EVP_PKEY_sign: %d-octet signature, want %d", n, s.size)
		}
		signFailed.Do(func() {
			s.log.Warn("dkim: OpenSSL failed to sign; Go's crypto/rsa signs instead (said once)", "key", Describe(s.key), "err", err)
		})
	}
	return s.key.Sign(rand, digest, opts)
}
