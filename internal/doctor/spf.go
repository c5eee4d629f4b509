package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
)

// checkSPF evaluates SPF at the bounce domain for each sending address.
// The milter rewrites every envelope sender to b+TOKEN@<bounce domain>,
// so that is the identity receivers check (RFC 7208 §2.4), and the one
// DMARC aligns on the SPF side (RFC 7489 §3.1.2).
func (x *run) checkSPF(ctx context.Context) {
	bounce := x.cfg.Bounce.Domain
	sending := x.cfg.Check.Sending()
	if len(sending) == 0 {
		return
	}
	record, recErr := x.spfRecord(ctx, bounce)
	publish := "publish " + bounce + ". IN TXT " + quote(spfRecordFor(sending))
	if record != "" {
		publish += "\n(in place of " + quote(record) + "; keep other terms only if other hosts send with this envelope domain)"
	}
	sender := x.cfg.Bounce.VERPPrefix + "+doctor@" + bounce
	x.spfPass = true
	for _, ip := range sending {
		res := Result{Check: CheckSPF, What: fmt.Sprintf("SPF %s %s", bounce, ip)}
		fix := publish
		// RFC 7208 §4: check_host(ip, domain of MAIL FROM, sender), with
		// the 10-lookup and 2-void-lookup limits of §4.6.4.
		r, err := spf.CheckHostWithSender(ip.AsSlice(), x.o.HELOName, sender,
			spf.WithResolver(x.r), spf.WithContext(ctx))
		switch {
		case r == spf.Pass:
			res.Status = Pass
			res.Detail = fmt.Sprintf("pass: %s", quote(record))
		case r == spf.None && recErr == nil:
			res.Status = Fail
			res.Detail = fmt.Sprintf("%s publishes no SPF record: receivers cannot tell this Postfix may send as it (Gmail and Yahoo require SPF for bulk mail)", bounce)
		case r == spf.TempError || r == spf.None:
			res.Status = Fail
			if err == nil || errors.Is(err, spf.ErrNoResult) {
				err = recErr
			}
			res.Detail, fix = dnsFailure("SPF of "+bounce, err)
		case errors.Is(err, spf.ErrLookupLimitReached):
			res.Status = Fail
			res.Detail = fmt.Sprintf("permerror: evaluating %s needs more than 10 DNS lookups before it reaches %s (RFC 7208 §4.6.4): receivers stop and treat it as an error",
				quote(record), ip)
			fix += "\nor cut the include, a, mx, ptr, exists and redirect terms to at most 10 DNS lookups, with this Postfix's addresses first"
		case errors.Is(err, spf.ErrVoidLookupLimitReached):
			res.Status = Fail
			res.Detail = fmt.Sprintf("permerror: %s makes more than 2 lookups that find nothing (RFC 7208 §4.6.4)", quote(record))
		case errors.Is(err, spf.ErrMultipleRecords):
			res.Status = Fail
			res.Detail = fmt.Sprintf("permerror: %s publishes more than one SPF record (RFC 7208 §4.5)", bounce)
			fix = "publish exactly one: " + fix
		case r == spf.PermError:
			res.Status = Fail
			res.Detail = fmt.Sprintf("permerror: %s cannot be evaluated: %v", quote(record), err)
		default:
			// fail, softfail, neutral: none of them lets the mail pass,
			// and Gmail and Yahoo want a pass.
			res.Status = Fail
			res.Detail = fmt.Sprintf("%s: %s does not allow %s to send as %s", r, quote(record), ip, bounce)
		}
		if res.Status != Pass {
			res.Fix = fix
			x.spfPass = false
		}
		x.add(res)
	}
}

// spfRecord returns the domain's SPF record as receivers see it ("" if
// none), for the report; the verdict itself is the library's.
func (x *run) spfRecord(ctx context.Context, domain string) (string, error) {
	txts, err := x.r.LookupTXT(ctx, domain)
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", err
	}
	var found []string
	for _, t := range txts {
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			found = append(found, t)
		}
	}
	return strings.Join(found, `" and "`), nil
}

// spfRecordFor is the SPF record that allows exactly the given
// addresses: the bounce domain sends only through this Postfix.
func spfRecordFor(ips []netip.Addr) string {
	terms := []string{"v=spf1"}
	for _, ip := range ips {
		if ip.Is4() {
			terms = append(terms, "ip4:"+ip.String())
		} else {
			terms = append(terms, "ip6:"+ip.String())
		}
	}
	return strings.Join(append(terms, "-all"), " ")
}

// quote writes a record value as a zone file does.
func quote(s string) string {
	return `"` + s + `"`
}
