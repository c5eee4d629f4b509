package conf

import (
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
}

// ScopeHTTP holds a scope's unsubscribe-endpoint settings.
type ScopeHTTP struct{}

func defaultHTTP() HTTP {
	return HTTP{Listen: "127.0.0.1:8025", BaseURL: "http://127.0.0.1:8025/u/"}
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
	} else if !strings.HasSuffix(h.BaseURL, "/") {
		h.BaseURL += "/"
	}
}

func (sh *ScopeHTTP) complete(key string, sc *Scope, l *errorList) {}
