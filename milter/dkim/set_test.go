package dkim

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleDir copies testdata/dkim to a temporary directory with the
// private keys made 0600, as LoadKeyFile requires (git keeps no modes).
func sampleDir(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "dkim")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".pem") {
			mode = 0o600
		}
		if d.Name() == "KeyTable" {
			b = bytes.ReplaceAll(b, []byte("/etc/opendkim/keys/"), []byte(filepath.Join(dst, "keys")+"/"))
		}
		return os.WriteFile(out, b, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// sig is a signature as a test expects it.
type sig struct{ d, s, i string }

func sigs(cs []Choice) []sig {
	var out []sig
	for _, c := range cs {
		out = append(out, sig{c.Domain, c.Selector, c.Identity})
	}
	return out
}

func load(t *testing.T, o Options) *Set {
	t.Helper()
	s, err := Load(o)
	if err != nil {
		t.Fatalf("Load(%+v): %v", o, err)
	}
	return s
}

// The sample tables, read as OpenDKIM would, for addresses that take
// each kind of rule. The expectations follow opendkim.conf(5); the test
// that runs OpenDKIM itself (opendkim_test.go) checks the same cases
// against the real thing.
func TestSelectSampleTables(t *testing.T) {
	dir := sampleDir(t)
	for _, tc := range []struct {
		table    string
		multiple bool
		from     string
		want     []sig
	}{
		// refile: in file order.
		{"refile:SigningTable", false, "ceo@example.org", []sig{{"example.org", "ceo", "ceo@example.org"}}},
		{"refile:SigningTable", true, "ceo@example.org", []sig{{"example.org", "ceo", "ceo@example.org"}, {"example.org", "news", "@news.example.org"}, {"provider.test", "p1", ""}}},
		{"refile:SigningTable", false, "Someone@EXAMPLE.org", []sig{{"example.org", "news", "@news.example.org"}}},
		{"refile:SigningTable", true, "bob@example.com", []sig{{"example.com", "rsa2026", ""}, {"example.com", "ed2026", ""}, {"provider.test", "p1", ""}}},
		{"refile:SigningTable", false, "bob@example.com", []sig{{"example.com", "rsa2026", ""}}},
		{"refile:SigningTable", true, "a@news.example.com", []sig{{"example.com", "rsa2026", ""}, {"provider.test", "p1", ""}}},
		{"refile:SigningTable", false, "y@example.net", []sig{{"example.net", "mail", ""}}},
		{"refile:SigningTable", false, "z@customer1.test", []sig{{"customer1.test", "mail", ""}}},
		{"refile:SigningTable", true, "z@customer2.test", []sig{{"customer2.test", "mail", ""}, {"provider.test", "p1", ""}}},
		{"refile:SigningTable", true, "q@elsewhere.test", []sig{{"provider.test", "p1", ""}}},
		// file: asks user@domain, domain, user@.parent, .parent, user@*, *.
		{"file:SigningTable.file", true, "ceo@example.org", []sig{{"example.org", "ceo", "ceo@example.org"}, {"example.org", "news", "@news.example.org"}, {"provider.test", "p1", ""}}},
		{"file:SigningTable.file", false, "ceo@example.org", []sig{{"example.org", "ceo", "ceo@example.org"}}},
		{"file:SigningTable.file", false, "x@example.org", []sig{{"example.org", "news", "@news.example.org"}}},
		{"file:SigningTable.file", true, "a@news.example.com", []sig{{"example.com", "rsa2026", ""}, {"provider.test", "p1", ""}}},
		{"file:SigningTable.file", false, "y@example.net", []sig{{"example.net", "mail", ""}}},
		{"file:SigningTable.file", true, "z@customer1.test", []sig{{"customer1.test", "mail", ""}, {"provider.test", "p1", ""}}},
		{"file:SigningTable.file", false, "q@elsewhere.test", []sig{{"provider.test", "p1", ""}}},
	} {
		s := load(t, Options{KeyTable: "refile:KeyTable", SigningTable: tc.table, Dir: dir, Multiple: tc.multiple, ProviderKeys: []string{"provider"}})
		user, domain, _ := strings.Cut(tc.from, "@")
		got, steps, err := s.Select(user, strings.ToLower(domain))
		if err != nil {
			t.Errorf("%s multiple=%v %s: %v", tc.table, tc.multiple, tc.from, err)
			continue
		}
		if !slices.Equal(sigs(got), tc.want) {
			t.Errorf("%s multiple=%v %s:\n got  %v\n want %v", tc.table, tc.multiple, tc.from, sigs(got), tc.want)
		}
		if len(steps) < len(got) {
			t.Errorf("%s %s: %d steps explain %d signatures", tc.table, tc.from, len(steps), len(got))
		}
	}
}

// writeTables writes a KeyTable and a refile: SigningTable into a copy
// of the sample directory (so that its keys are at hand).
func writeTables(t *testing.T, keyTable, signingTable string) string {
	t.Helper()
	dir := sampleDir(t)
	os.WriteFile(filepath.Join(dir, "kt"), []byte(keyTable), 0o644)
	os.WriteFile(filepath.Join(dir, "st"), []byte(signingTable), 0o644)
	return dir
}

// A rule whose d= does not align with the From domains it matches is
// refused when loading, unless its key is the provider's.
func TestAlignmentRefused(t *testing.T) {
	kt := "corp example.com:s:./keys/example.com-rsa.pem\nprov provider.test:p1:./keys/provider.test.pem\n"
	for _, tc := range []struct {
		signing  string
		provider []string
		refused  string // part of the error, "" for accepted
	}{
		{"*@example.com corp\n", nil, ""},
		{"*@mail.example.com corp\n", nil, ""}, // same organisational domain
		{"*@*.example.com corp\n", nil, ""},    // subdomains of example.com
		{"*@example.net corp\n", nil, "does not align"},
		{"* corp\n", nil, "can match any From domain"},
		{"*@* corp\n", nil, "can match any From domain"},
		{"*@*.com corp\n", nil, "can match any From domain"},
		{"*@example.(com|net) corp\n", nil, "can match any From domain"},
		{"* prov\n", []string{"prov"}, ""},
		{"*@example.net prov\n", []string{"prov"}, ""},
		{"*@example.net prov\n", nil, "list \"prov\" in milter.provider_keys"},
	} {
		dir := writeTables(t, kt, tc.signing)
		_, err := Load(Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir, Multiple: true, ProviderKeys: tc.provider})
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q provider %v: refused: %v", tc.signing, tc.provider, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%q provider %v: error %v, want one saying %q", tc.signing, tc.provider, err, tc.refused)
		}
	}
	// file: keys too.
	for signing, refused := range map[string]bool{
		"example.com corp\n": false, ".example.com corp\n": false, "bob@example.com corp\n": false,
		"example.net corp\n": true, "* corp\n": true, "bob@* corp\n": true, ".com corp\n": true,
	} {
		dir := writeTables(t, kt, signing)
		_, err := Load(Options{KeyTable: "kt", SigningTable: "file:st", Dir: dir})
		if (err != nil) != refused {
			t.Errorf("file: %q: error %v, want refused=%v", signing, err, refused)
		}
	}
}

// Problems OpenDKIM only finds per message (tempfailing it) are found
// when loading where they can be; the rest make Select fail.
func TestTableErrors(t *testing.T) {
	for _, tc := range []struct{ kt, st, want string }{
		{"a example.com:s:./keys/example.com-rsa.pem\n", "*@example.com b\n", `key "b" is not in KeyTable`},
		{"a example.com:s\n", "*@example.com a\n", `want "domain:selector:keyfile"`},
		{"a example.com:s:./keys/missing.pem\n", "*@example.com a\n", "no such file"},
		{"a example..com:s:./keys/example.com-rsa.pem\n", "*@example.com a\n", "domain"},
		{"a example.com:s s:./keys/example.com-rsa.pem\n", "*@example.com a\n", "selector"},
		{"a example.com:s:bm90IGEga2V5\n", "*@example.com a\n", "not a PKCS"},
		{"a example.com:s:./keys/example.com-rsa.pem\n", "*@example.com\n", "names no key"},
		{"a example.com:s:./keys/example.com-rsa.pem\n", "*@example.com[ a\n", "pattern"},
	} {
		dir := writeTables(t, tc.kt, tc.st)
		_, err := Load(Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("KeyTable %q SigningTable %q: %v, want an error with %q", tc.kt, tc.st, err, tc.want)
		}
		var te *TableError
		if err != nil && strings.Contains(tc.want, "key") && !errors.As(err, &te) && !strings.Contains(err.Error(), "KeyTable") {
			t.Errorf("%v does not name the table", err)
		}
	}

	// A key that may be read by others is refused, as OpenDKIM's
	// RequireSafeKeys does.
	dir := writeTables(t, "a example.com:s:./keys/example.com-rsa.pem\n", "*@example.com a\n")
	os.Chmod(filepath.Join(dir, "keys", "example.com-rsa.pem"), 0o644)
	if _, err := Load(Options{KeyTable: "kt", SigningTable: "st", Dir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}

	// A "%" key whose file does not exist for this domain, and a "%" key
	// name the KeyTable lacks, fail the message (OpenDKIM tempfails it).
	dir = sampleDir(t)
	os.WriteFile(filepath.Join(dir, "kt"), []byte("c %:mail:"+dir+"/keys/%.pem\nexample.net example.net:mail:./keys/example.net.pem\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "st"), []byte("*@*.test c\n*@*.net %\n"), 0o644)
	s := load(t, Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir})
	if _, _, err := s.Select("a", "customer1.test"); err != nil {
		t.Errorf("customer1.test has a key: %v", err)
	}
	if _, _, err := s.Select("a", "customer3.test"); err == nil || !strings.Contains(err.Error(), "customer3.test.pem") {
		t.Errorf("customer3.test has no key file: %v", err)
	}
	if _, _, err := s.Select("a", "other.net"); err == nil || !strings.Contains(err.Error(), `key "other.net", which is not in KeyTable`) {
		t.Errorf("%% key name without entry: %v", err)
	}
	if got := s.Files(); !slices.Contains(got, filepath.Join(dir, "keys")) {
		t.Errorf("Files() = %v: the directory of %% keys is not watched", got)
	}

	if _, err := Load(Options{KeyTable: "kt"}); err == nil {
		t.Error("a KeyTable without a SigningTable was accepted")
	}
	if s, err := Load(Options{}); s != nil || err != nil {
		t.Errorf("no tables: %v, %v; want no Set and no error", s, err)
	}
	if _, err := ParseDataset("csl:a=b", "/"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("csl: dataset: %v", err)
	}
}

// Internationalised domains compare in A-labels, whichever form the
// table and the From header use (RFC 8616 §4).
func TestIDN(t *testing.T) {
	dir := writeTables(t, "b bücher.example:s:./keys/example.com-rsa.pem\n", "*@Bücher.example b\n")
	s := load(t, Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir})
	got, _, err := s.Select("jürgen", "xn--bcher-kva.example")
	if err != nil || !slices.Equal(sigs(got), []sig{{"xn--bcher-kva.example", "s", ""}}) {
		t.Errorf("Select(jürgen@xn--bcher-kva.example) = %v, %v", sigs(got), err)
	}
	dir = writeTables(t, "b xn--bcher-kva.example:s:./keys/example.com-rsa.pem\n", "bücher.example b\n")
	s = load(t, Options{KeyTable: "kt", SigningTable: "file:st", Dir: dir})
	if got, _, err := s.Select("a", "xn--bcher-kva.example"); err != nil || len(got) != 1 {
		t.Errorf("file: table with a U-label: %v, %v", sigs(got), err)
	}
}

// The lookup keys of a file: table, in OpenDKIM's order.
func TestLookupKeys(t *testing.T) {
	got := lookupKeys("u", "foo.example.com")
	want := []string{"u@foo.example.com", "foo.example.com", "u@.example.com", ".example.com", "u@.com", ".com", "u@*", "*"}
	if !slices.Equal(got, want) {
		t.Errorf("lookupKeys = %q, want %q", got, want)
	}
}

// refile: patterns are OpenDKIM's: "*" is any text, "." and "+" are
// themselves, matching is anchored and, for the SigningTable,
// case-insensitive.
func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*@example.com", "bob@example.com", true},
		{"*@example.com", "bob@exampleXcom", false},
		{"*@example.com", "bob@example.com.evil", false},
		{"*@example.com", "BOB@EXAMPLE.COM", true},
		{"a+b@example.com", "a+b@example.com", true},
		{"a+b@example.com", "aab@example.com", false},
		{"*", "anything@at.all", true},
	} {
		re, err := globRE(tc.pattern, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := re.MatchString(tc.s); got != tc.want {
			t.Errorf("%q ~ %q = %v", tc.pattern, tc.s, got)
		}
	}
}

// A "%" key name reaches the KeyTable entry named after the From domain:
// an entry whose d= does not align with its own name is refused.
func TestPercentKeyNameAlignment(t *testing.T) {
	dir := writeTables(t, "example.net example.org:s:./keys/example.net.pem\nmykey example.com:s:./keys/example.com-rsa.pem\n", "*@*.net %\n")
	if _, err := Load(Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir}); err == nil || !strings.Contains(err.Error(), "does not align with example.net") {
		t.Errorf("%% reaching a key for another organisation: %v", err)
	}
	dir = writeTables(t, "example.net mail.example.net:s:./keys/example.net.pem\nmykey example.com:s:./keys/example.com-rsa.pem\n", "*@*.net %\n")
	s := load(t, Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir})
	if got, _, err := s.Select("a", "example.net"); err != nil || !slices.Equal(sigs(got), []sig{{"mail.example.net", "s", ""}}) {
		t.Errorf("Select(a@example.net) = %v, %v", sigs(got), err)
	}
}

// As in OpenDKIM, "%" in a key path stands for the domain only in a
// path written from "/"; in a relative one it is a "%".
func TestPercentInRelativePath(t *testing.T) {
	dir := writeTables(t, "c %:mail:./keys/%.pem\n", "*@*.test c\n")
	os.Rename(filepath.Join(dir, "keys", "customer1.test.pem"), filepath.Join(dir, "keys", "%.pem"))
	s := load(t, Options{KeyTable: "kt", SigningTable: "refile:st", Dir: dir})
	got, _, err := s.Select("a", "customer2.test")
	if err != nil || !slices.Equal(sigs(got), []sig{{"customer2.test", "mail", ""}}) {
		t.Errorf("Select(a@customer2.test) = %v, %v; want the key in the file named %%.pem", sigs(got), err)
	}
}
