package conf

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// HTTP configures the unsubscribe endpoint.
type HTTP struct {
	// Listen is "HOST:PORT", or "" to serve no HTTP. Default "127.0.0.1:8025".
	Listen string `toml:"listen"`
	// BaseURL is the public URL under which the endpoint answers; the
	// milter writes List-Unsubscribe links as base_url + token. Must be
	// https for mail that leaves this machine (RFC 8058 §3.1 asks for it).
	// Default "http://127.0.0.1:8025/u/".
	BaseURL string `toml:"base_url"`
	// TLSCert and TLSKey are PEM files; when both are set the endpoint
	// speaks HTTPS itself (without them, put it behind a reverse proxy
	// that does). Relative to state_dir. Default none.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the private key of tls_cert. Default none.
	TLSKey string `toml:"tls_key"`
	// TrustedProxies are the addresses or networks of reverse proxies
	// whose X-Forwarded-For names the real client (used for the rate
	// limit and the log). Default none: the peer address is the client.
	TrustedProxies []string `toml:"trusted_proxies"`
	// RatePerMinute is the allowance of one client (an IPv4 address, or
	// an IPv6 /64) a minute: once it is spent, requests with a link that
	// does not verify are answered 429, and a bad link costs ten. A link
	// that verifies is always served: mailbox providers post many users'
	// one-click requests from few addresses. Default 60.
	RatePerMinute int `toml:"rate_per_minute"`
	// UndoDays is how long the "I did not mean to" link on the page
	// shown after an unsubscribe stays valid. Default 7.
	UndoDays int `toml:"undo_days"`

	trusted []netip.Prefix
	path    string
}

// ScopeHTTP holds a scope's unsubscribe-endpoint settings.
type ScopeHTTP struct {
	// DisplayName is how the unsubscribe pages name the sender ("Acme
	// Newsletter"). Default: the scope's name.
	DisplayName string `toml:"display_name"`
}

func defaultHTTP() HTTP {
	return HTTP{Listen: "127.0.0.1:8025", BaseURL: "http://127.0.0.1:8025/u/", RatePerMinute: 60, UndoDays: 7}
}

func (h *HTTP) complete(l *errorList) {
	if h.Listen != "" {
		if _, err := netip.ParseAddrPort(h.Listen); err != nil {
			l.add("http.listen", "%q: want IP:PORT", h.Listen)
		}
	}
	u, err := url.Parse(h.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		l.add("http.base_url", "%q: want an http(s) URL without query or fragment", h.BaseURL)
	} else {
		if !strings.HasSuffix(h.BaseURL, "/") {
			h.BaseURL += "/"
		}
		h.path = u.Path
		if !strings.HasSuffix(h.path, "/") {
			h.path += "/"
		}
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		l.add("http.tls_key", "tls_cert and tls_key go together")
	}
	h.trusted = nil
	for i, s := range h.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			l.add(fmt.Sprintf("http.trusted_proxies[%d]", i), "%v", err)
			continue
		}
		h.trusted = append(h.trusted, p)
	}
	if h.RatePerMinute < 1 {
		l.add("http.rate_per_minute", "%d: must be at least 1", h.RatePerMinute)
	}
	if h.UndoDays < 0 || h.UndoDays > 365 {
		l.add("http.undo_days", "%d: want 0 to 365", h.UndoDays)
	}
}

// Path is the URL path the endpoint serves, from base_url ("/u/").
func (h *HTTP) Path() string { return h.path }

// Trusted reports whether a is a trusted reverse proxy.
func (h *HTTP) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range h.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (sh *ScopeHTTP) complete(key string, sc *Scope, l *errorList) {
	if sh.DisplayName == "" {
		sh.DisplayName = sc.Name
	}
}
