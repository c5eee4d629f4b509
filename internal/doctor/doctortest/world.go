package doctortest

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
	"github.com/senderkit/senderkit/internal/token"
	"github.com/senderkit/senderkit/unsubscribe"
)

// WorldOptions vary the prepared world.
type WorldOptions struct {
	// Patch is a patch file (see Zones.Patch) applied to the zones, ""
	// for the correct zones.
	Patch string
	// BaseURL makes http.base_url from the HTTPS endpoint's port; nil
	// gives "https://unsub.acme.example:PORT/u/".
	BaseURL func(port string) string
	// CertHost is the name in the endpoint's certificate; default
	// "unsub.acme.example".
	CertHost string
	// CertNotAfter is when that certificate expires; default in 90 days.
	CertNotAfter time.Time
	// SigningTable, when set, replaces the SigningTable of
	// testdata/dns/dkim.
	SigningTable string
	// Handler, when set, answers at the HTTPS address instead of the
	// unsubscribe endpoint: another web server.
	Handler http.Handler
}

// World is the test world of testdata/dns running on loopback: its zones
// served by a DNS server, its one-click unsubscribe endpoint (the real
// one, package unsubscribe) served over HTTPS with a certificate from a
// test CA, and its configuration written out with their addresses.
type World struct {
	Dir        string // the state directory, holding the configuration and the DKIM tables
	ConfigFile string
	Config     *conf.Config
	DNS        *Server
	CA         *CA
	CAFile     string // the CA certificate, PEM
	HTTPS      *httptest.Server
}

// StartWorld starts the world described in root (testdata/dns) until
// the test ends.
func StartWorld(t testing.TB, root string, o WorldOptions) *World {
	t.Helper()
	zones, err := LoadZones(filepath.Join(root, "zones"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Patch != "" {
		if err := zones.Patch(o.Patch); err != nil {
			t.Fatal(err)
		}
	}
	w := &World{Dir: t.TempDir(), DNS: Start(t, zones), CA: NewCA(t)}
	w.CAFile = filepath.Join(w.Dir, "ca.pem")
	if err := os.WriteFile(w.CAFile, w.CA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	copyDKIM(t, filepath.Join(root, "dkim"), filepath.Join(w.Dir, "dkim"))
	if o.SigningTable != "" {
		if err := os.WriteFile(filepath.Join(w.Dir, "dkim", "SigningTable"), []byte(o.SigningTable), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if o.CertHost == "" {
		o.CertHost = "unsub.acme.example"
	}
	if o.CertNotAfter.IsZero() {
		o.CertNotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	var cfg *conf.Config
	srv := &unsubscribe.Server{Config: func() *conf.Config { return cfg }, Log: slog.New(slog.DiscardHandler)}
	var h http.Handler = srv
	if o.Handler != nil {
		h = o.Handler
	}
	w.HTTPS = httptest.NewUnstartedServer(h)
	w.HTTPS.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests want
	w.HTTPS.TLS = &tls.Config{Certificates: []tls.Certificate{w.CA.Issue(t, o.CertHost, o.CertNotAfter)}}
	_, port, _ := net.SplitHostPort(w.HTTPS.Listener.Addr().String())
	base := "https://unsub.acme.example:" + port + "/u/"
	if o.BaseURL != nil {
		base = o.BaseURL(port)
	}
	w.ConfigFile = filepath.Join(w.Dir, "senderkit.toml")
	writeConfig(t, filepath.Join(root, "senderkit.toml"), w.ConfigFile, map[string]string{
		"StateDir": w.Dir, "BaseURL": base, "Resolver": w.DNS.Addr,
	})
	if cfg, err = conf.Load(w.ConfigFile); err != nil {
		t.Fatal(err)
	}
	w.Config = cfg

	keyDir := cfg.KeyDir()
	if _, err := token.EnsureKey(keyDir); err != nil {
		t.Fatal(err)
	}
	kr, err := token.LoadKeyring(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(w.Dir, "senderkit.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv.Keys = func() *token.Keyring { return kr }
	srv.Store = st
	w.HTTPS.StartTLS()
	t.Cleanup(w.HTTPS.Close)
	return w
}

// copyDKIM copies the DKIM tables and keys, giving the keys the mode
// 0600 that the loader demands (git keeps no such mode).
func copyDKIM(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(e.Name(), ".pem") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func writeConfig(t testing.TB, tmplFile, out string, data map[string]string) {
	t.Helper()
	tmpl, err := template.ParseFiles(tmplFile)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Option("missingkey=error").Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
