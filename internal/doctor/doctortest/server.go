// Package doctortest serves prepared DNS zones on loopback, over UDP and
// TCP, for tests of the DNS doctor that must send no query beyond this
// machine. It answers as a recursive resolver would for the names the
// zones hold: records of the type asked, aliases followed, NXDOMAIN for
// names that do not exist, NODATA for names without the type, and
// truncated UDP answers that the client must ask again over TCP.
package doctortest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Zones is a set of resource records.
type Zones struct {
	rrs []dns.RR
}

// LoadZones reads every *.zone file in dir (zone-file syntax, RFC 1035
// §5; $ORIGIN in the file, else the file name without ".zone").
func LoadZones(dir string) (*Zones, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.zone"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("doctortest: no *.zone file in %s", dir)
	}
	sort.Strings(files)
	z := &Zones{}
	for _, f := range files {
		if err := z.readFile(f); err != nil {
			return nil, err
		}
	}
	return z, nil
}

func (z *Zones) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	origin := dns.Fqdn(strings.TrimSuffix(filepath.Base(path), ".zone"))
	zp := dns.NewZoneParser(f, origin, path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		z.rrs = append(z.rrs, lower(rr))
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("doctortest: %w", err)
	}
	return nil
}

func lower(rr dns.RR) dns.RR {
	rr.Header().Name = strings.ToLower(rr.Header().Name)
	return rr
}

// Clone returns a copy that can be patched without changing z.
func (z *Zones) Clone() *Zones {
	c := &Zones{rrs: make([]dns.RR, len(z.rrs))}
	for i, rr := range z.rrs {
		c.rrs[i] = dns.Copy(rr)
	}
	return c
}

// Patch applies a patch file: each line "- RR" removes that record
// (which must be there), each line "+ RR" adds one; RR is one line of
// zone-file syntax with absolute names. Lines starting with '#' and
// blank lines are comments.
func (z *Zones) Patch(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for no := 1; sc.Scan(); no++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		op, text := line[0], strings.TrimSpace(line[1:])
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			return fmt.Errorf("%s:%d: %q: %v", path, no, text, err)
		}
		rr = lower(rr)
		switch op {
		case '+':
			z.rrs = append(z.rrs, rr)
		case '-':
			i := z.find(rr)
			if i < 0 {
				return fmt.Errorf("%s:%d: %s is not in the zones", path, no, rr)
			}
			z.rrs = append(z.rrs[:i], z.rrs[i+1:]...)
		default:
			return fmt.Errorf("%s:%d: line starts with %q, want '+', '-' or '#'", path, no, op)
		}
	}
	return sc.Err()
}

func (z *Zones) find(rr dns.RR) int {
	for i, x := range z.rrs {
		if dns.IsDuplicate(x, rr) {
			return i
		}
	}
	return -1
}

// Server answers queries from a Zones on 127.0.0.1, UDP and TCP on the
// same port.
type Server struct {
	Addr string // "127.0.0.1:PORT"

	mu    sync.Mutex
	zones *Zones
	asked []string
	udp   *dns.Server
	tcp   *dns.Server
}

// Start serves z until the test ends.
func Start(t testing.TB, z *Zones) *Server {
	t.Helper()
	s := &Server{zones: z}
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("doctortest: %v", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatalf("doctortest: no port free for both UDP and TCP: %v", err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

// Asked returns the queries answered so far, "NAME TYPE NET" each
// ("acme.example. TXT udp").
func (s *Server) Asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	s.mu.Lock()
	s.asked = append(s.asked, fmt.Sprintf("%s %s %s", strings.ToLower(q.Name), dns.TypeToString[q.Qtype], proto))
	s.answer(m, strings.ToLower(q.Name), q.Qtype)
	s.mu.Unlock()
	if proto == "udp" {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
			m.SetEdns0(o.UDPSize(), false)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// answer fills m for name and qtype, following aliases within the zones.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16) {
	for range 8 {
		var found, cname []dns.RR
		for _, rr := range s.zones.rrs {
			if rr.Header().Name != name {
				continue
			}
			switch rr.Header().Rrtype {
			case qtype:
				found = append(found, dns.Copy(rr))
			case dns.TypeCNAME:
				cname = append(cname, dns.Copy(rr))
			}
		}
		switch {
		case len(found) > 0:
			m.Answer = append(m.Answer, found...)
			return
		case len(cname) > 0:
			m.Answer = append(m.Answer, cname[0])
			name = strings.ToLower(cname[0].(*dns.CNAME).Target)
			continue
		}
		if !s.exists(name) {
			m.Rcode = dns.RcodeNameError
		}
		if soa := s.soa(name); soa != nil {
			m.Ns = append(m.Ns, soa)
		}
		return
	}
}

// exists reports whether name owns records or has names below it (an
// empty non-terminal, RFC 8020).
func (s *Server) exists(name string) bool {
	for _, rr := range s.zones.rrs {
		if n := rr.Header().Name; n == name || strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

// soa returns the SOA of the closest zone enclosing name, for negative
// answers (RFC 2308 §3).
func (s *Server) soa(name string) dns.RR {
	var best dns.RR
	for _, rr := range s.zones.rrs {
		n := rr.Header().Name
		if rr.Header().Rrtype == dns.TypeSOA && (n == name || strings.HasSuffix(name, "."+n)) {
			if best == nil || len(n) > len(best.Header().Name) {
				best = rr
			}
		}
	}
	if best == nil {
		return nil
	}
	return dns.Copy(best)
}
