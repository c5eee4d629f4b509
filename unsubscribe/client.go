package unsubscribe

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/senderkit/senderkit/conf"
)

type fmtAddr = netip.Addr

// clientAddr returns the client's address: the peer's, or, when the peer
// is a trusted reverse proxy, the last address in X-Forwarded-For that is
// not itself a trusted proxy (a client can write anything in the header,
// so only what trusted hops appended counts).
func clientAddr(r *http.Request, h *conf.HTTP) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if !h.Trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer
		}
		if a = a.Unmap(); !h.Trusted(a) {
			return a
		}
	}
	return peer
}

// limiter is a token bucket per client: an IPv4 address, or an IPv6
// /64. One IPv6 host usually holds a whole /64 (RFC 4291 §2.5.1 interface
// identifiers, SLAAC privacy addresses), so a client guessing links from
// ever new addresses of its /64 must share one allowance, and cannot make
// a bucket for each.
type limiter struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// burst is how many requests a client may make at once.
const burst = 20

// allow takes cost tokens from a's bucket, which refills at perMinute.
func (l *limiter) allow(a netip.Addr, perMinute int, now time.Time, cost float64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[netip.Addr]*bucket{}
	}
	size := float64(max(burst, perMinute/4))
	a = limitKey(a)
	b, ok := l.buckets[a]
	if !ok {
		b = &bucket{tokens: size, last: now}
		l.buckets[a] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 { // a clock set back refills nothing
		b.tokens = min(size, b.tokens+elapsed.Minutes()*float64(perMinute))
		b.last = now
	}
	if now.Sub(l.swept) > time.Minute {
		// Forget clients whose buckets are full again.
		for k, v := range l.buckets {
			if now.Sub(v.last) > time.Minute*time.Duration(1+int(size)/max(perMinute, 1)) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	if b.tokens < cost {
		return false
	}
	b.tokens -= cost
	return true
}

// limitKey returns the client a is counted as: itself when IPv4, its /64
// when IPv6.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}
