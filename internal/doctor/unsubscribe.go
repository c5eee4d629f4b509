package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// ProbeToken is the token the doctor appends to http.base_url. It is
// not a valid token, and the unsubscribe endpoint answers it with its
// "not valid" page and status 404: that proves the URL reaches senderkit
// and changes nothing.
const ProbeToken = "senderkit-doctor-probe"

// notValidMarker is in the unsubscribe endpoint's answer to a token that
// is not valid (package unsubscribe; the doctor's tests run that real
// endpoint, so a change of wording there fails them).
const notValidMarker = "This link is not valid"

// certWarnBefore is how long before its expiry a certificate is
// reported.
const certWarnBefore = 14 * 24 * time.Hour

// checkUnsubscribe fetches base_url + ProbeToken over HTTPS, as a
// mailbox provider makes its one-click POST (RFC 8058 §3.1), resolving
// the host through the doctor's resolver.
func (x *run) checkUnsubscribe(ctx context.Context) {
	base := x.cfg.HTTP.BaseURL
	res := Result{Check: CheckUnsubscribe, What: "unsubscribe " + base, Status: Fail}
	u, err := url.Parse(base)
	if err != nil {
		res.Detail = fmt.Sprintf("http.base_url does not parse: %v", err)
		x.add(res)
		return
	}
	host := u.Hostname()
	if u.Scheme != "https" {
		// RFC 8058 §3.1: the List-Unsubscribe header "MUST contain one
		// HTTPS URI".
		res.Detail = "http.base_url is not https: RFC 8058 §3.1 requires an HTTPS URI for one-click unsubscribe, and Gmail and Yahoo ignore the header without one"
		res.Fix = fmt.Sprintf("serve the endpoint over HTTPS (http.tls_cert and http.tls_key, or a reverse proxy with a certificate for %s) and set http.base_url = \"https://%s%s\"", host, host, u.EscapedPath())
		x.add(res)
		return
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	endpointFix := fmt.Sprintf("run senderkit serve with http.listen set, reachable at %s port %s directly or through a reverse proxy, and let the port through the firewall", host, port)
	timeout := x.cfg.Check.Timeout.D()
	dialer := &net.Dialer{Timeout: timeout}
	var dialed atomic.Pointer[string] // the address last dialed, for the report
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil, // no HTTP(S)_PROXY: ask the URL itself
			DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
				h, p, err := net.SplitHostPort(hostport)
				if err != nil {
					return nil, err
				}
				as, err := x.r.LookupNetIP(ctx, h)
				if err != nil {
					return nil, err
				}
				var lastErr error
				for _, a := range as {
					at := net.JoinHostPort(a.String(), p)
					dialed.Store(&at)
					c, err := dialer.DialContext(ctx, network, at)
					if err == nil {
						return c, nil
					}
					lastErr = err
				}
				return nil, lastErr
			},
			TLSClientConfig:   &tls.Config{RootCAs: x.o.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	probe := base + ProbeToken
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, probe, nil)
	if err != nil {
		res.Detail = fmt.Sprintf("cannot make a request to %s: %v", probe, err)
		x.add(res)
		return
	}
	req.Header.Set("User-Agent", "senderkit-check")
	resp, err := client.Do(req)
	if err != nil {
		var dnsErr *net.DNSError
		var certErr *tls.CertificateVerificationError
		var hostErr x509.HostnameError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			res.Detail = fmt.Sprintf("%s has no address record", host)
			res.Fix = fmt.Sprintf("publish %s. IN A ADDRESS, the address of the host that serves the endpoint", host)
		case errors.As(err, &dnsErr):
			res.Detail, res.Fix = dnsFailure(host, dnsErr)
		case errors.As(err, &hostErr) || errors.As(err, &certErr):
			res.Detail = fmt.Sprintf("the certificate is not valid for %s: %v", host, certErrText(err))
			res.Fix = fmt.Sprintf("install a certificate for %s from a public certificate authority (http.tls_cert and http.tls_key, or in the reverse proxy)", host)
		default:
			at := net.JoinHostPort(host, port)
			if d := dialed.Load(); d != nil {
				at = *d
			}
			res.Detail = fmt.Sprintf("nothing answers at %s: %v", at, rootCause(err))
			res.Fix = endpointFix
		}
		x.add(res)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var notAfter time.Time
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		notAfter = resp.TLS.PeerCertificates[0].NotAfter
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), notValidMarker):
		res.Status = Pass
		res.Detail = fmt.Sprintf("senderkit answers over HTTPS (404 \"not valid\" for a probe token), certificate valid until %s", notAfter.UTC().Format("2006-01-02"))
		if left := notAfter.Sub(x.now()); left < certWarnBefore {
			res.Status = Warn
			res.Detail += fmt.Sprintf(": it expires in %d day(s)", int(left.Hours()/24))
			res.Fix = fmt.Sprintf("renew the certificate for %s", host)
		}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Status = Warn
		res.Detail = fmt.Sprintf("answers %s, a redirect to %s: the one-click POST must be answered at the URL itself", resp.Status, resp.Header.Get("Location"))
		res.Fix = "route base_url straight to senderkit serve's http.listen, without a redirect"
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		res.Detail = fmt.Sprintf("answers %s: one-click unsubscribes would fail", resp.Status)
		res.Fix = "read senderkit serve's log (component http) and the reverse proxy's"
	default:
		res.Status = Warn
		res.Detail = fmt.Sprintf("answers %s to a token that is not valid, where senderkit answers 404 with its \"not valid\" page: does base_url lead to senderkit serve?", resp.Status)
		res.Fix = "route base_url (its host and path) to senderkit serve's http.listen"
	}
	x.add(res)
}

// certErrText is the certificate problem without the request around it.
func certErrText(err error) string {
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return hostErr.Error()
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return certErr.Err.Error()
	}
	return err.Error()
}

// rootCause strips the URL wrapping of a client error.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
