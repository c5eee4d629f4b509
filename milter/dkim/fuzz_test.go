package dkim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func seedTables(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dkim", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "bob", "example.com")
	}
}

// FuzzSigningTable: any SigningTable either is refused with an error or
// parses into rules that Match can apply to any address, in both
// dataset kinds, without panicking.
func FuzzSigningTable(f *testing.F) {
	seedTables(f, "SigningTable", "SigningTable.file")
	f.Add("*@[a-z.com k\n# c\n\n.x.y k:s@%\n", "u", "x.y")
	f.Add("ü@bücher.example\tk:%\n", "ü", "xn--bcher-kva.example")
	f.Fuzz(func(t *testing.T, table, user, domain string) {
		for _, regex := range []bool{false, true} {
			st, err := ParseSigningTable(strings.NewReader(table), Dataset{Path: "fuzz", Regex: regex})
			if err != nil {
				continue
			}
			for _, r := range st.Rules {
				if r.KeyName == "" || strings.ContainsAny(r.Pattern, " \t\n#") {
					t.Fatalf("rule %+v from %q", r, table)
				}
			}
			for _, r := range st.Match(user, domain, true) {
				r.fromDomains(regex)
			}
			st.Match(user, domain, false)
		}
	})
}

// FuzzKeyTable: any KeyTable either is refused or gives entries with a
// domain, a selector and a key, which Lookup finds by name.
func FuzzKeyTable(f *testing.F) {
	seedTables(f, "KeyTable")
	f.Add("k %:s:./%/k.pem\n", "k", "")
	f.Add("k* d:s:base64==", "kx", "")
	f.Fuzz(func(t *testing.T, table, name, _ string) {
		for _, regex := range []bool{false, true} {
			kt, err := ParseKeyTable(strings.NewReader(table), Dataset{Path: "/fuzz/kt", Regex: regex})
			if err != nil {
				continue
			}
			for _, e := range kt.Entries {
				if e.Domain == "" || e.Selector == "" || e.Key == "" {
					t.Fatalf("entry %+v from %q", e, table)
				}
				if !regex {
					if got, ok := kt.Lookup(e.Name); !ok || got.Name != e.Name {
						t.Fatalf("Lookup(%q) = %+v, %v", e.Name, got, ok)
					}
				}
			}
			kt.Lookup(name)
		}
	})
}
