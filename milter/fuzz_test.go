package milter

import (
	"strings"
	"testing"
)

// FuzzParseFrom: any From header value is either refused or gives an
// author with a local part and a lower-case, A-label domain; never a
// panic.
func FuzzParseFrom(f *testing.F) {
	for _, s := range []string{
		" Bob <bob@example.com>", " =?utf-8?q?J=C3=BCrgen?= <jürgen@bücher.example>", " a@b.c, d@e.f",
		" \"quoted, name\" <x@example.org>", " <<<nonsense", " (comment) x@[192.0.2.1]", " Bob\n\t<bob@example.com>",
		" =?unknown-8bit?q?J=F6rg?= <j@example.com>", " J\xf6rg <j@example.com>",
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, value string, strict bool) {
		a, err := parseFrom(fields{{"From", value}}, strict)
		if err != nil {
			return
		}
		if a.user == "" || a.domain == "" || a.domain != strings.ToLower(a.domain) || !isASCIIString(a.domain) {
			t.Fatalf("parseFrom(%q) = %+v", value, a)
		}
	})
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
