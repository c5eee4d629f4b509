// Package dnstest runs a DNS server on 127.0.0.1 that answers MX queries
// from a table, for tests that must not send DNS traffic beyond
// loopback.
package dnstest

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server answers MX queries from its table and NXDOMAIN for any other
// name.
type Server struct {
	Addr string // "127.0.0.1:port"

	mu  sync.Mutex
	mx  map[string][]string // fqdn -> "pref host"
	srv *dns.Server
	n   int
}

// Start starts a server whose table maps a domain to its MX records,
// each "PREF HOST" ("10 mx1.example.net"). It stops when the test ends.
func Start(t testing.TB, mx map[string][]string) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), mx: map[string][]string{}}
	for d, rs := range mx {
		s.mx[dns.Fqdn(strings.ToLower(d))] = rs
	}
	s.srv = &dns.Server{PacketConn: pc, Handler: s}
	started := make(chan struct{})
	s.srv.NotifyStartedFunc = func() { close(started) }
	go s.srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { s.srv.Shutdown() })
	return s
}

// Queries returns how many queries the server answered.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		s.mu.Lock()
		rs, ok := s.mx[strings.ToLower(q.Name)]
		s.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
				Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60}}
		case q.Qtype == dns.TypeMX:
			for _, r := range rs {
				pref, host, _ := strings.Cut(r, " ")
				p, _ := strconv.Atoi(pref)
				m.Answer = append(m.Answer, &dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 300},
					Preference: uint16(p), Mx: dns.Fqdn(host)})
			}
		}
	}
	w.WriteMsg(m)
}
