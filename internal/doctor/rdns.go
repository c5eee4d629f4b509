package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// checkReverse checks, for each sending address, that its PTR record
// names a host that resolves back to it (forward-confirmed reverse DNS,
// M3AAWG Sender BCP v3 §3.3; Gmail and Yahoo require it), and that the
// HELO name is that host, or at least resolves to the address.
func (x *run) checkReverse(ctx context.Context) {
	helo := strings.TrimSuffix(x.o.HELOName, ".")
	for _, ip := range x.cfg.Check.Sending() {
		confirmed, ptrRes := x.checkPTR(ctx, ip, helo)
		x.add(ptrRes)
		x.add(x.checkHELO(ctx, ip, helo, confirmed, ptrRes))
	}
}

// checkPTR returns the PTR names of ip that resolve back to it.
func (x *run) checkPTR(ctx context.Context, ip netip.Addr, helo string) ([]string, Result) {
	rev, _ := dns.ReverseAddr(ip.String())
	res := Result{Check: CheckPTR, What: "PTR " + ip.String(), Status: Fail}
	target := helo
	if target == "" {
		target = "HOSTNAME"
	}
	askPTR := fmt.Sprintf("ask whoever holds the reverse zone of %s (your hosting provider or ISP) to publish %s IN PTR %s.", ip, rev, target)
	names, err := x.r.LookupAddr(ctx, ip.String())
	switch {
	case isNotFound(err):
		res.Detail = fmt.Sprintf("no PTR record at %s: Gmail and Yahoo refuse or distrust mail from an address without reverse DNS", rev)
		res.Fix = askPTR + "\nand publish " + addressRecord(target, ip) + " if it is not there"
		return nil, res
	case err != nil:
		res.Detail, res.Fix = dnsFailure(rev+" PTR", err)
		return nil, res
	}
	var confirmed, unconfirmed []string
	for _, n := range names {
		host := strings.TrimSuffix(n, ".")
		as, err := x.r.LookupNetIP(ctx, host)
		if err == nil && slices.Contains(as, ip) {
			confirmed = append(confirmed, host)
		} else {
			unconfirmed = append(unconfirmed, host)
		}
	}
	if len(confirmed) == 0 {
		res.Detail = fmt.Sprintf("the PTR record names %s, which does not resolve back to %s (forward-confirmed reverse DNS fails)", strings.Join(unconfirmed, ", "), ip)
		res.Fix = fmt.Sprintf("publish %s\nor %s", addressRecord(unconfirmed[0], ip), askPTR)
		return nil, res
	}
	res.Status = Pass
	res.Detail = fmt.Sprintf("%s, which resolves back to %s", strings.Join(confirmed, ", "), ip)
	if len(unconfirmed) > 0 {
		res.Status = Warn
		res.Detail += fmt.Sprintf("; also %s, which does not", strings.Join(unconfirmed, ", "))
		res.Fix = fmt.Sprintf("keep one PTR record for %s: %s IN PTR %s.", ip, rev, confirmed[0])
	}
	return confirmed, res
}

// checkHELO compares the HELO name with the confirmed PTR names of ip.
func (x *run) checkHELO(ctx context.Context, ip netip.Addr, helo string, confirmed []string, ptr Result) Result {
	res := Result{Check: CheckHELO, What: fmt.Sprintf("HELO %s %s", helo, ip), Status: Fail}
	if helo == "" {
		res.What = "HELO " + ip.String()
		res.Detail = "no HELO name is known"
		res.Fix = "set [check] helo_name to Postfix's smtp_helo_name (postconf -xh smtp_helo_name)"
		return res
	}
	for _, c := range confirmed {
		if strings.EqualFold(c, helo) {
			res.Status = Pass
			res.Detail = "the PTR names it and it resolves to " + ip.String()
			return res
		}
	}
	as, err := x.r.LookupNetIP(ctx, helo)
	resolves := err == nil && slices.Contains(as, ip)
	switch {
	case resolves && len(confirmed) > 0:
		res.Status = Warn
		res.Detail = fmt.Sprintf("resolves to %s, but the PTR names %s: receivers compare the two (M3AAWG Sender BCP §3.3)", ip, strings.Join(confirmed, ", "))
		res.Fix = fmt.Sprintf("set smtp_helo_name = %s in Postfix's main.cf (and [check] helo_name),\nor have the PTR of %s changed to %s.", confirmed[0], ip, helo)
	case resolves:
		res.Status = Warn
		res.Detail = fmt.Sprintf("resolves to %s, but the PTR of %s does not confirm it (see the PTR line)", ip, ip)
		res.Fix = ptr.Fix
	case err != nil && !isNotFound(err):
		res.Detail, res.Fix = dnsFailure(helo, err)
	default:
		found := "has no address record"
		if len(as) > 0 {
			found = "resolves to " + joinAddrs(as) + ", not " + ip.String()
		}
		res.Detail = fmt.Sprintf("the HELO name %s: receivers check that it names the sending host", found)
		res.Fix = "publish " + addressRecord(helo, ip)
		if len(confirmed) > 0 {
			res.Fix += fmt.Sprintf("\nor set smtp_helo_name = %s in Postfix's main.cf (and [check] helo_name)", confirmed[0])
		}
	}
	return res
}

// addressRecord is the A or AAAA record giving name the address ip.
func addressRecord(name string, ip netip.Addr) string {
	t := "A"
	if ip.Is6() {
		t = "AAAA"
	}
	return fmt.Sprintf("%s. IN %s %s", name, t, ip)
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
