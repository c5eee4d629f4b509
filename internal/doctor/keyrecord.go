package doctor

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeyRecord is a DKIM key record (RFC 6376 §3.6.1), as published in
// DNS at selector._domainkey.domain.
type KeyRecord struct {
	Version  string   // v=, "" when absent
	KeyType  string   // k=; "rsa" when absent
	Key      []byte   // p=, decoded; empty when the key is revoked
	Hashes   []string // h=; nil when absent (all allowed), empty when h= is
	Services []string // s=; nil when absent ("*"), empty when s= is
	Flags    []string // t=
}

// ParseKeyRecord reads a DKIM key record: a tag-list (RFC 6376 §3.2),
// with v= first if present (§3.6.1) and no tag given twice. Unknown tags
// are ignored, as verifiers must.
func ParseKeyRecord(txt string) (*KeyRecord, error) {
	tags, order, err := parseTagList(txt)
	if err != nil {
		return nil, err
	}
	kr := &KeyRecord{KeyType: "rsa"}
	if v, ok := tags["v"]; ok {
		// RFC 6376 §3.6.1: v= "MUST be the first tag in the record" and
		// its value DKIM1.
		if order[0] != "v" {
			return nil, errors.New("v= is not the first tag")
		}
		if v != "DKIM1" {
			return nil, fmt.Errorf("v=%s: want DKIM1", v)
		}
		kr.Version = v
	}
	if k, ok := tags["k"]; ok {
		kr.KeyType = k
	}
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("no p= tag")
	}
	p = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, p)
	if kr.Key, err = base64.StdEncoding.DecodeString(p); err != nil {
		return nil, fmt.Errorf("p= is not base64: %v", err)
	}
	if h, ok := tags["h"]; ok {
		kr.Hashes = colonList(h)
	}
	if s, ok := tags["s"]; ok {
		kr.Services = colonList(s)
	}
	if t, ok := tags["t"]; ok {
		kr.Flags = colonList(t)
	}
	return kr, nil
}

// parseTagList splits "tag=value; tag=value" (RFC 6376 §3.2): white
// space around names and values is folding white space and dropped; a
// tag given twice makes the whole list invalid. Empty elements (";;",
// a final ";") are skipped, as verifiers do.
func parseTagList(s string) (map[string]string, []string, error) {
	tags := map[string]string{}
	var order []string
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, nil, fmt.Errorf("%q is not tag=value", strings.TrimSpace(part))
		}
		name = strings.TrimSpace(name)
		if !isTagName(name) {
			return nil, nil, fmt.Errorf("%q is not a tag name", name)
		}
		if _, dup := tags[name]; dup {
			return nil, nil, fmt.Errorf("tag %s= is given twice", name)
		}
		tags[name] = strings.TrimSpace(value)
		order = append(order, name)
	}
	if len(order) == 0 {
		return nil, nil, errors.New("empty record")
	}
	return tags, order, nil
}

// isTagName: ALPHA *ALNUMPUNC (RFC 6376 §3.2), and '-' too, which
// verifiers let pass in the unknown tags they ignore.
func isTagName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// colonList splits a colon-separated list, trimmed. It is never nil: a
// tag with an empty list ("h=") allows nothing, as verifiers read it.
// Values keep their case: RFC 6376 §3.2 makes them case-sensitive
// unless a tag says otherwise, and none of k=, h=, s=, t= does.
func colonList(s string) []string {
	out := []string{}
	for _, x := range strings.Split(s, ":") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// Revoked reports whether the record revokes its key (an empty p=,
// RFC 6376 §3.6.1).
func (kr *KeyRecord) Revoked() bool { return len(kr.Key) == 0 }

// Testing reports whether t=y marks the domain as testing DKIM, which
// tells verifiers to treat its signatures as if unsigned (RFC 6376
// §3.6.1).
func (kr *KeyRecord) Testing() bool { return has(kr.Flags, "y") }

// AllowsSHA256 reports whether h= permits sha256 (absent h= permits all).
func (kr *KeyRecord) AllowsSHA256() bool { return kr.Hashes == nil || has(kr.Hashes, "sha256") }

// ForEmail reports whether s= covers email (absent s= means "*").
func (kr *KeyRecord) ForEmail() bool {
	return kr.Services == nil || has(kr.Services, "*") || has(kr.Services, "email")
}

// PublicKey decodes the key: for k=rsa a SubjectPublicKeyInfo, or the
// bare RSAPublicKey some tools publish (RFC 6376 erratum 3017); for
// k=ed25519 the 32-byte key (RFC 8463 §4.2).
func (kr *KeyRecord) PublicKey() (crypto.PublicKey, error) {
	if kr.Revoked() {
		return nil, errors.New("the key is revoked (empty p=)")
	}
	switch kr.KeyType {
	case "rsa":
		pub, err := x509.ParsePKIXPublicKey(kr.Key)
		if err != nil {
			if k, err2 := x509.ParsePKCS1PublicKey(kr.Key); err2 == nil {
				return k, nil
			}
			return nil, fmt.Errorf("p= is not an RSA public key: %v", err)
		}
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("k=rsa, but p= holds a %T", pub)
		}
		return k, nil
	case "ed25519":
		if len(kr.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("k=ed25519, but p= holds %d bytes, not %d", len(kr.Key), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(bytes.Clone(kr.Key)), nil
	}
	return nil, fmt.Errorf("k=%s: not a key type verifiers know (rsa, ed25519)", kr.KeyType)
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// describeKey names a public key's type and size: "RSA 2048", "Ed25519".
func describeKey(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// sameKey reports whether two public keys are equal.
func sameKey(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
