package token

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func key(id uint8, fill byte) Key { return Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)} }

func ring(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

var sample = Token{
	Kind:   Copy,
	Time:   time.Date(2026, 11, 2, 9, 30, 15, 0, time.UTC),
	SendID: 0x7123456789abcdef,
	Scope:  3,
	Stream: 7,
}

func TestRoundTrip(t *testing.T) {
	kr := ring(t, key(1, 'a'), key(2, 'b'))
	for _, tk := range []Token{
		sample,
		{Kind: Resubscribe, Time: Epoch, SendID: 1, Scope: 0, Stream: 0},
		{Kind: Copy, Time: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), SendID: MaxSendID, Scope: MaxID, Stream: MaxID},
	} {
		s, err := kr.Encode(tk)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", tk, err)
		}
		if len(s) > MaxLen {
			t.Errorf("token %q is %d characters, MaxLen is %d", s, len(s), MaxLen)
		}
		if strings.ToLower(s) != s || strings.ContainsAny(s, "=+/") {
			t.Errorf("token %q is not lower-case base32 without padding", s)
		}
		got, err := kr.Decode(s)
		if err != nil {
			t.Fatalf("Decode(%q): %v", s, err)
		}
		tk.KeyID = 2 // the highest id signs
		if got != tk {
			t.Errorf("Decode(Encode(%+v)) = %+v", tk, got)
		}
		// MTAs may upper-case a local part.
		if got2, err := kr.Decode(strings.ToUpper(s)); err != nil || got2 != got {
			t.Errorf("Decode(upper-case) = %+v, %v", got2, err)
		}
		// No other spelling: the Kelvin sign lower-cases to 'k'.
		if i := strings.IndexAny(s, "kK"); i >= 0 {
			if _, err := kr.Decode(s[:i] + "\u212a" + s[i+1:]); !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode with a Kelvin sign for 'k': %v, want ErrMalformed", err)
			}
		}
	}
}

func TestTypicalLengthFitsVERP(t *testing.T) {
	s, err := ring(t, key(1, 'a')).Encode(sample)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 42 {
		t.Errorf("typical token is %d characters, want 42", len(s))
	}
	if l := Local("bounces", s); len(l) > MaxLocal {
		t.Errorf("local part %q is %d octets", l, len(l))
	}
	if err := CheckPrefix(strings.Repeat("b", MaxPrefix)); err != nil {
		t.Errorf("longest prefix refused: %v", err)
	}
	if err := CheckPrefix(strings.Repeat("b", MaxPrefix+1)); err == nil {
		t.Errorf("over-long prefix accepted")
	}
}

func TestForgedAndTampered(t *testing.T) {
	kr := ring(t, key(1, 'a'))
	s, err := kr.Encode(sample)
	if err != nil {
		t.Fatal(err)
	}
	// Every single-character change is rejected, and none is taken as valid.
	for i := 0; i < len(s); i++ {
		for _, c := range "a7q" {
			if byte(c) == s[i] {
				continue
			}
			m := s[:i] + string(c) + s[i+1:]
			if _, err := kr.Decode(m); err == nil {
				t.Fatalf("tampered token %q (position %d) verified", m, i)
			}
		}
	}
	// A token made with another secret under the same key id.
	other, _ := ring(t, key(1, 'z')).Encode(sample)
	if _, err := kr.Decode(other); !errors.Is(err, ErrBadMAC) || !errors.Is(err, ErrForged) {
		t.Errorf("token under a foreign secret: err = %v, want ErrBadMAC", err)
	}
	// A token naming a key we do not have.
	foreign, _ := ring(t, key(9, 'a')).Encode(sample)
	if _, err := kr.Decode(foreign); !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrForged) {
		t.Errorf("token under unknown key: err = %v, want ErrUnknownKey", err)
	}
	// Truncated, padded, garbage: malformed, not forged.
	crlf := s[:10] + "\r\n" + s[12:] // encoding/base32 skips CR and LF
	for _, m := range []string{s[:len(s)-1], s[:20], s + "a", "", "not-a-token!", strings.Repeat("a", len(s)), crlf} {
		_, err := kr.Decode(m)
		if err == nil {
			t.Errorf("Decode(%q) succeeded", m)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q): err = %v, want ErrMalformed", m, err)
		}
	}
}

func TestKindIsAuthenticated(t *testing.T) {
	kr := ring(t, key(1, 'a'))
	s, _ := kr.Encode(sample)
	b, _ := enc.DecodeString(s)
	b[0] = version<<4 | byte(Resubscribe)
	if _, err := kr.Decode(enc.EncodeToString(b)); !errors.Is(err, ErrBadMAC) {
		t.Errorf("copy token relabelled as resubscribe: err = %v, want ErrBadMAC", err)
	}
}

func TestRotation(t *testing.T) {
	old := ring(t, key(1, 'a'))
	s, _ := old.Encode(sample)
	rotated := ring(t, key(1, 'a'), key(2, 'b'))
	if rotated.Signer() != 2 {
		t.Fatalf("signer = %d, want the newest key 2", rotated.Signer())
	}
	got, err := rotated.Decode(s)
	if err != nil || got.KeyID != 1 {
		t.Fatalf("token under the rotated-out key 1: %+v, %v", got, err)
	}
	n, _ := rotated.Encode(sample)
	if got, _ := rotated.Decode(n); got.KeyID != 2 {
		t.Errorf("new token signed by key %d, want 2", got.KeyID)
	}
	// Once key 1 is removed from the configuration, its tokens stop verifying.
	retired := ring(t, key(2, 'b'))
	if _, err := retired.Decode(s); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token under removed key: err = %v, want ErrUnknownKey", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	kr := ring(t, key(1, 'a'))
	bad := []Token{
		{Kind: 0, Time: sample.Time},
		{Kind: Copy, Time: Epoch.Add(-time.Second)},
		{Kind: Copy, Time: sample.Time, SendID: MaxSendID + 1},
		{Kind: Copy, Time: sample.Time, Scope: MaxID + 1},
	}
	for _, tk := range bad {
		if _, err := kr.Encode(tk); err == nil {
			t.Errorf("Encode(%+v) succeeded", tk)
		}
	}
	var empty *Keyring
	if _, err := empty.Encode(sample); !errors.Is(err, ErrNoKey) {
		t.Errorf("Encode with nil ring: %v", err)
	}
	if _, err := empty.Decode(strings.Repeat("a", 42)); err == nil {
		t.Errorf("Decode with nil ring succeeded")
	}
	if _, err := NewKeyring(Key{ID: 1, Secret: []byte("short")}); err == nil {
		t.Errorf("short secret accepted")
	}
	if _, err := NewKeyring(key(1, 'a'), key(1, 'b')); err == nil {
		t.Errorf("duplicate key id accepted")
	}
	if _, err := NewKeyring(key(0, 'a')); err == nil {
		t.Errorf("key id 0 accepted")
	}
}

func TestKeyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var wg sync.WaitGroup
	created := make(chan bool, 8)
	for range 8 {
		wg.Go(func() {
			c, err := EnsureKey(dir)
			if err != nil {
				t.Error(err)
			}
			created <- c
		})
	}
	wg.Wait()
	close(created)
	n := 0
	for c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of 8 concurrent EnsureKey calls created a key, want 1", n)
	}
	fi, err := os.Stat(filepath.Join(dir, "1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", fi.Mode().Perm())
	}
	if _, err := CreateKey(dir, 2); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o600)
	kr, err := LoadKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Signer() != 2 || !kr.Has(1) {
		t.Errorf("ring from dir: signer %d, has 1: %v", kr.Signer(), kr.Has(1))
	}
	if _, err := CreateKey(dir, 2); err == nil {
		t.Errorf("CreateKey overwrote key 2")
	}
	os.Chmod(filepath.Join(dir, "2.key"), 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "readable by everyone") {
		t.Errorf("world-readable key: err = %v", err)
	}
	os.Chmod(filepath.Join(dir, "2.key"), 0o600)
	os.WriteFile(filepath.Join(dir, "3.key"), []byte("zz"), 0o600)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "3.key") {
		t.Errorf("bad key file: err = %v", err)
	}
	if _, err := LoadKeyring(t.TempDir()); err == nil {
		t.Errorf("empty key directory accepted")
	}
}

func TestFromLocal(t *testing.T) {
	for _, c := range []struct {
		local, prefix, tok string
		ok                 bool
	}{
		{"b+abc", "b", "abc", true},
		{"B+ABC", "b", "ABC", true},
		{"bounces+abc", "b", "", false},
		{"b", "b", "", false},
		{"b+", "b", "", false},
	} {
		tok, ok := FromLocal(c.local, c.prefix)
		if tok != c.tok || ok != c.ok {
			t.Errorf("FromLocal(%q, %q) = %q, %v", c.local, c.prefix, tok, ok)
		}
	}
	if a := Address("b", "tok", "bounces.example.com"); a != "b+tok@bounces.example.com" {
		t.Errorf("Address = %q", a)
	}
}

// FuzzDecode feeds arbitrary strings to Decode: no panic, and whatever
// verifies must re-encode to the same token.
func FuzzDecode(f *testing.F) {
	kr := ring(f, key(1, 'a'), key(2, 'b'))
	s, _ := kr.Encode(sample)
	f.Add(s)
	f.Add(strings.ToUpper(s))
	f.Add(s[:len(s)-1])
	f.Add("")
	f.Add(strings.Repeat("7", MaxLen))
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := kr.Decode(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("Decode(%q): error %v is neither malformed nor forged", s, err)
			}
			return
		}
		again, err := kr.Encode(tk)
		if err != nil {
			t.Fatalf("verified token %q does not re-encode: %v", s, err)
		}
		if tk.KeyID == kr.Signer() && again != strings.ToLower(s) {
			t.Fatalf("token %q re-encodes as %q", s, again)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	kr := ring(b, key(1, 'a'))
	for b.Loop() {
		if _, err := kr.Encode(sample); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	kr := ring(b, key(1, 'a'))
	s, _ := kr.Encode(sample)
	for b.Loop() {
		if _, err := kr.Decode(s); err != nil {
			b.Fatal(err)
		}
	}
}
