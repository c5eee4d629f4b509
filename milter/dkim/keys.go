package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinRSABits is the smallest RSA key senderkit signs with: RFC 8301 §3.2
// forbids smaller ones (and asks for 2048, the default of GenerateKey).
const MinRSABits = 1024

// ParsePrivateKey reads a DKIM private key as OpenDKIM accepts it: PEM
// ("RSA PRIVATE KEY", PKCS #1, as opendkim-genkey writes; or "PRIVATE
// KEY", PKCS #8, RSA or Ed25519), or base64-encoded DER.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		der = b.Bytes
	} else if raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(data)), "")); err == nil {
		der = raw
	} else {
		return nil, errors.New("neither PEM nor base64 DER")
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
			return nil, errors.New("not a PKCS #1 or PKCS #8 private key")
		}
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; RFC 8301 §3.2 requires at least %d", bits, MinRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T: want RSA or Ed25519", key)
}

// LoadKeyFile reads a private key file. Like OpenDKIM with
// RequireSafeKeys, it refuses a file that other users may read or that
// anyone but its owner may write.
func LoadKeyFile(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s: not a regular file", path)
	}
	if m := fi.Mode().Perm(); m&0o026 != 0 {
		return nil, fmt.Errorf("key file %s: mode %04o lets other users read or change it; chmod 600 it", path, m)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// Algorithm is the a= of a signature made with k: "rsa-sha256" or
// "ed25519-sha256" (RFC 8463 §3).
func Algorithm(k crypto.Signer) string {
	if _, ok := k.Public().(ed25519.PublicKey); ok {
		return "ed25519-sha256"
	}
	return "rsa-sha256"
}

// Describe names a key's type and size: "RSA 2048", "Ed25519".
func Describe(k crypto.Signer) string {
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", p.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k.Public())
}

// GenerateKey makes a new key: "rsa" with bits (2048 when 0) or
// "ed25519".
func GenerateKey(algorithm string, bits int) (crypto.Signer, error) {
	switch strings.ToLower(algorithm) {
	case "rsa", "":
		if bits == 0 {
			bits = 2048
		}
		if bits < MinRSABits || bits > 8192 {
			return nil, fmt.Errorf("RSA key of %d bits: want %d to 8192", bits, MinRSABits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("key algorithm %q: want rsa or ed25519", algorithm)
}

// MarshalPrivateKey writes k as PKCS #8 PEM, which OpenDKIM reads too.
func MarshalPrivateKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TXTRecord is the DNS TXT record publishing k's public key (RFC 6376
// §3.6.1): for RSA, p= is the DER SubjectPublicKeyInfo; for Ed25519 it
// is the bare 32-byte key (RFC 8463 §4.2).
func TXTRecord(k crypto.Signer) (string, error) {
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p), nil
	}
	return "", fmt.Errorf("unsupported key type %T", k.Public())
}

// RecordName is where a key's TXT record lives: selector._domainkey.domain.
func RecordName(selector, domain string) string {
	return selector + "._domainkey." + domain
}

// ZoneRecord writes a TXT record in zone-file syntax, split into
// character-strings of at most 255 octets (RFC 1035 §3.3.14), as a 2048-
// bit RSA key needs.
func ZoneRecord(name, txt string) string {
	var parts []string
	for len(txt) > 255 {
		parts = append(parts, `"`+txt[:255]+`"`)
		txt = txt[255:]
	}
	parts = append(parts, `"`+txt+`"`)
	if len(parts) == 1 {
		return name + ". IN TXT " + parts[0]
	}
	return name + ". IN TXT ( " + strings.Join(parts, "\n\t") + " )"
}
