package milter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/postfixlab"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
	"github.com/senderkit/senderkit/internal/token"
	"github.com/senderkit/senderkit/milter/dkim"
	dkimpyverify "github.com/senderkit/senderkit/milter/dkimpy"
)

// wait bounds every wait of the end-to-end tests.
const wait = 60 * time.Second

// env is a milter on loopback with a real store, its DKIM keys and
// tables, and a private Postfix wired to it as contrib/postfix says.
type env struct {
	t          testing.TB
	dir        string
	cfg        *conf.Config
	keys       *token.Keyring
	st         *sqlitestore.DB
	srv        *Server
	signing    atomic.Pointer[dkim.Set]
	records    map[string]string // DNS TXT records by name, for the DNS stand-in
	lab        *postfixlab.Lab
	log        *lockedBuffer
	milterAddr string
	copyAddr   string
	stop       func()
}

type envOptions struct {
	// scopes is the TOML of the [[scope]] tables; default: scope
	// "acme" for sender domain example.com, with a bulk stream "news"
	// and a transactional stream "receipts" (orders@example.com).
	scopes string
	// milter is extra TOML for the [milter] table.
	milter string
	// signingTable replaces the refile: SigningTable; the KeyTable has
	// "rsa" (example.com, s=rsa2026, RSA 2048), "ed" (example.com,
	// s=ed2026, Ed25519), "cust" (%:mail:keys/%.pem, a key per domain;
	// keys exist for customer1.test only) and "idn" (bücher.example,
	// s=s1, Ed25519).
	signingTable string
	// lab adds to the lab's options.
	lab postfixlab.Options
	// logLevel is the milter log's level; default info.
	logLevel slog.Level
	// synchronous is the store's; default full.
	synchronous string
}

const defaultScopes = `
[[scope]]
name = "acme"
sender_domains = ["example.com"]
  [[scope.stream]]
  name = "news"
  kind = "bulk"
  [[scope.stream]]
  name = "receipts"
  kind = "transactional"
  senders = ["orders@example.com"]
`

const defaultSigningTable = "*@example.com rsa\n*@example.com ed\n*@*.test cust\n"

// lockedBuffer is a log that tests read while the milter writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newEnv starts the milter and its Postfix. It needs root (Postfix) and
// installs Postfix and python3-dkim when they are missing.
func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	postfixlab.EnsurePackages(t, dkimpyverify.Packages)
	e := &env{t: t, dir: t.TempDir(), records: map[string]string{}, log: &lockedBuffer{}}
	os.Chmod(e.dir, 0o755)
	e.writeKeys()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.milterAddr = ln.Addr().String()
	e.copyAddr = freeAddr(t)
	scopes := o.scopes
	if scopes == "" {
		scopes = defaultScopes
	}
	text := fmt.Sprintf(`state_dir = %q
[bounce]
domain = "bounces.example.net"
[milter]
listen = "inet:%s"
copy_service = %q
key_table = "refile:KeyTable"
signing_table = "refile:SigningTable"
multiple_signatures = true
%s
[http]
listen = ""
base_url = "https://unsub.example.net/u/"
%s`, e.dir, e.milterAddr, e.copyAddr, o.milter, scopes)
	if e.cfg, err = conf.Parse([]byte(text), "senderkit.toml"); err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	if _, err := token.EnsureKey(e.cfg.KeyDir()); err != nil {
		t.Fatal(err)
	}
	if e.keys, err = token.LoadKeyring(e.cfg.KeyDir()); err != nil {
		t.Fatal(err)
	}
	e.setSigningTable(o.signingTable)
	if e.st, err = sqlitestore.Open(context.Background(), filepath.Join(e.dir, "senderkit.db"), sqlitestore.Options{BusyTimeout: 300 * time.Millisecond, Synchronous: o.synchronous}); err != nil {
		t.Fatal(err)
	}
	e.srv = New(Options{
		State: func() State { return State{Config: e.cfg, Tokens: e.keys, DKIM: e.signing.Load()} },
		Store: e.st,
		Log:   slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: o.logLevel})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	e.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(func() {
		e.stop()
		e.st.Close()
		if t.Failed() {
			t.Logf("milter log:\n%s", e.log.String())
		}
	})

	lo := o.lab
	main, master := contribPostfix(t, e.milterAddr, e.copyAddr)
	if lo.Main == nil {
		lo.Main = map[string]string{}
	}
	for k, v := range main {
		if _, set := lo.Main[k]; !set {
			lo.Main[k] = v
		}
	}
	lo.MasterLines = append(master, lo.MasterLines...)
	e.lab = postfixlab.Start(t, lo)
	return e
}

// contribPostfix reads contrib/postfix/milter.main.cf and
// milter.master.cf, as an administrator would install them, with the
// test's addresses in place of the default ports.
func contribPostfix(t testing.TB, milterAddr, copyAddr string) (map[string]string, []string) {
	t.Helper()
	fix := strings.NewReplacer("127.0.0.1:10026", milterAddr, "127.0.0.1:10029", copyAddr)
	b, err := os.ReadFile(filepath.Join("..", "contrib", "postfix", "milter.main.cf"))
	if err != nil {
		t.Fatal(err)
	}
	main := map[string]string{}
	for _, l := range strings.Split(fix.Replace(string(b)), "\n") {
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("milter.main.cf: %q", l)
		}
		main[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	b, err = os.ReadFile(filepath.Join("..", "contrib", "postfix", "milter.master.cf"))
	if err != nil {
		t.Fatal(err)
	}
	return main, strings.Split(strings.TrimRight(fix.Replace(string(b)), "\n"), "\n")
}

// writeKeys makes the DKIM keys and tables, and notes the TXT records.
func (e *env) writeKeys() {
	t := e.t
	os.Mkdir(filepath.Join(e.dir, "keys"), 0o755)
	write := func(name, domain, selector, alg string) {
		k, err := dkim.GenerateKey(alg, 2048)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := dkim.MarshalPrivateKey(k)
		if err := os.WriteFile(filepath.Join(e.dir, "keys", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		txt, _ := dkim.TXTRecord(k)
		e.records[dkim.RecordName(selector, domain)] = txt
	}
	write("rsa.pem", "example.com", "rsa2026", "rsa")
	write("ed.pem", "example.com", "ed2026", "ed25519")
	write("customer1.test.pem", "customer1.test", "mail", "rsa")
	write("idn.pem", "xn--bcher-kva.example", "s1", "ed25519")
	kt := "rsa example.com:rsa2026:./keys/rsa.pem\ned example.com:ed2026:./keys/ed.pem\ncust %:mail:" + e.dir + "/keys/%.pem\n" +
		"idn bücher.example:s1:./keys/idn.pem\n"
	os.WriteFile(filepath.Join(e.dir, "KeyTable"), []byte(kt), 0o644)
}

// setSigningTable replaces the SigningTable ("" for the default) and
// puts the new signing configuration in force.
func (e *env) setSigningTable(table string) {
	e.t.Helper()
	if table == "" {
		table = defaultSigningTable
	}
	if err := os.WriteFile(filepath.Join(e.dir, "SigningTable"), []byte(table), 0o644); err != nil {
		e.t.Fatal(err)
	}
	s, err := dkim.Load(dkim.Options{KeyTable: e.cfg.Milter.KeyTable, SigningTable: e.cfg.Milter.SigningTable,
		Dir: e.dir, Multiple: true, ProviderKeys: e.cfg.Milter.ProviderKeys})
	if err != nil {
		e.t.Fatal(err)
	}
	e.signing.Store(s)
}

// msg is a test message.
func msg(from, to, subject string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender <%s>\r\nTo: <%s>\r\nSubject: %s\r\n", from, to, subject)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString("Hello,\r\n.a line that starts with a dot\r\n\r\n8-bit: h\xc3\xa9llo\r\ntrailing space \r\n-- \r\nend\r\n")
	return []byte(b.String())
}

// header parses a received message's header.
func header(t testing.TB, m postfixlab.Message) *textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Data)))
	if err != nil {
		t.Fatalf("header of the message to %v: %v", m.To, err)
	}
	return &h
}

// dkimpy verifies a message's signatures with python3-dkim, against the
// TXT records in records.
func dkimpy(t testing.TB, data []byte, records map[string]string) []dkimpyverify.Result {
	t.Helper()
	rs, err := dkimpyverify.Verify(t.TempDir(), data, records)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// copyOf checks what the milter made of a message it kept in scope: the
// VERP sender carries a token that verifies and names a send row for
// this recipient; it returns the token and the send.
func (e *env) copyOf(m postfixlab.Message) (string, store.Send) {
	t := e.t
	t.Helper()
	local, domain, _ := strings.Cut(m.From, "@")
	tok, ok := token.FromLocal(local, e.cfg.Bounce.VERPPrefix)
	if !ok || domain != e.cfg.Bounce.Domain {
		t.Fatalf("envelope sender %q is not a VERP address of %s", m.From, e.cfg.Bounce.Domain)
	}
	tk, err := e.keys.Decode(tok)
	if err != nil {
		t.Fatalf("token of %q: %v", m.From, err)
	}
	s, err := e.st.Send(context.Background(), tk.SendID)
	if err != nil {
		t.Fatalf("send %d of token %q: %v", tk.SendID, tok, err)
	}
	if sc, _ := e.st.Name(context.Background(), store.ScopeName, tk.Scope); sc != s.Scope {
		t.Errorf("token names scope %q, the send %q", sc, s.Scope)
	}
	return tok, s
}
