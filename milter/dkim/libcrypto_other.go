//go:build !cgo || !linux

package dkim

import (
	"errors"
	"unsafe"
)

// Without cgo, or off Linux, there is no libcrypto: every RSA signature
// is made by Go's crypto/rsa.

const libcryptoName = "libcrypto.so.3"

var errNoLibcrypto = errors.New("libcrypto: not built in (needs cgo on Linux)")

func libcryptoOpen() (string, error)                            { return "", errNoLibcrypto }
func libcryptoOpenName(string) (string, error)                  { return "", errNoLibcrypto }
func libcryptoKey([]byte) (unsafe.Pointer, error)               { return nil, errNoLibcrypto }
func libcryptoSign(unsafe.Pointer, []byte, []byte) (int, error) { return 0, errNoLibcrypto }
func libcryptoFree(unsafe.Pointer)                              {}
