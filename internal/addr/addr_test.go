package addr

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		in, want string
		o        Options
	}{
		{in: "Bob@Example.COM", want: "bob@example.com"},
		{in: "  <Bob@Example.COM>  ", want: "bob@example.com"},
		{in: "Bob@Example.COM", want: "Bob@example.com", o: Options{CaseSensitiveLocal: true}},
		{in: "bob@example.com.", want: "bob@example.com"},
		{in: "first.last+tag@gmail.com", want: "first.last+tag@gmail.com"}, // no provider folding
		{in: `"first.last"@example.com`, want: "first.last@example.com"},
		{in: `"a b"@example.com`, want: `"a b"@example.com`},
		{in: `"a\"b"@example.com`, want: `"a\"b"@example.com`},
		{in: `"A@B"@example.com`, want: `"a@b"@example.com`},
		{in: "user@bücher.example", want: "user@xn--bcher-kva.example"},
		{in: "user@BÜCHER.example", want: "user@xn--bcher-kva.example"},
		{in: "user@xn--bcher-kva.example", want: "user@xn--bcher-kva.example"},
		{in: "Jörg@bücher.example", want: "jörg@xn--bcher-kva.example"},
		{in: "user@[192.0.2.1]", want: "user@[192.0.2.1]"},
		{in: "user@[IPV6:2001:DB8::1]", want: "user@[IPv6:2001:db8::1]"},
		{in: "o'brien@example.com", want: "o'brien@example.com"},
		{in: "_dmarc@sub_domain.example", want: "_dmarc@sub_domain.example"},
	}
	for _, c := range cases {
		got, err := Normalize(c.in, c.o)
		if err != nil {
			t.Errorf("Normalize(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	long := strings.Repeat("a", 65)
	cases := []struct {
		in   string
		want error
	}{
		{"", ErrEmpty},
		{"<>", ErrEmpty},
		{"bob", ErrNoAt},
		{"@example.com", ErrLocal},
		{"bob@", ErrDomain},
		{"bo b@example.com", ErrLocal},
		{".bob@example.com", ErrLocal},
		{"bob.@example.com", ErrLocal},
		{"b..ob@example.com", ErrLocal},
		{`"unterminated@example.com`, ErrLocal},
		{`"a"b"@example.com`, ErrLocal},
		{"bob@exa mple.com", ErrDomain},
		{"bob@-example.com", ErrDomain},
		{"bob@example..com", ErrDomain},
		{"bob@[300.1.1.1]", ErrDomain},
		{"bob@[IPv6:192.0.2.1]", ErrDomain},
		{long + "@example.com", ErrTooLong},
		{"bob@" + strings.Repeat("a", 64) + ".com", ErrDomain},
		{"bob@example.com\xff", ErrLocal},
		{"bo\x00b@example.com", ErrLocal},
	}
	for _, c := range cases {
		got, err := Normalize(c.in, Options{})
		if !errors.Is(err, c.want) {
			t.Errorf("Normalize(%q) = %q, %v; want error %v", c.in, got, err, c.want)
		}
	}
}

func TestPattern(t *testing.T) {
	got, err := NormalizePattern("*@Bücher.Example", Options{})
	if err != nil || got != "*@xn--bcher-kva.example" {
		t.Fatalf("NormalizePattern = %q, %v", got, err)
	}
	if !IsDomainPattern(got) {
		t.Errorf("IsDomainPattern(%q) = false", got)
	}
	if p := DomainPattern("bob@example.com"); p != "*@example.com" {
		t.Errorf("DomainPattern = %q", p)
	}
	if _, err := NormalizePattern("*@", Options{}); !errors.Is(err, ErrDomain) {
		t.Errorf("NormalizePattern(*@) error = %v", err)
	}
	if got, _ := NormalizePattern("A@B.example", Options{}); got != "a@b.example" {
		t.Errorf("NormalizePattern(address) = %q", got)
	}
}

func TestDomainLocal(t *testing.T) {
	if d := Domain(`"a@b"@example.com`); d != "example.com" {
		t.Errorf("Domain = %q", d)
	}
	if l := Local(`"a@b"@example.com`); l != `"a@b"` {
		t.Errorf("Local = %q", l)
	}
	if d := Domain("nodomain"); d != "" {
		t.Errorf("Domain(nodomain) = %q", d)
	}
}

// TestNormalizeInternal: Postfix's internal form takes the quotes off a
// local part that needs them; the address normalises as its quoted form.
func TestNormalizeInternal(t *testing.T) {
	for in, want := range map[string]string{
		"John@Example.com":         "john@example.com",
		"john smith@example.com":   `"john smith"@example.com`,
		`a"b@example.com`:          `"a\"b"@example.com`,
		"a@b@example.com":          `"a@b"@example.com`,
		`"john smith"@example.com`: `"john smith"@example.com`,
	} {
		got, err := NormalizeInternal(in, Options{})
		if err != nil || got != want {
			t.Errorf("NormalizeInternal(%q) = %q, %v; want %q", in, got, err, want)
		}
		if q, err := Normalize(want, Options{}); err != nil || q != got {
			t.Errorf("%q and its quoted form %q normalise apart: %q, %v", in, want, q, err)
		}
	}
	if _, err := NormalizeInternal("nodomain", Options{}); err == nil {
		t.Error("an address without a domain was accepted")
	}
}

// FuzzNormalize checks that no input panics, that a normalised address is
// a fixed point, and that it respects the RFC 5321 length limits.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"Bob@Example.COM", `"a b"@example.com`, "user@bücher.example",
		"user@[IPv6:2001:db8::1]", "*@example.com", `"\"@x`, "a@b@c", "<a@b>",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, cs bool) {
		o := Options{CaseSensitiveLocal: cs}
		n, err := Normalize(s, o)
		if err != nil {
			return
		}
		if len(n) > maxAddress {
			t.Fatalf("Normalize(%q) = %q: %d octets", s, n, len(n))
		}
		n2, err := Normalize(n, o)
		if err != nil {
			t.Fatalf("Normalize(%q) = %q, which does not normalise again: %v", s, n, err)
		}
		if n2 != n {
			t.Fatalf("Normalize is not idempotent: %q -> %q -> %q", s, n, n2)
		}
	})
}
