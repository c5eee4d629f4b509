package conf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatalf("built-in default does not validate: %v", err)
	}
	if c.File() != "" || c.StorePath() != "/var/lib/senderkit/senderkit.db" || c.KeyDir() != "/var/lib/senderkit/keys" {
		t.Errorf("default paths: file %q store %q keys %q", c.File(), c.StorePath(), c.KeyDir())
	}
	if !c.Store.Mmap {
		t.Error("store.mmap is off by default")
	}
	off, err := Parse([]byte("[store]\nmmap = false\n"), "nommap.toml")
	if err != nil || off.Store.Mmap {
		t.Errorf("store.mmap = false: %v, %v", off.Store.Mmap, err)
	}
	if on, err := Parse([]byte("[store]\npath = \"s.db\"\n"), "store.toml"); err != nil || !on.Store.Mmap {
		t.Errorf("a [store] without mmap: mmap %v, %v", on.Store.Mmap, err)
	}
	sc := c.ScopeFor(Envelope{Client: netip.MustParseAddr("127.0.0.1")})
	if sc == nil || sc.Name != "default" {
		t.Fatalf("default scope for a local client: %+v", sc)
	}
	if st, _ := sc.StreamFor("", "", ""); st.Name != "bulk" || !st.IsBulk() {
		t.Errorf("default stream: %+v", st)
	}
	if sc := c.ScopeFor(Envelope{Client: netip.MustParseAddr("192.0.2.1")}); sc != nil {
		t.Errorf("a remote client matched scope %q", sc.Name)
	}
}

const sample = `
state_dir = "/srv/senderkit"

[bounce]
domain = "Bounces.Example.COM"

[log]
levels = { milter = "debug" }

[[scope]]
name = "acme"
sasl_users = ["acme-app"]
sender_domains = ["acme.example"]
default_stream = "news"

  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
  senders = ["billing@acme.example"]
  daemon_names = ["submission-tx"]

  [[scope.stream]]
  name = "news"

[[scope]]
name = "globex"
clients = ["192.0.2.0/24", "2001:db8::1"]
`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(sample), "sample.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Bounce.Domain != "bounces.example.com" {
		t.Errorf("bounce domain not normalised: %q", c.Bounce.Domain)
	}
	if c.Store.Path != "senderkit.db" || c.StorePath() != "/srv/senderkit/senderkit.db" {
		t.Errorf("store path default not kept: %q", c.StorePath())
	}
	if len(c.Scopes) != 2 {
		t.Fatalf("%d scopes: a file's scopes must replace the default ones", len(c.Scopes))
	}
	cases := []struct {
		env  Envelope
		want string
	}{
		{Envelope{SASLUser: "acme-app", Client: netip.MustParseAddr("192.0.2.9")}, "acme"}, // first scope wins
		{Envelope{Sender: "news@ACME.example"}, "acme"},
		{Envelope{Sender: "news@sub.acme.example"}, ""},
		{Envelope{Client: netip.MustParseAddr("192.0.2.9")}, "globex"},
		{Envelope{Client: netip.MustParseAddr("::ffff:192.0.2.9")}, "globex"},
		{Envelope{Client: netip.MustParseAddr("2001:db8::1")}, "globex"},
		{Envelope{Client: netip.MustParseAddr("127.0.0.1")}, ""},
		{Envelope{Sender: "<>"}, ""},
	}
	for _, tc := range cases {
		got := ""
		if sc := c.ScopeFor(tc.env); sc != nil {
			got = sc.Name
		}
		if got != tc.want {
			t.Errorf("ScopeFor(%+v) = %q, want %q", tc.env, got, tc.want)
		}
	}
	acme := c.Scope("acme")
	for _, tc := range []struct {
		header, daemon, sender, want string
		known                        bool
	}{
		{"", "", "", "news", true},
		{"Receipts", "", "", "receipts", true},
		{"nosuch", "", "", "news", false},
		{"", "submission-tx", "", "receipts", true},
		{"", "", "Billing@acme.example", "receipts", true},
		{"news", "submission-tx", "", "news", true}, // the header wins
	} {
		st, known := acme.StreamFor(tc.header, tc.daemon, tc.sender)
		if st.Name != tc.want || known != tc.known {
			t.Errorf("StreamFor(%q, %q, %q) = %s, %v; want %s, %v", tc.header, tc.daemon, tc.sender, st.Name, known, tc.want, tc.known)
		}
	}
	if c.Scope("globex").Streams[0].Name != "bulk" || c.Scope("globex").DefaultStream != "bulk" {
		t.Errorf("scope without streams did not get the default bulk stream")
	}
}

// TestErrorsNameLineAndKey: check reports every error with file, line and key.
func TestErrorsNameLineAndKey(t *testing.T) {
	bad := `state_dir = "relative"          # 1
[store]
busy_timeout = "5 seconds"                  # 3
[bounce]
verp_prefix = "this-prefix-is-far-too-long" # 5
[log]
level = "loud"                               # 7
[[scope]]
name = "acme"
clients = ["192.0.2.1/24"]                   # 10
  [[scope.stream]]
  name = "news"
  kind = "weekly"                            # 13
[[scope]]
name = "acme"                                # 15
default_stream = "nope"                      # 16
`
	_, err := Parse([]byte(bad), "bad.toml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v, want Errors", err)
	}
	// busy_timeout fails at decode time, before validation: fix it and
	// the rest are found together.
	if len(errs) != 1 || errs[0].Line != 3 || errs[0].Key != "store.busy_timeout" {
		t.Fatalf("decode error = %v", errs)
	}
	_, err = Parse([]byte(strings.Replace(bad, `"5 seconds"`, `"5s"`, 1)), "bad.toml")
	errors.As(err, &errs)
	want := []string{
		`bad.toml:1: state_dir: "relative" is not an absolute path`,
		`bad.toml:5: bounce.verp_prefix: token: VERP prefix "this-prefix-is-far-too-long" is 27 characters`,
		`bad.toml:7: log.level: level "loud"`,
		`bad.toml:10: scope[0].clients[0]: "192.0.2.1/24" has host bits set; did you mean 192.0.2.0/24?`,
		`bad.toml:13: scope[0].stream[0].kind: "weekly"`,
		`bad.toml:15: scope[1].name: scope "acme" is already defined as scope[0]`,
		`bad.toml:16: scope[1].default_stream: "nope" is not a stream of scope "acme"`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q\nwant prefix %q", i, errs[i].Error(), w)
		}
	}
}

func TestUnknownKeysAndSyntax(t *testing.T) {
	_, err := Parse([]byte("[store]\npath = \"x.db\"\npaht = \"y.db\"\n[[scope]]\nname = \"a\"\ncolour = 1\n"), "u.toml")
	if got := err.Error(); !strings.Contains(got, "u.toml:3: store.paht: unknown key") || !strings.Contains(got, "u.toml:6: scope.colour: unknown key") {
		t.Errorf("unknown keys: %v", err)
	}
	_, err = Parse([]byte("[store\npath = 1\n"), "s.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "s.toml:1: ") {
		t.Errorf("syntax error: %v", err)
	}
	_, err = Parse([]byte("[store]\n\npath = 7\n"), "t.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "t.toml:3: store.path: ") {
		t.Errorf("type error: %v", err)
	}
	if _, err := Load("/nonexistent/senderkit.toml"); err == nil {
		t.Error("missing file loaded")
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"14d": 14 * 24 * time.Hour, "90s": 90 * time.Second, "1h30m": 90 * time.Minute, "0s": 0} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
		if s := Duration(got).String(); s != in && !(in == "90s" && s == "1m30s") {
			t.Errorf("Duration(%v).String() = %q", got, s)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-2d", "5 seconds", "99999999d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestListen(t *testing.T) {
	for in, want := range map[Listen][2]string{"": {"", ""}, "inet:127.0.0.1:10026": {"tcp", "127.0.0.1:10026"}, "unix:/run/s.sock": {"unix", "/run/s.sock"}} {
		n, a, err := in.Split()
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("Split(%q) = %q, %q, %v", in, n, a, err)
		}
	}
	for _, in := range []Listen{"127.0.0.1:10026", "inet:localhost:1", "unix:relative.sock", "tcp:1.2.3.4:5"} {
		if _, _, err := in.Split(); err == nil {
			t.Errorf("Split(%q) succeeded", in)
		}
	}
}

// FuzzParse: no input panics, every error names a key or a line, and a
// file that loads has a usable scope table.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("[[scope]]\nname = \"a\"\n[[scope.stream]]\nname=\"b\"\nkind=\"transactional\"\n"))
	f.Add([]byte("state_dir = 1\n"))
	f.Add([]byte("[log]\nlevels = { x = \"y\" }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.toml")
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not an Errors", err)
			}
			for _, e := range errs {
				if e.File != "f.toml" {
					t.Fatalf("error without the file name: %v", e)
				}
			}
			return
		}
		for i := range c.Scopes {
			sc := &c.Scopes[i]
			if st, _ := sc.StreamFor("", "", ""); st == nil {
				t.Fatalf("scope %q has no default stream", sc.Name)
			}
		}
		c.ScopeFor(Envelope{Sender: "a@b.example", Client: netip.MustParseAddr("192.0.2.1")})
	})
}
