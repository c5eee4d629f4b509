//go:build cgo && linux

package dkim

// The system's OpenSSL 3 libcrypto, loaded at run time with dlopen: a
// fresh Debian has libcrypto.so.3 (package libssl3) but neither the
// headers (libssl-dev) nor the libcrypto.so link that -lcrypto needs, so
// nothing here includes an OpenSSL header or links against libcrypto.
// The few functions used are declared below from the OpenSSL 3 manual
// pages, looked up with dlsym and called through function pointers.
//
// Every call that may leave errors on OpenSSL's error queue, which is
// per thread, is made from one C function together with the reading of
// that queue: a goroutine may move to another thread between two cgo
// calls.

/*
#cgo LDFLAGS: -ldl
// Neither keeps a Go pointer nor calls back into Go: the digest, the
// signature and the error buffers may stay on the goroutine's stack.
#cgo noescape sk_sign
#cgo nocallback sk_sign
#cgo noescape sk_load
#cgo nocallback sk_load
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// EVP_PKEY_RSA is NID_rsaEncryption (openssl/obj_mac.h); RSA_PKCS1_PADDING
// is the padding of RFC 8017 §8.2 (openssl/rsa.h); OPENSSL_VERSION is
// OpenSSL_version's "OpenSSL 3.x.y date" string (openssl/crypto.h).
enum { SK_EVP_PKEY_RSA = 6, SK_RSA_PKCS1_PADDING = 1, SK_OPENSSL_VERSION = 0 };

// The OpenSSL 3 functions used, with their manual pages' prototypes
// (every OpenSSL type is opaque here: void).
typedef struct {
	void *(*d2i_PrivateKey)(int type, void **a, const unsigned char **pp, long length);
	void (*EVP_PKEY_free)(void *pkey);
	void *(*EVP_PKEY_CTX_new)(void *pkey, void *engine);
	void (*EVP_PKEY_CTX_free)(void *ctx);
	int (*EVP_PKEY_sign_init)(void *ctx);
	int (*EVP_PKEY_CTX_set_rsa_padding)(void *ctx, int pad);
	int (*EVP_PKEY_CTX_set_signature_md)(void *ctx, const void *md);
	const void *(*EVP_sha256)(void);
	int (*EVP_PKEY_sign)(void *ctx, unsigned char *sig, size_t *siglen, const unsigned char *tbs, size_t tbslen);
	unsigned long (*ERR_get_error)(void);
	void (*ERR_error_string_n)(unsigned long e, char *buf, size_t len);
	void (*ERR_clear_error)(void);
	const char *(*OpenSSL_version)(int t);
	unsigned long (*OpenSSL_version_num)(void);
	void (*OPENSSL_cleanse)(void *p, size_t len);
} sk_functions;

// sk is set once, by the first sk_open that finds everything.
static sk_functions sk;
static const void *sk_sha256;

// sk_open loads the library and every function. It returns NULL, or what
// failed, and then *what names the function or version at fault. It
// changes nothing unless it succeeds.
static const char *sk_open(const char *name, const char **what) {
	sk_functions f;
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		return dlerror();
	}
	// On success the library is never closed: keys made from it may live
	// as long as the process.
#define SK_SYM(fn) \
	if ((*(void **)(&f.fn) = dlsym(h, #fn)) == NULL) { *what = #fn; dlclose(h); return "function not found"; }
	SK_SYM(d2i_PrivateKey)
	SK_SYM(EVP_PKEY_free)
	SK_SYM(EVP_PKEY_CTX_new)
	SK_SYM(EVP_PKEY_CTX_free)
	SK_SYM(EVP_PKEY_sign_init)
	SK_SYM(EVP_PKEY_CTX_set_rsa_padding)
	SK_SYM(EVP_PKEY_CTX_set_signature_md)
	SK_SYM(EVP_sha256)
	SK_SYM(EVP_PKEY_sign)
	SK_SYM(ERR_get_error)
	SK_SYM(ERR_error_string_n)
	SK_SYM(ERR_clear_error)
	SK_SYM(OpenSSL_version)
	SK_SYM(OpenSSL_version_num)
	SK_SYM(OPENSSL_cleanse)
#undef SK_SYM
	// EVP_PKEY_CTX_set_rsa_padding and _set_signature_md became
	// functions in 3.0 (macros before).
	if (f.OpenSSL_version_num() < 0x30000000UL) {
		*what = "OpenSSL_version_num";
		dlclose(h);
		return "OpenSSL 3 or later needed";
	}
	const void *md = f.EVP_sha256();
	if (md == NULL) {
		*what = "EVP_sha256";
		dlclose(h);
		return "no SHA-256";
	}
	sk = f;
	sk_sha256 = md;
	return NULL;
}

static const char *sk_version(void) { return sk.OpenSSL_version(SK_OPENSSL_VERSION); }

// sk_errors empties this thread's error queue into buf, "; "-separated.
static void sk_errors(char *buf, size_t len) {
	size_t n = 0;
	unsigned long e;
	buf[0] = 0;
	while ((e = sk.ERR_get_error()) != 0) {
		if (n > 0 && n + 2 < len) {
			memcpy(buf + n, "; ", 3);
			n += 2;
		}
		if (n + 1 < len) {
			sk.ERR_error_string_n(e, buf + n, len - n);
			n += strlen(buf + n);
		}
	}
}

// sk_load makes an EVP_PKEY of a PKCS #1 RSAPrivateKey (DER), and wipes
// the DER; NULL with the reason in err when OpenSSL refuses it.
static void *sk_load(unsigned char *der, long len, char *err, size_t errlen) {
	sk.ERR_clear_error();
	const unsigned char *p = der;
	void *k = sk.d2i_PrivateKey(SK_EVP_PKEY_RSA, NULL, &p, len);
	sk.OPENSSL_cleanse(der, (size_t)len);
	if (k == NULL) {
		sk_errors(err, errlen);
	}
	return k;
}

static void sk_free(void *k) { sk.EVP_PKEY_free(k); }

// sk_sign makes an RSASSA-PKCS1-v1_5 signature with SHA-256 (RFC 8017
// §8.2.1) of a SHA-256 digest, with a context of its own: an EVP_PKEY
// may sign in many threads at once, an EVP_PKEY_CTX in one only. It
// returns 0, or the step that failed with the reason in err.
static int sk_sign(void *k, const unsigned char *digest, size_t dlen, unsigned char *sig, size_t *siglen, char *err, size_t errlen) {
	int step = 0;
	sk.ERR_clear_error();
	void *ctx = sk.EVP_PKEY_CTX_new(k, NULL);
	if (ctx == NULL) {
		step = 1;
	} else if (sk.EVP_PKEY_sign_init(ctx) <= 0) {
		step = 2;
	} else if (sk.EVP_PKEY_CTX_set_rsa_padding(ctx, SK_RSA_PKCS1_PADDING) <= 0) {
		step = 3;
	} else if (sk.EVP_PKEY_CTX_set_signature_md(ctx, sk_sha256) <= 0) {
		step = 4;
	} else if (sk.EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) <= 0) {
		step = 5;
	}
	if (step != 0) {
		sk_errors(err, errlen);
	}
	sk.EVP_PKEY_CTX_free(ctx); // NULL is allowed
	return step;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"unsafe"
)

// libcryptoName is the library dlopen looks for: OpenSSL 3's soname.
const libcryptoName = "libcrypto.so.3"

// libcryptoOpen loads libcrypto and returns its version string. It is
// called once (see openLibcrypto).
func libcryptoOpen() (string, error) { return libcryptoOpenName(libcryptoName) }

// libcryptoOpenName loads library name as libcrypto. It changes nothing
// unless it succeeds, so that tests may try other names.
func libcryptoOpenName(libName string) (string, error) {
	name := C.CString(libName)
	defer C.free(unsafe.Pointer(name))
	var what *C.char
	if msg := C.sk_open(name, &what); msg != nil {
		if what != nil {
			return "", fmt.Errorf("%s: %s: %s", libName, C.GoString(what), C.GoString(msg))
		}
		return "", fmt.Errorf("dlopen %s: %s", libName, C.GoString(msg))
	}
	return C.GoString(C.sk_version()), nil
}

// errLen bounds the text of OpenSSL's error queue kept in an error.
const errLen = 512

// libcryptoKey makes an EVP_PKEY of a PKCS #1 DER private key, which it
// wipes. The key must be freed with libcryptoFree.
func libcryptoKey(der []byte) (unsafe.Pointer, error) {
	c := C.CBytes(der) // C memory: wiped by sk_load, freed here
	defer C.free(c)
	var msg [errLen]C.char
	k := C.sk_load((*C.uchar)(c), C.long(len(der)), &msg[0], errLen)
	if k == nil {
		return nil, fmt.Errorf("d2i_PrivateKey: %s", goString(msg[:]))
	}
	return k, nil
}

// libcryptoSign signs a SHA-256 digest with k into sig, which holds the
// modulus' length in bytes, and returns the signature's length. Neither
// digest nor sig may be empty.
func libcryptoSign(k unsafe.Pointer, digest, sig []byte) (int, error) {
	var msg [errLen]C.char
	n := C.size_t(len(sig))
	step := C.sk_sign(k, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n, &msg[0], errLen)
	if step != 0 {
		steps := [...]string{1: "EVP_PKEY_CTX_new", 2: "EVP_PKEY_sign_init", 3: "EVP_PKEY_CTX_set_rsa_padding",
			4: "EVP_PKEY_CTX_set_signature_md", 5: "EVP_PKEY_sign"}
		return 0, fmt.Errorf("%s: %s", steps[int(step)], goString(msg[:]))
	}
	return int(n), nil
}

// goString copies the error text sk_errors wrote in b. Unlike
// C.GoString, it lets b stay on the stack.
func goString(b []C.char) string {
	s := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), len(b))
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if len(s) == 0 {
		return "failed, with nothing on OpenSSL's error queue"
	}
	return string(s)
}

// libcryptoFree frees a key made by libcryptoKey.
func libcryptoFree(k unsafe.Pointer) { C.sk_free(k) }
