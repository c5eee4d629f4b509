package token

import (
	"fmt"
	"strings"
)

// MaxLocal is the longest local part RFC 5321 §4.5.3.1.1 allows.
const MaxLocal = 64

// MaxPrefix is the longest VERP prefix that still leaves room for any
// token in a 64-octet local part.
const MaxPrefix = MaxLocal - 1 - MaxLen

// Local returns the local part "<prefix>+<token>".
func Local(prefix, tok string) string { return prefix + "+" + tok }

// Address returns the VERP address "<prefix>+<token>@<domain>".
func Address(prefix, tok, domain string) string { return Local(prefix, tok) + "@" + domain }

// FromLocal extracts the token from a local part "<prefix>+<token>". The
// prefix compares case-insensitively, as MTAs may change its case. It
// returns false when local does not have that shape; the token is not
// verified.
func FromLocal(local, prefix string) (string, bool) {
	p, tok, ok := strings.Cut(local, "+")
	if !ok || !strings.EqualFold(p, prefix) || tok == "" {
		return "", false
	}
	return tok, true
}

// CheckPrefix says whether prefix can start a VERP local part: a
// non-empty dot-atom without '+' that leaves room for the token.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("token: empty VERP prefix")
	}
	if len(prefix) > MaxPrefix {
		return fmt.Errorf("token: VERP prefix %q is %d characters; at most %d leave room for a %d-character token in a 64-octet local part", prefix, len(prefix), MaxPrefix, MaxLen)
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("token: VERP prefix %q contains %q; use letters, digits, '-', '_' or '.'", prefix, c)
		}
	}
	if prefix[0] == '.' || prefix[len(prefix)-1] == '.' {
		return fmt.Errorf("token: VERP prefix %q starts or ends with a dot", prefix)
	}
	return nil
}
